/**
 * The client against a real coordinator (the Rust `tasker` binary, with
 * Redis): tasks asked for from TypeScript, run by a TypeScript worker, and
 * their outcome on the client's private reply queue.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { afterEach, beforeEach, describe, test } from "node:test";

import {
  Client,
  RetryableError,
  type StepContext,
  StepHandler,
  TaskFinished,
  TaskRejected,
  taskIdOf,
} from "../src/index.js";
import { AMQP_URL, Bus, Coordinator, MemoryLogger, NODE_URL } from "./helpers.js";

function template(namespace: string, name = "greet"): string {
  return `
name: ${name}
namespace_name: ${namespace}
version: 1.0.0
steps:
  - name: hello
    handler:
      callable: Tests::Hello
    retry:
      max_attempts: 3
      backoff: fixed
      initial_delay: 30
  - name: shout
    handler:
      callable: Tests::Shout
      initialization:
        times: 2
    dependencies: [hello]
`;
}

/** Fails its first attempt retryably, asking for a short wait. */
class Hello extends StepHandler {
  static override readonly handlerName = "Tests::Hello";

  async call(context: StepContext): Promise<unknown> {
    if (context.attempt === 1) {
      throw new RetryableError("warming up", { errorCode: "WARMING_UP", retryAfter: 0.1 });
    }
    return { greeting: `hello ${context.getInput("name", "string")}` };
  }
}

class Shout extends StepHandler {
  static override readonly handlerName = "Tests::Shout";

  async call(context: StepContext): Promise<unknown> {
    const hello = context.getDependencyResult("hello", "object");
    const times = Number(context.getInitialization("times") ?? 1);
    return {
      shout: Array<string>(times)
        .fill((hello["greeting"] as string).toUpperCase())
        .join("!"),
      dependencies: context.dependencies,
      key: context.idempotencyKey,
    };
  }
}

