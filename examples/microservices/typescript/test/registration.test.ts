/**
 * The user registration end to end, in TypeScript only: the Rust
 * coordinator (`TASKER_BIN`, by default `target/debug/tasker`) with the
 * template of templates/microservices, and this package's runner as four
 * processes, `user`, `billing`, `preferences` and `notifications`, against
 * RabbitMQ and Redis. Each test serves a namespace of its own, and deletes
 * its queues at the end.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";

import * as amqp from "amqplib";
import {
  Client,
  type JsonObject,
  brokerUrls,
  type Logger,
  type StepReport,
  TaskFinished,
  topology,
} from "tasker-worker";

const AMQP_URL = process.env["TASKER_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f";
// For the test's own connections: amqplib takes one URL, so a cluster's first node.
const NODE_URL = brokerUrls(AMQP_URL)[0] ?? AMQP_URL;
const REDIS_URL = process.env["TASKER_REDIS_URL"] ?? "redis://127.0.0.1:6379";
// From dist/test, the repository is five levels up.
const REPO = new URL("../../../../../", import.meta.url);
const TASKER_BIN = process.env["TASKER_BIN"] ?? new URL("target/debug/tasker", REPO).pathname;
const TEMPLATE = new URL("templates/microservices/user_registration.yaml", REPO);
const RUNNER = new URL("../src/main.js", import.meta.url).pathname;
const SERVICES = ["user", "billing", "preferences", "notifications"] as const;

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A process of this test, its output kept in a file, stopped with SIGTERM at the end. */
class Process {
  readonly name: string;
  readonly log: string;
  readonly #child: ChildProcess;
  readonly #exit: Promise<number | null>;

  constructor(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, log: string) {
    this.name = name;
    this.log = log;
    const out = openSync(log, "w");
    this.#child = spawn(command, args, { env, stdio: ["ignore", out, out] });
    closeSync(out);
    this.#exit = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
  }

  get exited(): boolean {
    return this.#child.exitCode !== null || this.#child.signalCode !== null;
  }

  output(): string {
    return readFileSync(this.log, "utf8");
  }

