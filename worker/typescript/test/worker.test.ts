/**
 * The worker against a real RabbitMQ: each test publishes step-ready
 * messages as the coordinator would, and reads what the worker publishes on
 * a private queue bound to `tasker.events` with `step.result.<namespace>`.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { afterEach, beforeEach, describe, test } from "node:test";

import type * as amqp from "amqplib";

import {
  type JsonObject,
  PermanentError,
  RetryableError,
  type StepContext,
  StepHandler,
  taskIdOf,
  topology,
} from "../src/index.js";
import { AMQP_URL, Bus, Counted, MemoryLogger, stepReady } from "./helpers.js";

class Echo extends StepHandler {
  static override readonly handlerName = "Tests::Echo";
  calls = 0;

  async call(context: StepContext): Promise<unknown> {
    this.calls += 1;
    return { echo: context.inputs, attempt: context.attempt, key: context.idempotencyKey };
  }
}

class Welcome extends StepHandler {
  static override readonly handlerName = "Tests::Welcome";

  async call(context: StepContext): Promise<unknown> {
    const account = context.getDependencyResult("create_user_account", "object");
    const plan = context.getInputOr("plan", "free", "string");
    return { user_id: account["user_id"], plan, step: context.stepName, task: context.taskId };
  }
}

class Fail extends StepHandler {
  static override readonly handlerName = "Tests::Fail";

  async call(context: StepContext): Promise<unknown> {
    if (context.getInput("retryable", "boolean")) {
      const retryAfter = context.getInputOr("retry_after", undefined, "number");
      throw new RetryableError("the gateway answered 503", {
        errorCode: "GATEWAY_UNAVAILABLE",
        retryAfter,
      });
    }
    throw new PermanentError("Invalid email format: x", { errorCode: "INVALID_EMAIL" });
  }
}

class Slow extends StepHandler {
  static override readonly handlerName = "Tests::Slow";
  aborted = false;
  finished = false;

  async call(context: StepContext): Promise<unknown> {
    const seconds = context.getInput("seconds", "number");
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      context.signal.addEventListener("abort", () => {
        this.aborted = true;
        clearTimeout(timer);
        resolve();
      });
    });
    this.finished = true;
    return { slept: seconds };
  }
}

class Odd extends StepHandler {
  static override readonly handlerName = "Tests::Odd";

  async call(context: StepContext): Promise<unknown> {
    const kind = context.getInput("kind", "string");
    if (kind === "bigint") return { n: 10n };
    if (kind === "large") return { pad: "x".repeat(4096) };
    return undefined;
  }
}

class Raise extends StepHandler {
  static override readonly handlerName = "Tests::Raise";

  async call(context: StepContext): Promise<unknown> {
    const missing = context.inputs["user"] as unknown as { id: string };
    return missing.id; // a bug: the input is not there
  }
}

class Refund extends StepHandler {
  static override readonly handlerName = "Tests::Refund";
  calls = 0;

  async call(context: StepContext): Promise<unknown> {
    this.calls += 1;
    const child = context.getInput("child", "string");
    return context.completeWithChild(child, "process_refund", {
      amount: context.getInput("amount", "integer"),
    });
  }
}

function header(message: amqp.ConsumeMessage, name: string): unknown {
  return message.properties.headers?.[name];
}

describe("worker", () => {
  let bus: Bus;

  beforeEach(async () => {
    bus = await Bus.connect();
  });

  afterEach(async () => {
    await bus.close();
  });

  test("a completed step echoes its message, reads a dependency result, and is acked", async () => {
    const worker = await bus.startWorker([Welcome]);
    const results = await bus.results();
    const ready = stepReady(bus.namespace, Welcome.handlerName, {
      step: "send_welcome_sequence",
      attempt: 2,
      context: { plan: "pro" },
      dependencyResults: { create_user_account: { user_id: "usr_1", plan: "pro" } },
    });
    await bus.publishStep(ready, Welcome.handlerName, {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });

    const delivery = await results.next("the step result");
    const result = JSON.parse(delivery.content.toString("utf8")) as Record<string, unknown>;
    for (const key of ["task_id", "namespace", "task_name", "task_version", "step", "attempt"]) {
      assert.deepEqual(result[key], ready[key], key);
    }
    assert.equal(result["protocol_version"], 1);
    assert.equal(result["status"], "completed");
    assert.deepEqual(result["result"], {
      user_id: "usr_1",
      plan: "pro",
      step: "send_welcome_sequence",
      task: ready["task_id"],
    });
    assert.match(String(result["started_at"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(String(result["finished_at"]) >= String(result["started_at"]));
    // The properties every Tasker message carries.
    assert.equal(delivery.properties.type, topology.MessageType.STEP_RESULT);
    assert.equal(delivery.properties.contentType, "application/json");
    assert.equal(delivery.properties.deliveryMode, 2);
    assert.match(String(delivery.properties.messageId), /^[0-9a-f-]{36}$/);
    assert.equal(typeof delivery.properties.timestamp, "number");
    assert.equal(header(delivery, "x-tasker-protocol-version"), 1);
    assert.equal(header(delivery, "x-tasker-task-id"), ready["task_id"]);
    assert.equal(typeof header(delivery, "x-tasker-published-at-ms"), "number");
    assert.equal(
      header(delivery, "traceparent"),
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );

    const queue = worker.queues[0] ?? "";
    assert.equal(queue, topology.serviceQueue(bus.namespace, "svc"));
    await worker.stop();
    // Acked: nothing goes back to the queue when the worker closes.
    assert.deepEqual(await bus.queueState(queue), [0, 0]);
  });

  test("a permanent error carries its code; a retryable one its retry_after", async () => {
    await bus.startWorker([Fail]);
    const results = await bus.results();

    await bus.publishStep(
      stepReady(bus.namespace, Fail.handlerName, { context: { retryable: false } }),
      Fail.handlerName,
    );
    const permanent = await results.nextJson("the permanent failure");
    assert.equal(permanent["status"], "failed");
    assert.deepEqual(permanent["error"], {
      retryable: false,
      code: "INVALID_EMAIL",
      message: "Invalid email format: x",
    });
    assert.equal("result" in permanent, false);

    await bus.publishStep(
      stepReady(bus.namespace, Fail.handlerName, { context: { retryable: true, retry_after: 5 } }),
      Fail.handlerName,
    );
    const retryable = await results.nextJson("the retryable failure");
    assert.deepEqual(retryable["error"], {
      retryable: true,
      code: "GATEWAY_UNAVAILABLE",
      message: "the gateway answered 503",
      retry_after_seconds: 5,
    });

    await bus.publishStep(
      stepReady(bus.namespace, Fail.handlerName, { context: { retryable: true } }),
      Fail.handlerName,
    );
    const without = (await results.nextJson("the retryable failure without a delay"))[
      "error"
    ] as Record<string, unknown>;
    assert.equal(without["retryable"], true);
    assert.equal("retry_after_seconds" in without, false);

    // A missing input is the request's fault: a permanent invalid_input.
    await bus.publishStep(
      stepReady(bus.namespace, Fail.handlerName, { context: {} }),
      Fail.handlerName,
    );
    const missing = (await results.nextJson("the invalid input"))["error"] as Record<
      string,
      unknown
    >;
    assert.deepEqual(missing, {
      retryable: false,
      code: "invalid_input",
      message: 'the task context has no "retryable"; add it to the task request\'s context',
    });
  });

  test("a step that runs past timeout_seconds fails retryably with timeout", async () => {
    const slow = new Slow();
    await bus.startWorker([slow]);
    const results = await bus.results();
    const started = Date.now();
    await bus.publishStep(
      stepReady(bus.namespace, Slow.handlerName, { context: { seconds: 10 }, timeoutSeconds: 0.3 }),
      Slow.handlerName,
    );
    const result = await results.nextJson("the timeout");
    assert.ok(Date.now() - started < 5000, "reported at the deadline, not when the handler ends");
    assert.equal(result["status"], "failed");
    assert.deepEqual(result["error"], {
      retryable: true,
      code: "timeout",
      message: "the handler ran past timeout_seconds (0.3 s)",
    });
    assert.equal(slow.aborted, true, "the handler's signal was aborted");

    // A step within its timeout completes.
    await bus.publishStep(
      stepReady(bus.namespace, Slow.handlerName, { context: { seconds: 0.01 }, timeoutSeconds: 5 }),
      Slow.handlerName,
    );
    const quick = await results.nextJson("the quick step");
    assert.equal(quick["status"], "completed");
    assert.deepEqual(quick["result"], { slept: 0.01 });
  });

  test("a handler that throws something else fails the step with handler_panic, and the worker goes on", async () => {
    const logger = new MemoryLogger();
    const echo = new Echo();
    await bus.startWorker([Raise, echo], {}, logger);
    const results = await bus.results();

    await bus.publishStep(stepReady(bus.namespace, Raise.handlerName), Raise.handlerName);
    const result = await results.nextJson("the panic");
    const error = result["error"] as Record<string, unknown>;
    assert.equal(error["retryable"], false);
    assert.equal(error["code"], "handler_panic");
    assert.match(String(error["message"]), /^the handler threw TypeError: /);
    assert.ok(
      logger.records.some((r) => r.level === "error" && r.message === "step handler threw"),
    );

    await bus.publishStep(stepReady(bus.namespace, Echo.handlerName), Echo.handlerName);
    assert.equal((await results.nextJson("the next step"))["status"], "completed");
  });

  test("a step whose callable the worker has no handler for fails with handler_not_found", async () => {
    await bus.startWorker([Echo]);
    const results = await bus.results();
    // Bound by another worker of the same service, which serves more.
    const unknown = "Tests::Unknown";
    await bus.channel.bindQueue(
      topology.serviceQueue(bus.namespace, "svc"),
      await bus.routeSteps([unknown]),
      topology.stepRoutingKey(bus.namespace, unknown),
    );
    await bus.publishStep(stepReady(bus.namespace, unknown), unknown);
    const result = await results.nextJson("the failure");
    assert.deepEqual(result["error"], {
      retryable: false,
      code: "handler_not_found",
      message:
        'this worker has no handler for callable "Tests::Unknown"; register a handler whose handlerName is ' +
        '"Tests::Unknown" (known: Tests::Echo)',
    });
  });

  test("a worker's queue gets its steps through the namespace's steps exchange only", async () => {
    await bus.startWorker([Echo]);
    const results = await bus.results();
    const key = topology.stepRoutingKey(bus.namespace, Echo.handlerName);
    const steps = topology.namespaceStepsExchange(bus.namespace);
    // What the coordinators bind, taken away: the worker bound its queue to
    // nothing else, so a step published to tasker.steps reaches no queue.
    await bus.channel.unbindExchange(steps, topology.STEPS_EXCHANGE, key);
    await assert.rejects(
      bus.publishStep(stepReady(bus.namespace, Echo.handlerName), Echo.handlerName),
      /nothing took the message/,
    );
    const ready = stepReady(bus.namespace, Echo.handlerName);
    await bus.publish(steps, key, ready);
    const result = await results.nextJson("the result of the step published to its exchange");
    assert.equal(result["task_id"], ready["task_id"]);
    assert.equal(result["status"], "completed", JSON.stringify(result));
  });

  test("undecodable steps are dead-lettered with their reason, then acked", async () => {
    const echo = new Echo();
    const worker = await bus.startWorker([echo], { maxMessageBytes: 2048 });
    const queue = worker.queues[0] ?? "";
    const dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE);
    const good = stepReady(bus.namespace, Echo.handlerName);
    const { task_id: _, ...missing } = good;
    const cases: [Buffer, RegExp][] = [
      [Buffer.from("not json at all"), /^not_json: payload is not JSON: /],
      [Buffer.from([0x7b, 0xff, 0x7d]), /^not_json: payload is not JSON: /],
      [
        Buffer.from(JSON.stringify({ ...good, protocol_version: 2 })),
        /^wrong_protocol_version: protocol_version is 2, this process speaks only 1; /,
      ],
      [
        Buffer.from(JSON.stringify(missing)),
        /^invalid_message: payload does not match the message schema: missing field task_id$/,
      ],
      [
        Buffer.from(JSON.stringify({ ...good, attempt: "one" })),
        /^invalid_message: .*field attempt is a string, expected a non-negative integer$/,
      ],
      [Buffer.from("[1, 2]"), /^invalid_message: .*it is an array, not a JSON object$/],
      [
        Buffer.from(
          JSON.stringify(
            stepReady(bus.namespace, Echo.handlerName, { context: { pad: "x".repeat(3000) } }),
          ),
        ),
        /^too_large: payload of \d+ bytes is over the limit of 2048 bytes$/,
      ],
    ];
    for (const [body, reason] of cases) {
      const messageId = await bus.publishStep(body, Echo.handlerName, { "x-custom": "kept" });
      const delivery = await dead.nextWhere(
        (m) => header(m, "x-tasker-original-queue") === queue,
        `a dead letter (${String(reason)})`,
      );
      assert.match(String(header(delivery, "x-tasker-dead-letter-reason")), reason);
      assert.equal(header(delivery, "x-tasker-original-exchange"), topology.STEPS_EXCHANGE);
      assert.equal(
        header(delivery, "x-tasker-original-routing-key"),
        `${bus.namespace}/${Echo.handlerName}`,
      );
      assert.equal(header(delivery, "x-custom"), "kept", "the original headers go with it");
      assert.deepEqual(delivery.content, body);
      assert.equal(delivery.properties.messageId, messageId);
      assert.equal(delivery.properties.deliveryMode, 2);
    }
    assert.equal(echo.calls, 0);
    await worker.stop();
    // Every one was acked once dead-lettered: none comes back.
    assert.deepEqual(await bus.queueState(queue), [0, 0]);
  });

  test("a step delivered again is answered from the recent results, without running the handler", async () => {
    const echo = new Echo();
    const worker = await bus.startWorker([echo]);
    const results = await bus.results();
    const ready = stepReady(bus.namespace, Echo.handlerName, { context: { n: 1 } });

    await bus.publishStep(ready, Echo.handlerName);
    const first = await results.next("the first result");
    // The same attempt again, as after a lost ack or a coordinator's restart.
    await bus.publishStep(ready, Echo.handlerName);
    const second = await results.next("the repeated result");
    assert.deepEqual(second.content, first.content, "the same result, byte for byte");
    assert.equal(echo.calls, 1, "the handler ran once");

    // Another attempt of the same step runs again.
    await bus.publishStep({ ...ready, attempt: 2 }, Echo.handlerName);
    const third = await results.nextJson("the next attempt's result");
    assert.equal(third["attempt"], 2);
    assert.equal(echo.calls, 2);

    await worker.stop();
    assert.deepEqual(await bus.queueState(worker.queues[0] ?? ""), [0, 0]);
  });

  test("a step redelivered more than max_redeliveries times is dead-lettered, not run", async () => {
    const queue = topology.serviceQueue(bus.namespace, "svc");
    bus.remember(queue);
    const channel = await bus.connection.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { ...topology.QUORUM } });
    const ready = stepReady(bus.namespace, Echo.handlerName);
    await bus.publish("", queue, ready);
    // Delivered and handed back until RabbitMQ counts more than five
    // deliveries, as when a step crashes every worker that takes it.
    let seen = 0;
    const deadline = Date.now() + 15_000;
    while (seen <= 5) {
      assert.ok(Date.now() < deadline, `the delivery count stayed at ${seen}`);
      const message = await channel.get(queue, { noAck: false });
      if (message === false) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      seen = Number(message.properties.headers?.["x-delivery-count"] ?? 0);
      channel.nack(message, false, true);
    }
    await channel.close();

    const echo = new Echo();
    const dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE);
    await bus.startWorker([echo]);
    const delivery = await dead.nextWhere(
      (m) => header(m, "x-tasker-original-queue") === queue,
      "the dead letter",
    );
    assert.match(
      String(header(delivery, "x-tasker-dead-letter-reason")),
      /^redelivery_limit: redelivered \d+ times, over the limit of 5; the step may crash its worker$/,
    );
    assert.equal(
      (JSON.parse(delivery.content.toString("utf8")) as Record<string, unknown>)["task_id"],
      ready["task_id"],
    );
    assert.equal(echo.calls, 0);
  });

  test("a step that starts a child task publishes its request, confirmed, then waits for the child", async () => {
    const refund = new Refund();
    const worker = await bus.startWorker([refund]);
    const child = `${bus.namespace}_child`;
    const requests = await bus.watch(topology.REQUESTS_EXCHANGE, child);
    const results = await bus.results();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const ready = stepReady(bus.namespace, Refund.handlerName, {
      step: "refund",
      attempt: 2,
      context: { child, amount: 4999 },
    });
    await bus.publishStep(ready, Refund.handlerName, { traceparent });

    const request = await requests.next("the child task request");
    assert.equal(request.fields.exchange, topology.REQUESTS_EXCHANGE);
    assert.equal(request.fields.routingKey, child);
    assert.equal(request.properties.type, topology.MessageType.TASK_REQUEST);
    assert.equal(request.properties.contentType, "application/json");
    assert.equal(request.properties.deliveryMode, 2);
    assert.equal(header(request, "x-tasker-protocol-version"), 1);
    assert.equal(header(request, "traceparent"), traceparent);
    const childTaskId = String(header(request, "x-tasker-task-id"));
    const body = JSON.parse(request.content.toString("utf8")) as Record<string, unknown>;
    assert.equal(childTaskId, taskIdOf(body as JsonObject));
    assert.deepEqual(
      { ...body, request_id: "r" },
      {
        protocol_version: 1,
        request_id: "r",
        namespace: child,
        name: "process_refund",
        context: { amount: 4999 },
        idempotency_key: `child-of:${String(ready["task_id"])}:refund`,
        parent: {
          task_id: ready["task_id"],
          namespace: bus.namespace,
          name: "task",
          version: "1.0.0",
          step: "refund",
          attempt: 2,
        },
      },
    );

    const result = await results.nextJson("the waiting result");
    assert.equal(result["status"], "waiting_for_child");
    assert.equal(result["child_task_id"], childTaskId);
    assert.equal("result" in result || "error" in result, false);

    // Delivered again: the same result, and no second request.
    await bus.publishStep(ready, Refund.handlerName);
    assert.deepEqual(await results.nextJson("the repeated result"), result);
    assert.equal(await requests.quietFor(300), undefined);
    assert.equal(refund.calls, 1);
    await worker.stop();
    assert.deepEqual(await bus.queueState(worker.queues[0] ?? ""), [0, 0]);
  });

  test("a service queue declared without the delivery limit is used as it is, with a warning", async () => {
    const queue = topology.serviceQueue(bus.namespace, "svc");
    bus.remember(queue);
    const channel = await bus.connection.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await channel.close();

    const logger = new MemoryLogger();
    await bus.startWorker([Echo], {}, logger);
    const results = await bus.results();
    await bus.publishStep(stepReady(bus.namespace, Echo.handlerName), Echo.handlerName);
    assert.equal((await results.nextJson("the result"))["status"], "completed");
    const warning = logger.records.find((r) => r.level === "warn" && r.fields["queue"] === queue);
    assert.ok(warning, "a warning names the queue");
    assert.match(warning.message, /exists with other arguments/);
  });

  test("the worker announces itself on start, and as leaving when it stops", async () => {
    const announcements = await bus.watch(
      topology.EVENTS_EXCHANGE,
      topology.WORKER_ANNOUNCE_ROUTING_KEY,
    );
    const worker = await bus.startWorker([Echo, Fail], { concurrency: 4 });
    const mine = (m: amqp.ConsumeMessage): boolean =>
      (JSON.parse(m.content.toString("utf8")) as Record<string, unknown>)["worker_id"] ===
      worker.workerId;
    const first = await announcements.nextWhere(mine, "the worker's announcement");
    assert.equal(first.properties.type, topology.MessageType.WORKER_ANNOUNCEMENT);
    const body = JSON.parse(first.content.toString("utf8")) as Record<string, unknown>;
    assert.equal(body["protocol_version"], 1);
    assert.equal(body["service"], "svc");
    assert.equal(body["language"], "typescript");
    assert.equal(body["concurrency"], 4);
    assert.equal(body["pid"], process.pid);
    assert.equal(body["every_seconds"], 10);
    assert.equal(typeof body["sdk_version"], "string");
    assert.equal(typeof body["host"], "string");
    assert.match(String(body["started_at"]), /Z$/);
    assert.match(String(body["sent_at"]), /Z$/);
    assert.equal("leaving" in body, false);
    assert.deepEqual(body["serves"], [
      {
        namespace: bus.namespace,
        queue: topology.serviceQueue(bus.namespace, "svc"),
        callables: [Echo.handlerName, Fail.handlerName].sort(),
      },
    ]);

    await worker.stop();
    const last = await announcements.nextWhere(mine, "the leaving announcement");
    assert.equal(
      (JSON.parse(last.content.toString("utf8")) as Record<string, unknown>)["leaving"],
      true,
    );
  });

  test("on stop, a step in flight finishes and is acked before the worker closes", async () => {
    const slow = new Slow();
    const worker = await bus.startWorker([slow]);
    const results = await bus.results();
    await bus.publishStep(
      stepReady(bus.namespace, Slow.handlerName, { context: { seconds: 0.5 } }),
      Slow.handlerName,
    );
    // Wait until the step is taken, then stop while it runs.
    for (let i = 0; i < 200 && (await bus.queueState(worker.queues[0] ?? ""))[0] > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    await worker.stop();
    assert.equal(slow.finished, true);
    assert.equal((await results.nextJson("the drained step's result"))["status"], "completed");
    assert.deepEqual(await bus.queueState(worker.queues[0] ?? ""), [0, 0]);
  });

  test("at most concurrency steps run at once", async () => {
    const counted = new Counted();
    await bus.startWorker([counted], { concurrency: 2 });
    const results = await bus.results();
    for (let i = 0; i < 6; i++) {
      await bus.publishStep(
        stepReady(bus.namespace, Counted.handlerName, { context: { ms: 100 } }),
        Counted.handlerName,
      );
    }
    for (let i = 0; i < 6; i++) {
      const result = await results.nextJson("a result");
      assert.equal(result["status"], "completed");
      assert.equal(result["result"], null, "a handler that returns nothing has the result null");
    }
    assert.equal(counted.most, 2);
  });

  test("a result that is not JSON, or too large, becomes a permanent failure", async () => {
    await bus.startWorker([Odd], { maxMessageBytes: 2048 });
    const results = await bus.results();
    await bus.publishStep(
      stepReady(bus.namespace, Odd.handlerName, { context: { kind: "bigint" } }),
      Odd.handlerName,
    );
    const notJson = (await results.nextJson("the invalid result"))["error"] as Record<
      string,
      unknown
    >;
    assert.equal(notJson["code"], "invalid_result");
    assert.equal(notJson["retryable"], false);
    assert.match(String(notJson["message"]), /^the handler's result is not JSON: /);

    await bus.publishStep(
      stepReady(bus.namespace, Odd.handlerName, { context: { kind: "large" } }),
      Odd.handlerName,
    );
    const large = (await results.nextJson("the result too large"))["error"] as Record<
      string,
      unknown
    >;
    assert.equal(large["code"], "result_too_large");
    assert.equal(large["retryable"], false);
    assert.match(String(large["message"]), /over the limit of 2048 bytes/);
  });

  test("on SIGTERM, a worker process finishes its step in flight, announces it leaves, and exits", async () => {
    const queue = topology.serviceQueue(bus.namespace, "svc");
    bus.remember(queue);
    const announcements = await bus.watch(
      topology.EVENTS_EXCHANGE,
      topology.WORKER_ANNOUNCE_ROUTING_KEY,
    );
    const results = await bus.results();
    const child = spawn(
      process.execPath,
      [new URL("./worker_process.js", import.meta.url).pathname],
      {
        env: { ...process.env, TEST_NAMESPACE: bus.namespace, TASKER_AMQP_URL: AMQP_URL },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    child.stderr.resume();
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    const serves = (m: amqp.ConsumeMessage): boolean => {
      const body = JSON.parse(m.content.toString("utf8")) as { serves?: { queue: string }[] };
      return body.serves?.some((s) => s.queue === queue) ?? false;
    };
    await announcements.nextWhere(serves, "the process's announcement");

    await bus.publishStep(
      stepReady(bus.namespace, "Tests::Slow", { context: { seconds: 0.5 } }),
      "Tests::Slow",
    );
    for (let i = 0; i < 200 && (await bus.queueState(queue))[0] > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    child.kill("SIGTERM");

    assert.equal((await results.nextJson("the drained step's result"))["status"], "completed");
    const leaving = await announcements.nextWhere(serves, "the leaving announcement");
    assert.equal(
      (JSON.parse(leaving.content.toString("utf8")) as Record<string, unknown>)["leaving"],
      true,
    );
    assert.equal(await exited, 0);
    assert.match(output, /ready\nstopped\n/);
    assert.deepEqual(await bus.queueState(queue), [0, 0]);
  });
});