describe("client", () => {
  let bus: Bus;
  let coordinators: Coordinator[];
  let clients: Client[];

  beforeEach(async () => {
    bus = await Bus.connect();
    coordinators = [];
    clients = [];
  });

  afterEach(async () => {
    for (const client of clients) await client.close();
    for (const coordinator of coordinators) await coordinator.stop();
    await bus.close();
  });

  async function start(templates: Record<string, string>): Promise<void> {
    await Coordinator.start(coordinators, templates, [bus.namespace]);
  }

  async function connect(): Promise<Client> {
    const client = await Client.connect(AMQP_URL, { logger: new MemoryLogger() });
    clients.push(client);
    return client;
  }

  test("a task runs end to end through the coordinator", async () => {
    const namespace = bus.namespace;
    await start({ "greet.yaml": template(namespace) });
    await bus.startWorker([Hello, Shout]);
    const client = await connect();
    const submitted = await client.createTask(namespace, "greet", { name: "ada" });
    const finished = await submitted.wait(60);

    assert.ok(finished instanceof TaskFinished, JSON.stringify(finished));
    assert.equal(finished.taskId, submitted.taskId);
    assert.equal(finished.requestId, submitted.requestId);
    assert.deepEqual(
      [finished.namespace, finished.name, finished.version],
      [namespace, "greet", "1.0.0"],
    );
    assert.equal(finished.status, "complete");
    const hello = finished.step("hello");
    const shout = finished.step("shout");
    assert.deepEqual([hello.state, hello.attempts], ["completed", 2]);
    // The first attempt's retryable error, with the wait it asked for.
    assert.equal(hello.error?.code, "WARMING_UP");
    assert.equal(hello.error.retryAfterSeconds, 0.1);
    assert.deepEqual(hello.result, { greeting: "hello ada" });
    assert.deepEqual([shout.state, shout.attempts], ["completed", 1]);
    assert.deepEqual(shout.result, {
      shout: "HELLO ADA!HELLO ADA",
      dependencies: ["hello"],
      key: `${finished.taskId}:shout`,
    });
  });

  test("tasks run end to end with the service's steps split over 4 queues", async () => {
    const namespace = bus.namespace;
    await start({ "greet.yaml": template(namespace) });
    const worker = await bus.startWorker([Hello, Shout], { partitions: 4 });
    assert.equal(worker.queues.length, 4);
    const client = await connect();
    const names = ["ada", "bob", "cy", "di", "ed", "flo"];
    const submitted = await Promise.all(
      names.map((name) => client.createTask(namespace, "greet", { name })),
    );
    for (const [i, task] of submitted.entries()) {
      const finished = await task.wait(60);
      assert.ok(finished instanceof TaskFinished, JSON.stringify(finished));
      assert.equal(finished.status, "complete");
      const loud = `HELLO ${(names[i] ?? "").toUpperCase()}`;
      assert.deepEqual(finished.step("shout").result, {
        shout: `${loud}!${loud}`,
        dependencies: ["hello"],
        key: `${finished.taskId}:shout`,
      });
    }
  });

  test("a client whose connection died connects again for its next request", async () => {
    const namespace = bus.namespace;
    await start({ "greet.yaml": template(namespace) });
    await bus.startWorker([Hello, Shout]);
    const name = `tasker-client-reconnect-${randomUUID()}`;
    const client = await Client.connect(AMQP_URL, { name, logger: new MemoryLogger() });
    clients.push(client);
    const first = await client.createTask(namespace, "greet", { name: "ada" });
    assert.ok((await first.wait(60)) instanceof TaskFinished);
    const oldQueue = client.replyQueue;
    // The broker closes its connection, as when its node dies.
    closeConnectionsNamed(name);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const second = await client.createTask(namespace, "greet", { name: "bob" });
    const finished = await second.wait(60);
    assert.ok(finished instanceof TaskFinished, JSON.stringify(finished));
    assert.equal(finished.taskId, second.taskId);
    assert.equal(finished.status, "complete");
    assert.notEqual(client.replyQueue, oldQueue);
  });

  test("an idempotency key names one task", async () => {
    const namespace = bus.namespace;
    await start({ "greet.yaml": template(namespace) });
    await bus.startWorker([Hello, Shout]);
    const client = await connect();
    const first = await client.createTask(
      namespace,
      "greet",
      { name: "a" },
      { idempotencyKey: "k1" },
    );
    const second = await client.createTask(
      namespace,
      "greet",
      { name: "a" },
      { idempotencyKey: "k1" },
    );
    assert.equal(first.taskId, second.taskId);
    assert.notEqual(first.requestId, second.requestId);
    const one = await first.wait(60);
    const two = await second.wait(60);
    assert.ok(one instanceof TaskFinished, JSON.stringify(one));
    assert.ok(two instanceof TaskFinished, JSON.stringify(two));
    assert.equal(one.taskId, first.taskId);
    assert.equal(two.taskId, first.taskId);
    assert.deepEqual([one.requestId, two.requestId], [first.requestId, second.requestId]);
    assert.deepEqual(two.step("hello").result, { greeting: "hello a" });
    // The same key with another context names the same task: refused.
    const other = await client.createTask(
      namespace,
      "greet",
      { name: "b" },
      { idempotencyKey: "k1" },
    );
    const refused = await other.wait(60);
    assert.ok(refused instanceof TaskRejected, JSON.stringify(refused));
    assert.equal(refused.code, "idempotency_conflict");
    assert.equal(refused.requestId, other.requestId);
    assert.ok(refused.reason.includes(first.taskId), refused.reason);
  });

  test("a request for an unknown template is rejected", async () => {
    const namespace = bus.namespace;
    await start({ "greet.yaml": template(namespace) });
    const client = await connect();
    const outcome = await client.runTask(namespace, "greeet", {}, { timeoutSeconds: 30 });
    assert.ok(outcome instanceof TaskRejected, JSON.stringify(outcome));
    assert.equal(outcome.code, "unknown_template");
    assert.deepEqual([outcome.namespace, outcome.name], [namespace, "greeet"]);
    assert.ok(outcome.reason.includes("greet"), outcome.reason);
  });

  test("the task id follows from the idempotency key", () => {
    const request = { namespace: "microservices", name: "user_registration", request_id: "r" };
    // The example of docs/protocol.md, "The task id".
    assert.equal(
      taskIdOf({ ...request, idempotency_key: "registration:new.user@example.com" }),
      "1313b797-4991-51f3-b1c9-e05383177de6",
    );
    assert.equal(taskIdOf(request), "r");
  });
});

/** Closes, through `deploy/dev rabbitmqctl`, every connection named `name`. */
function closeConnectionsNamed(name: string): void {
  const dev = new URL("../../../../deploy/dev", import.meta.url).pathname;
  const node = new URL(NODE_URL).port;
  const target = AMQP_URL.includes(",") ? ["-n", `tasker-${node}@localhost`] : [];
  const listing = execFileSync(
    dev,
    ["rabbitmqctl", ...target, "-q", "list_connections", "pid", "client_properties"],
    {
      encoding: "utf8",
    },
  );
  const pids = listing
    .split("\n")
    .filter((line) => line.includes(name))
    .map((line) => line.split(/\s+/)[0] ?? "");
  assert.ok(pids.length > 0, `no connection named ${name} in:\n${listing}`);
  for (const pid of pids) {
    execFileSync(dev, [
      "rabbitmqctl",
      ...target,
      "close_connection",
      pid,
      "a test closes the client's connection",
    ]);
  }
}