  /** Waits until `ready` says so, failing with the log if the process exits or 30 s pass. */
  async until(ready: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`${this.name} exited before ${what}:\n${this.output()}`);
      if (await ready()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${this.name}: timed out waiting for ${what}; its log:\n${this.output()}`);
  }

  /** SIGTERM, SIGKILL after 20 s; resolves to the exit code. */
  async stop(): Promise<number | null> {
    if (!this.exited) {
      this.#child.kill("SIGTERM");
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), 20_000);
      await this.#exit;
      clearTimeout(timer);
    }
    return this.#exit;
  }
}

/** How many consumers `queue` has, on a connection of its own (a missing queue closes the channel); -1 if it is missing. */
async function consumerCount(queue: string): Promise<number> {
  const connection = await amqp.connect(NODE_URL);
  connection.on("error", () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on("error", () => undefined);
    return (await channel.checkQueue(queue)).consumerCount;
  } catch {
    return -1;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function deleteQueues(queues: string[]): Promise<void> {
  const connection = await amqp.connect(NODE_URL);
  connection.on("error", () => undefined);
  try {
    for (const queue of queues) {
      // A channel per queue: deleting a missing queue is harmless, but any refusal closes its channel.
      const channel = await connection.createChannel();
      channel.on("error", () => undefined);
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
}

describe("user registration", () => {
  let namespace: string;
  let dir: string;
  let processes: Process[];
  let clients: Client[];

  beforeEach(() => {
    namespace = `ts_registration_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
    dir = mkdtempSync(join(tmpdir(), "tasker-ts-registration-"));
    processes = [];
    clients = [];
  });

  afterEach(async () => {
    for (const client of clients) await client.close();
    for (const process of processes.reverse()) await process.stop();
    await deleteQueues([
      topology.requestQueue(namespace),
      topology.resultQueue(namespace),
      ...SERVICES.map((service) => topology.serviceQueue(namespace, service)),
    ]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The coordinator with the registration template in the test's namespace, once it consumes its requests. */
  async function startCoordinator(): Promise<void> {
    const templates = join(dir, "templates");
    mkdirSync(templates);
    const yaml = readFileSync(TEMPLATE, "utf8").replace(
      /^namespace_name: microservices$/m,
      `namespace_name: ${namespace}`,
    );
    assert.ok(yaml.includes(`namespace_name: ${namespace}`), "the template names its namespace");
    writeFileSync(join(templates, "user_registration.yaml"), yaml);
    // Only what the coordinator needs: settings meant for a worker must not reach it.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith("TASKER_") && !key.startsWith("OTEL_")) env[key] = value;
    }
    Object.assign(env, {
      TASKER_AMQP_URL: AMQP_URL,
      TASKER_REDIS_URL: REDIS_URL,
      RUST_LOG: "info",
    });
    const coordinator = new Process(
      "the coordinator",
      TASKER_BIN,
      ["coordinator", "--templates", templates],
      env,
      join(dir, "coordinator.log"),
    );
    processes.push(coordinator);
    await coordinator.until(
      async () => (await consumerCount(topology.requestQueue(namespace))) >= 1,
      "consuming requests",
    );
  }

  /** The runner of `service`, once it logs that it is ready and consumes its queue. */
  async function startService(service: string, ...flags: string[]): Promise<Process> {
    const env: NodeJS.ProcessEnv = { ...process.env, TASKER_AMQP_URL: AMQP_URL };
    delete env["OTEL_EXPORTER_OTLP_ENDPOINT"];
    const runner = new Process(
      service,
      process.execPath,
      [
        RUNNER,
        service,
        "--namespace",
        namespace,
        "--latency-ms",
        "0..0",
        "--shutdown-grace",
        "5",
        ...flags,
      ],
      env,
      join(dir, `${service}.log`),
    );
    processes.push(runner);
    await runner.until(async () => /\bready\b/.test(runner.output()), "logging that it is ready");
    await runner.until(
      async () => (await consumerCount(topology.serviceQueue(namespace, service))) >= 1,
      "consuming its queue",
    );
    return runner;
  }

  async function register(userInfo: JsonObject): Promise<TaskFinished> {
    const client = await Client.connect(AMQP_URL, { logger: quiet });
    clients.push(client);
    const submitted = await client.createTask(namespace, "user_registration", {
      user_info: userInfo,
    });
    const finished = await submitted.wait(90);
    assert.ok(finished instanceof TaskFinished, JSON.stringify(finished));
    return finished;
  }

  function resultOf(step: StepReport): Record<string, unknown> {
    assert.equal(typeof step.result, "object", JSON.stringify(step));
    return step.result as Record<string, unknown>;
  }

  test("a pro user registers through the diamond, every step in TypeScript", async () => {
    await startCoordinator();
    await Promise.all(SERVICES.map((service) => startService(service)));

    const finished = await register({
      email: "Grace@Example.com",
      name: "Grace Hopper",
      plan: "pro",
    });
    assert.equal(finished.status, "complete", JSON.stringify(finished.steps));
    const steps = new Map(finished.steps.map((step) => [step.name, step]));
    for (const name of [
      "create_user_account",
      "setup_billing_profile",
      "initialize_preferences",
      "send_welcome_sequence",
      "update_user_status",
    ]) {
      const step = steps.get(name);
      assert.ok(step !== undefined, `no step ${name}`);
      assert.deepEqual([step.state, step.attempts], ["completed", 1], JSON.stringify(step));
      assert.equal(resultOf(step)["language"], "typescript", name);
    }
    const account = resultOf(finished.step("create_user_account"));
    assert.match(String(account["user_id"]), /^usr_[0-9a-f]{24}$/);
    assert.equal(account["email"], "grace@example.com");
    const billing = resultOf(finished.step("setup_billing_profile"));
    assert.deepEqual([billing["trial_days"], billing["billing_status"]], [14, "trialing"]);
    assert.equal(billing["billing_id"], `bill_${String(account["user_id"]).slice(4)}`);
    const welcome = resultOf(finished.step("send_welcome_sequence"));
    assert.deepEqual(welcome["channels_used"], ["email", "push"]);
    assert.equal(welcome["messages_sent"], 3);
    const status = resultOf(finished.step("update_user_status"));
    assert.deepEqual(
      [status["status"], status["welcome_sent"], status["user_id"]],
      ["active", true, account["user_id"]],
    );

    // The join ran only after both branches had finished.
    const join = finished.step("send_welcome_sequence");
    for (const branch of ["setup_billing_profile", "initialize_preferences"]) {
      const [ended, began] = [
        Date.parse(String(finished.step(branch).finishedAt)),
        Date.parse(String(join.startedAt)),
      ];
      assert.ok(ended <= began, `${branch} finished (${ended}) before the join began (${began})`);
    }
  });

  test("a disposable email fails the first step for good, and nothing after it runs", async () => {
    await startCoordinator();
    await Promise.all(SERVICES.map((service) => startService(service)));

    const finished = await register({ email: "someone@mailinator.com" });
    assert.equal(finished.status, "failed");
    const create = finished.step("create_user_account");
    assert.deepEqual(
      [create.state, create.attempts, create.error?.code],
      ["failed", 1, "BLOCKED_EMAIL_DOMAIN"],
    );
    assert.equal(create.error?.retryable, false);
    for (const name of [
      "setup_billing_profile",
      "initialize_preferences",
      "send_welcome_sequence",
      "update_user_status",
    ]) {
      assert.notEqual(finished.step(name).state, "completed", name);
    }
  });

  test("with billing down, billing is retried until its attempts run out and the task fails", async () => {
    await startCoordinator();
    await Promise.all([
      startService("user"),
      startService("billing", "--billing-down"),
      startService("preferences"),
      startService("notifications"),
    ]);

    const finished = await register({ email: "ada@example.com", plan: "free" });
    assert.equal(finished.status, "failed");
    const billing = finished.step("setup_billing_profile");
    assert.deepEqual([billing.state, billing.attempts], ["failed", 3], JSON.stringify(billing));
    assert.equal(billing.error?.code, "BILLING_SERVICE_UNAVAILABLE");
    assert.equal(finished.step("initialize_preferences").state, "completed");
    assert.notEqual(finished.step("send_welcome_sequence").state, "completed");
  });
});
