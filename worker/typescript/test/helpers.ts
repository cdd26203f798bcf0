/**
 * Helpers for tests against the real RabbitMQ (`TASKER_AMQP_URL`, by default
 * the local one), and the real coordinator (`TASKER_BIN`). Every test makes
 * up its own namespace, so tests cannot see each other's messages, and
 * deletes that namespace's queues and exchanges at the end.
 * Nothing here sleeps to wait: a watch waits for the next message until a
 * deadline, and fails the test with what it was waiting for (a coordinator's
 * start alone is polled, until it consumes).
 */

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

import * as amqp from "amqplib";

import {
  type Logger,
  type StepContext,
  StepHandler,
  type StepHandlerClass,
  topology,
  Worker,
  type WorkerConfig,
} from "../src/index.js";
import { Broker, brokerUrls } from "../src/broker.js";
import { errorText } from "../src/messages.js";

export const AMQP_URL = process.env["TASKER_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f";
/** For the tests' own connections: amqplib takes one URL, so a cluster's first node. */
export const NODE_URL = brokerUrls(AMQP_URL)[0] ?? AMQP_URL;
// The coordinator of the cargo build; from dist/test, the repository is four levels up.
export const TASKER_BIN =
  process.env["TASKER_BIN"] ?? new URL("../../../../target/debug/tasker", import.meta.url).pathname;
export const REDIS_URL = process.env["TASKER_REDIS_URL"] ?? "redis://127.0.0.1:6379";

/** A name no other test uses: `<prefix>_<random>`. */
export function unique(prefix: string): string {
  return `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** A step-ready body, as the coordinator would publish it. */
export function stepReady(
  namespace: string,
  callable: string,
  options: {
    step?: string;
    context?: unknown;
    taskId?: string;
    attempt?: number;
    maxAttempts?: number;
    timeoutSeconds?: number;
    dependencyResults?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  const dependencyResults = options.dependencyResults ?? {};
  const body: Record<string, unknown> = {
    protocol_version: 1,
    task_id: options.taskId ?? randomUUID(),
    namespace,
    task_name: "task",
    task_version: "1.0.0",
    step: options.step ?? "s1",
    callable,
    attempt: options.attempt ?? 1,
    max_attempts: options.maxAttempts ?? 3,
    context: options.context ?? {},
    initialization: {},
    dependencies: Object.keys(dependencyResults).sort(),
    dependency_results: dependencyResults,
  };
  if (options.timeoutSeconds !== undefined) {
    body["timeout_seconds"] = options.timeoutSeconds;
  }
  return body;
}

/** The messages a private queue receives, in order. */
export class Watch {
  readonly #received: amqp.ConsumeMessage[] = [];
  readonly #waiters: ((message: amqp.ConsumeMessage) => void)[] = [];

  push(message: amqp.ConsumeMessage): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter(message);
    } else {
      this.#received.push(message);
    }
  }

  /** The next message, or a failure at the deadline. */
  next(what = "a message", timeoutMs = 15_000): Promise<amqp.ConsumeMessage> {
    const first = this.#received.shift();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (message: amqp.ConsumeMessage): void => {
        clearTimeout(timer);
        resolve(message);
      };
      this.#waiters.push(waiter);
    });
  }

  /** The body of the next message, decoded. */
  async nextJson(what = "a message", timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const message = await this.next(what, timeoutMs);
    return JSON.parse(message.content.toString("utf8")) as Record<string, unknown>;
  }

  /** The next message that `accept` takes, skipping others. */
  async nextWhere(
    accept: (m: amqp.ConsumeMessage) => boolean,
    what: string,
    timeoutMs = 15_000,
  ): Promise<amqp.ConsumeMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      const message = await this.next(what, left);
      if (accept(message)) return message;
    }
  }

  /** Whether nothing arrives within `ms`. */
  async quietFor(ms: number): Promise<amqp.ConsumeMessage | undefined> {
    try {
      return await this.next("anything", ms);
    } catch {
      return undefined;
    }
  }
}

/** A logger that keeps what it is told, for assertions, and prints nothing. */
export class MemoryLogger implements Logger {
  readonly records: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  debug(message: string, fields: Record<string, unknown> = {}): void {
    this.records.push({ level: "debug", message, fields });
  }
  info(message: string, fields: Record<string, unknown> = {}): void {
    this.records.push({ level: "info", message, fields });
  }
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.records.push({ level: "warn", message, fields });
  }
  error(message: string, fields: Record<string, unknown> = {}): void {
    this.records.push({ level: "error", message, fields });
  }
}

/**
 * The test's own view of the broker: publishing as the coordinator would,
 * watching what workers publish, running workers, and cleaning up.
 */
export class Bus {
  readonly connection: amqp.ChannelModel;
  readonly channel: amqp.ConfirmChannel;
  readonly namespace: string;
  readonly #brokerUrl: string;
  readonly #queues = new Set<string>();
  readonly #exchanges = new Set<string>();
  readonly #workers: Worker[] = [];
  readonly #brokers: Broker[] = [];

  private constructor(
    connection: amqp.ChannelModel,
    channel: amqp.ConfirmChannel,
    namespace: string,
    brokerUrl: string,
  ) {
    this.connection = connection;
    this.channel = channel;
    this.namespace = namespace;
    this.#brokerUrl = brokerUrl;
  }

  /**
   * Connects to `url` (by default the tests' broker), as guest would, with a
   * namespace of its own: `<prefix>_<random>`.
   */
  static async connect(prefix = "ts", url = AMQP_URL): Promise<Bus> {
    const connection = await amqp.connect(brokerUrls(url)[0] ?? url);
    connection.on("error", () => undefined);
    const channel = await connection.createConfirmChannel();
    channel.on("error", () => undefined);
    await channel.assertExchange(topology.EVENTS_EXCHANGE, "topic", { durable: true });
    await channel.assertExchange(topology.STEPS_EXCHANGE, "direct", { durable: true });
    await channel.assertExchange(topology.DEAD_LETTER_EXCHANGE, "fanout", { durable: true });
    const namespace = unique(prefix);
    const bus = new Bus(connection, channel, namespace, url);
    bus.remember(topology.requestQueue(namespace), topology.resultQueue(namespace));
    bus.rememberExchange(topology.namespaceStepsExchange(namespace));
    return bus;
  }

  /** Queues to delete at the end. */
  remember(...queues: string[]): void {
    for (const queue of queues) this.#queues.add(queue);
  }

  /** Exchanges to delete at the end, after the queues. */
  rememberExchange(...exchanges: string[]): void {
    for (const exchange of exchanges) this.#exchanges.add(exchange);
  }

  /** The queues and the exchange of service `service` split over `partitions` queues, to delete at the end. */
  rememberPartitions(service: string, partitions: number): void {
    this.remember(topology.serviceQueue(this.namespace, service));
    this.rememberExchange(topology.serviceExchange(this.namespace, service));
    for (let index = 0; index < partitions; index++) {
      this.remember(topology.partitionQueue(this.namespace, service, index));
    }
  }

  /** A worker's own connection to the broker, for its declarations; closed at the end. */
  async broker(logger: Logger = new MemoryLogger()): Promise<Broker> {
    const broker = await Broker.connect(this.#brokerUrl, unique("ts-test-broker"), 5, logger);
    this.#brokers.push(broker);
    return broker;
  }

  /** Publishes `body` (mandatory, confirmed) and returns its message id. */
  async publish(
    exchange: string,
    routingKey: string,
    body: Buffer | Record<string, unknown>,
    headers: Record<string, unknown> = {},
  ): Promise<string> {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const messageId = randomUUID();
    const returned: amqp.Message[] = [];
    const onReturn = (message: amqp.Message): void => {
      returned.push(message);
    };
    this.channel.once("return", onReturn);
    await new Promise<void>((resolve, reject) => {
      this.channel.publish(
        exchange,
        routingKey,
        payload,
        {
          contentType: "application/json",
          type: topology.MessageType.STEP_READY,
          messageId,
          persistent: true,
          mandatory: true,
          headers: { "x-tasker-protocol-version": 1, ...headers },
        },
        (err: unknown) =>
          err ? reject(err instanceof Error ? err : new Error(errorText(err))) : resolve(),
      );
    });
    this.channel.off("return", onReturn);
    if (returned.length > 0)
      throw new Error(`nothing took the message for ${exchange} ${routingKey}`);
    return messageId;
  }

  /** Publishes a step-ready message to `tasker.steps`, routed to the service that serves `callable`. */
  publishStep(
    body: Buffer | Record<string, unknown>,
    callable: string,
    headers: Record<string, unknown> = {},
  ): Promise<string> {
    return this.publish(
      topology.STEPS_EXCHANGE,
      topology.stepRoutingKey(this.namespace, callable),
      body,
      headers,
    );
  }

  /**
   * Routes the steps of `callables` in `namespace` (by default the test's)
   * from `tasker.steps` to the namespace's steps exchange, declared here,
   * as a coordinator does at its start.
   */
  async routeSteps(callables: readonly string[], namespace = this.namespace): Promise<string> {
    const steps = topology.namespaceStepsExchange(namespace);
    this.rememberExchange(steps);
    await this.channel.assertExchange(steps, "direct", { durable: true });
    for (const callable of callables) {
      await this.channel.bindExchange(
        steps,
        topology.STEPS_EXCHANGE,
        topology.stepRoutingKey(namespace, callable),
      );
    }
    return steps;
  }

  /** A private queue bound to `exchange` with `routingKey`. */
  async watch(exchange: string, routingKey = ""): Promise<Watch> {
    const watch = new Watch();
    const { queue } = await this.channel.assertQueue("", { exclusive: true, autoDelete: true });
    await this.channel.bindQueue(queue, exchange, routingKey);
    await this.channel.consume(queue, (m) => m !== null && watch.push(m), { noAck: true });
    return watch;
  }

  /** What reaches `queue`, a queue declared already, taken off it as it comes. */
  async consume(queue: string): Promise<Watch> {
    const watch = new Watch();
    await this.channel.consume(queue, (m) => m !== null && watch.push(m), { noAck: true });
    return watch;
  }

  /** The step results of the test's namespace. */
  results(): Promise<Watch> {
    return this.watch(topology.EVENTS_EXCHANGE, topology.stepResultRoutingKey(this.namespace));
  }

  /** A worker of service `svc` serving the test's namespace with `handlers`, once it consumes. */
  async startWorker(
    handlers: (StepHandlerClass | StepHandler)[],
    config: Partial<WorkerConfig> = {},
    logger: Logger = new MemoryLogger(),
  ): Promise<Worker> {
    const worker = new Worker(
      { amqpUrl: this.#brokerUrl, service: "svc", ...config },
      { logger },
    ).namespace(this.namespace);
    for (const handler of handlers) worker.handler(handler);
    this.#workers.push(worker);
    this.remember(topology.serviceQueue(this.namespace, worker.config.service));
    if (worker.config.partitions > 1) {
      this.rememberPartitions(worker.config.service, worker.config.partitions);
    }
    const running = worker.run({ handleSignals: false });
    await Promise.race([worker.ready, running]);
    return worker;
  }

  /** (messages ready, consumers) of `queue`. */
  async queueState(queue: string): Promise<[number, number]> {
    const channel = await this.connection.createChannel();
    try {
      const state = await channel.checkQueue(queue);
      return [state.messageCount, state.consumerCount];
    } finally {
      await channel.close();
    }
  }

  /** Whether the exchange or queue `name` exists, asked on a channel of its own (a 404 closes it). */
  async exists(kind: "exchange" | "queue", name: string): Promise<boolean> {
    const channel = await this.connection.createChannel();
    channel.on("error", () => undefined);
    try {
      await (kind === "exchange" ? channel.checkExchange(name) : channel.checkQueue(name));
      return true;
    } catch (e) {
      if ((e as { code?: unknown }).code === 404) return false;
      throw e;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Stops every worker, deletes the test's queues and exchanges, and closes. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#workers.map((w) => w.stop()));
    await Promise.allSettled(this.#brokers.map((b) => b.close()));
    const channel = await this.connection.createChannel();
    channel.on("error", () => undefined);
    for (const queue of this.#queues) {
      try {
        await channel.deleteQueue(queue);
      } catch {
        // already gone
      }
    }
    for (const exchange of this.#exchanges) {
      try {
        await channel.deleteExchange(exchange);
      } catch {
        // already gone
      }
    }
    await channel.close().catch(() => undefined);
    await this.connection.close();
  }
}

/** Sleeps `ms`, counting how many steps run at once. */
export class Counted extends StepHandler {
  static override readonly handlerName = "Tests::Counted";
  running = 0;
  most = 0;

  async call(context: StepContext): Promise<unknown> {
    this.running += 1;
    this.most = Math.max(this.most, this.running);
    try {
      await new Promise((resolve) => setTimeout(resolve, context.getInput("ms", "number")));
    } finally {
      this.running -= 1;
    }
    return null;
  }
}

/** How many consumers `queue` has, on a connection of its own (a missing queue closes the channel). */
async function consumerCount(queue: string, url: string): Promise<number> {
  const connection = await amqp.connect(url);
  connection.on("error", () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on("error", () => undefined);
    return (await channel.checkQueue(queue)).consumerCount;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** A coordinator process, its log, and its temporary templates directory. */
export class Coordinator {
  readonly #process: ChildProcess;
  readonly #dir: string;
  readonly #nodeUrl: string;
  readonly log: string;
  #exited = false;

  private constructor(process: ChildProcess, dir: string, log: string, nodeUrl: string) {
    this.#process = process;
    this.#dir = dir;
    this.#nodeUrl = nodeUrl;
    this.log = log;
    process.on("exit", () => {
      this.#exited = true;
    });
  }

  /**
   * Starts one loading `templates` (file name to YAML), added to `started`
   * at once (to be stopped even if it never gets ready), ready once it
   * consumes each namespace's requests. It connects to `amqpUrl` as it is:
   * the coordinator is not given the SDK's password or TLS settings.
   */
  static async start(
    started: Coordinator[],
    templates: Record<string, string>,
    namespaces: string[],
    amqpUrl: string = AMQP_URL,
  ): Promise<Coordinator> {
    const dir = mkdtempSync(join(tmpdir(), "tasker-ts-client-"));
    const templatesDir = join(dir, "templates");
    mkdirSync(templatesDir);
    for (const [name, yaml] of Object.entries(templates))
      writeFileSync(join(templatesDir, name), yaml);
    // Only what the coordinator needs: settings meant for a worker must not reach it.
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && !key.startsWith("TASKER_") && !key.startsWith("OTEL_"))
        env[key] = value;
    }
    Object.assign(env, {
      TASKER_AMQP_URL: amqpUrl,
      TASKER_REDIS_URL: REDIS_URL,
      RUST_LOG: "info",
    });
    const log = join(dir, "coordinator.log");
    const out = openSync(log, "w");
    const child = spawn(TASKER_BIN, ["coordinator", "--templates", templatesDir], {
      env,
      stdio: ["ignore", out, out],
    });
    closeSync(out);
    const coordinator = new Coordinator(child, dir, log, brokerUrls(amqpUrl)[0] ?? amqpUrl);
    started.push(coordinator);
    for (const namespace of namespaces) {
      await coordinator.#consuming(topology.requestQueue(namespace));
    }
    return coordinator;
  }

  async #consuming(queue: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    let last = "";
    while (Date.now() < deadline) {
      if (this.#exited)
        throw new Error(`the coordinator exited: ${readFileSync(this.log, "utf8")}`);
      try {
        const consumers = await consumerCount(queue, this.#nodeUrl);
        if (consumers >= 1) return;
        last = `consumers ${consumers}`;
      } catch (e) {
        last = String(e); // not declared yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
      `timed out waiting for the coordinator consuming ${queue} (last: ${last}; its log: ${this.log})`,
    );
  }

  /** Stops it with SIGTERM (SIGKILL after 20 s) and removes its directory. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.#process.once("exit", () => resolve()));
      this.#process.kill("SIGTERM");
      const timer = setTimeout(() => this.#process.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
