/**
 * Asking for tasks and waiting for their outcome, as the Python SDK's
 * client does.
 *
 * A {@link Client} publishes task requests (confirmed, `mandatory`) with
 * `reply_to` naming a private queue of its own: server-named, exclusive,
 * deleted with the connection. The coordinator answers there with the
 * task's task-finished message, or task-rejected if it refuses the request:
 *
 * ```ts
 * const client = await Client.connect(url);
 * const submitted = await client.createTask("microservices", "user_registration", context);
 * const outcome = await submitted.wait(60);
 * if (outcome.kind === "rejected") { ... }
 * await client.close();
 * ```
 *
 * Replies are matched by `correlation_id` (the request id, which the
 * coordinator copies onto its replies) and, failing that, by their body's
 * `request_id`; for a coordinator that predates it, by the `task_id` of a
 * task finished.
 */

import { randomUUID } from "node:crypto";

import type * as amqp from "amqplib";

import { Broker, consoleLogger, type Logger, properties, type Publisher } from "./broker.js";
import { DEFAULT_AMQP_URL, DEFAULT_MAX_MESSAGE_BYTES } from "./config.js";
import { checkSecurity, type ConnectionSecurity, securityFromEnv, securityOf } from "./security.js";
import { TaskerError } from "./errors.js";
import {
  DecodeError,
  decodeObject,
  encode,
  errorText,
  isObject,
  type JsonObject,
  taskIdOf,
  taskRequest,
} from "./messages.js";
import * as topology from "./topology.js";
import { MessageType } from "./topology.js";

/** No task finished or task rejected came for a request in time. */
export class ReplyTimeoutError extends TaskerError {
  constructor(message: string) {
    super(message);
    this.name = "ReplyTimeoutError";
  }
}

/** The error of a failed attempt, as a task-finished step report carries it. */
export interface StepReportError {
  retryable: boolean;
  code: string;
  message: string;
  retryAfterSeconds?: number | undefined;
}

/** One step of a finished task. */
export interface StepReport {
  name: string;
  state: string;
  attempts: number;
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
  /** The result of a completed step; `undefined` when it has none. */
  result?: unknown;
  error?: StepReportError | undefined;
  childTaskId?: string | undefined;
}

/** A task's final state, once every step has ended. */
export class TaskFinished {
  readonly kind = "finished";
  readonly taskId: string;
  readonly namespace: string;
  readonly name: string;
  readonly version: string;
  /** `complete`, `failed` or `cancelled`. */
  readonly status: string;
  readonly createdAt: string;
  readonly finishedAt: string;
  readonly steps: readonly StepReport[];
  readonly resultsOmitted: boolean;
  /** In the copy sent to a requester's `reply_to`: that requester's request id. */
  readonly requestId: string | undefined;
  /** The message as it came. */
  readonly raw: Readonly<Record<string, unknown>>;

  private constructor(m: Record<string, unknown>, steps: StepReport[]) {
    this.taskId = String(m["task_id"]);
    this.namespace = String(m["namespace"]);
    this.name = String(m["name"]);
    this.version = String(m["version"]);
    this.status = String(m["status"]);
    this.createdAt = String(m["created_at"]);
    this.finishedAt = String(m["finished_at"]);
    this.steps = steps;
    this.resultsOmitted = m["results_omitted"] === true;
    this.requestId = typeof m["request_id"] === "string" ? m["request_id"] : undefined;
    this.raw = m;
  }

  /**
   * Reads a task-finished body.
   *
   * @throws DecodeError `invalid_message` when a field is missing.
   */
  static fromJson(m: Record<string, unknown>): TaskFinished {
    for (const field of [
      "task_id",
      "namespace",
      "name",
      "version",
      "status",
      "created_at",
      "finished_at",
    ]) {
      if (typeof m[field] !== "string")
        throw invalid(`not a task-finished message: it needs ${field}`);
    }
    const steps = m["steps"];
    if (!Array.isArray(steps)) throw invalid("not a task-finished message: it needs steps");
    return new TaskFinished(m, steps.map(stepReport));
  }

  /**
   * The report of step `name`.
   *
   * @throws Error naming the steps there are.
   */
  step(name: string): StepReport {
    const report = this.steps.find((s) => s.name === name);
    if (report === undefined) {
      const known = this.steps.map((s) => s.name).join(", ") || "none";
      throw new Error(
        `task ${this.taskId} has no step ${JSON.stringify(name)}; its steps: ${known}`,
      );
    }
    return report;
  }
}

/** The coordinator refused a task request. */
export class TaskRejected {
  readonly kind = "rejected";
  /** Such as `unknown_template` or `idempotency_conflict`. */
  readonly code: string;
  readonly reason: string;
  readonly requestId: string | undefined;
  readonly namespace: string | undefined;
  readonly name: string | undefined;

  private constructor(m: Record<string, unknown>) {
    this.code = String(m["code"]);
    this.reason = String(m["reason"]);
    this.requestId = optionalString(m["request_id"]);
    this.namespace = optionalString(m["namespace"]);
    this.name = optionalString(m["name"]);
  }

  /**
   * Reads a task-rejected body.
   *
   * @throws DecodeError `invalid_message` when `code` or `reason` is missing.
   */
  static fromJson(m: Record<string, unknown>): TaskRejected {
    if (typeof m["code"] !== "string" || typeof m["reason"] !== "string") {
      throw invalid("not a task-rejected message: it needs code and reason");
    }
    return new TaskRejected(m);
  }
}

/** How the coordinator answered a request. */
export type Reply = TaskFinished | TaskRejected;

/** Options of {@link Client.createTask}. */
export interface TaskOptions {
  /** The template's version; its highest version when left out. */
  version?: string | undefined;
  /** A second request with the same key gets the same task. */
  idempotencyKey?: string | undefined;
  /** The request's id; a fresh UUID when left out. */
  requestId?: string | undefined;
}

interface Waiter {
  promise: Promise<Reply>;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  settled: boolean;
}

/** A request that was published and confirmed, to wait on. */
export class Submitted {
  /** The request's id; replies carry it as their correlation id. */
  readonly requestId: string;
  /** The task's id, as derived from the request. */
  readonly taskId: string;
  readonly #client: Client;

  constructor(client: Client, requestId: string, taskId: string) {
    this.#client = client;
    this.requestId = requestId;
    this.taskId = taskId;
  }

  /**
   * The task's outcome: a {@link TaskFinished} once it has ended, or a
   * {@link TaskRejected} if the coordinator refused the request.
   *
   * @throws ReplyTimeoutError if no reply comes within `timeoutSeconds`.
   */
  async wait(timeoutSeconds = 300): Promise<Reply> {
    const waiter = this.#client.waiter(this.requestId);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new ReplyTimeoutError(
            `no reply for task request ${this.requestId} (task ${this.taskId}) within ${timeoutSeconds} s; ` +
              "is a coordinator serving that namespace running?",
          ),
        );
      }, timeoutSeconds * 1000);
    });
    try {
      return await Promise.race([waiter.promise, timeout]);
    } finally {
      clearTimeout(timer);
      this.#client.forget(this.requestId);
    }
  }
}

/** How a client connects: again, when its connection died. */
interface ConnectArgs {
  amqpUrl: string;
  name: string;
  heartbeat: number;
  security: ConnectionSecurity;
}

/** Options of {@link Client.connect}. */
export interface ClientOptions extends ConnectionSecurity {
  /** Shown in the broker's connection list (`tasker-client` by default). */
  name?: string;
  /** Seconds between AMQP heartbeats, unless the URL says (`?heartbeat=`); 5 by default. */
  heartbeat?: number;
  logger?: Logger;
}

/**
 * Publishes task requests and receives their replies on a private queue.
 * Use {@link Client.connect} to make one, and {@link close} it.
 *
 * When its connection dies (its broker node died, say), the next request
 * connects again, to the next node of the URL's list, and goes out on the
 * new connection. A request waiting for its reply when the connection died
 * may not get it: the reply goes to the private queue that died with the
 * connection, and {@link Submitted.wait} times out.
 */
export class Client {
  /** The name of the private queue replies come to. */
  replyQueue: string;
  #broker: Broker;
  #publisher: Publisher;
  #dead = false;
  #reconnecting: Promise<void> | undefined;
  readonly #args: ConnectArgs;
  readonly #log: Logger;
  readonly #waiters = new Map<string, Waiter>();
  readonly #tasks = new Map<string, string>();

  private constructor(session: Session, args: ConnectArgs, log: Logger) {
    this.#broker = session.broker;
    this.#publisher = session.publisher;
    this.replyQueue = session.replyQueue;
    this.#args = args;
    this.#log = log;
    this.#watch(session.broker);
  }

  /** Notes when `broker`'s connection dies, so that the next request replaces it. */
  #watch(broker: Broker): void {
    broker.connection.on("close", () => {
      if (this.#broker === broker) this.#dead = true;
    });
  }

  /**
   * Connects to the broker, declares the requests exchange (with its
   * alternate exchange and the unrouted queue) and opens a private reply queue.
   * `amqpUrl` may list a cluster's nodes, separated by commas, as
   * {@link Broker.connect} says.
   *
   * The password and the TLS files come from the environment, as a
   * worker's do (`TASKER_AMQP_PASSWORD` or `TASKER_AMQP_PASSWORD_FILE`,
   * `TASKER_TLS_CA_FILE`, `TASKER_TLS_CERT_FILE`, `TASKER_TLS_KEY_FILE`),
   * with the fields `options` gives on top.
   *
   * @throws ConfigError if `amqpUrl` is not an AMQP URL, or the password or
   *   the TLS files are set wrong or cannot be read.
   * @throws BrokerError if the broker cannot be reached or refuses us,
   *   saying what to check when the TLS handshake failed.
   */
  static async connect(
    amqpUrl: string = DEFAULT_AMQP_URL,
    options: ClientOptions = {},
  ): Promise<Client> {
    const log = options.logger ?? consoleLogger;
    const security = { ...securityFromEnv(), ...securityOf(options) };
    checkSecurity(security);
    const args = {
      amqpUrl,
      name: options.name ?? "tasker-client",
      heartbeat: options.heartbeat ?? 5,
      security,
    };
    // Replies come only for requests, which the client made here sends.
    const made: { client?: Client } = {};
    const session = await openSession(args, log, (delivery) => {
      if (made.client !== undefined) made.client.#onReply(delivery);
    });
    made.client = new Client(session, args, log);
    return made.client;
  }

  /** Replaces the connection that died with a new one, once for all requests waiting on it. */
  async #reconnect(): Promise<void> {
    this.#reconnecting ??= (async () => {
      try {
        const session = await openSession(this.#args, this.#log, (delivery) => {
          this.#onReply(delivery);
        });
        const dead = this.#broker;
        this.#broker = session.broker;
        this.#publisher = session.publisher;
        this.replyQueue = session.replyQueue;
        this.#dead = false;
        this.#watch(session.broker);
        this.#log.info("client connected again", { broker: session.broker.url });
        await dead.close();
      } finally {
        this.#reconnecting = undefined;
      }
    })();
    await this.#reconnecting;
  }

  /**
   * Asks for a task of template `namespace/name` (its highest version unless
   * `options.version` names one) with `context` as its input.
   *
   * @throws BrokerError if the request was not confirmed by the broker.
   */
  async createTask(
    namespace: string,
    name: string,
    context: JsonObject,
    options: TaskOptions = {},
  ): Promise<Submitted> {
    const requestId = options.requestId ?? randomUUID();
    const request = taskRequest(namespace, name, context, {
      requestId,
      version: options.version,
      idempotencyKey: options.idempotencyKey,
    });
    const taskId = taskIdOf(request);
    // The waiter is registered before the publish, so that no reply can come before it.
    this.waiter(requestId);
    this.#tasks.set(taskId, requestId);
    try {
      await this.#publishRequest(namespace, encode(request), taskId, requestId);
    } catch (e) {
      this.forget(requestId);
      throw e;
    }
    return new Submitted(this, requestId, taskId);
  }

  /**
   * Publishes a request with this client's reply queue; on a connection that
   * died, connects again and publishes it once more: the coordinator knows a
   * request by its id.
   */
  async #publishRequest(
    namespace: string,
    body: Buffer,
    taskId: string,
    requestId: string,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.#dead) await this.#reconnect();
      const props = {
        ...properties(MessageType.TASK_REQUEST, taskId),
        messageId: requestId,
        correlationId: requestId,
        replyTo: this.replyQueue,
      };
      try {
        await this.#publisher.publish(topology.REQUESTS_EXCHANGE, namespace, body, props, true);
        return;
      } catch (e) {
        if (attempt === 2 || !this.#dead) throw e;
      }
    }
  }

  /** {@link createTask}, then {@link Submitted.wait}. */
  async runTask(
    namespace: string,
    name: string,
    context: JsonObject,
    options: TaskOptions & { timeoutSeconds?: number } = {},
  ): Promise<Reply> {
    const submitted = await this.createTask(namespace, name, context, options);
    return submitted.wait(options.timeoutSeconds ?? 300);
  }

  /** Closes the connection; the reply queue goes with it. Pending waits reject. */
  async close(): Promise<void> {
    for (const waiter of this.#waiters.values()) {
      if (!waiter.settled) {
        waiter.settled = true;
        waiter.reject(new TaskerError("the client was closed before the reply came"));
      }
    }
    this.#waiters.clear();
    await this.#broker.close();
  }

  /** @internal The waiter of `requestId`, made on first use. */
  waiter(requestId: string): Waiter {
    let waiter = this.#waiters.get(requestId);
    if (waiter === undefined) {
      let resolve: (reply: Reply) => void = () => undefined;
      let reject: (error: Error) => void = () => undefined;
      const promise = new Promise<Reply>((ok, fail) => {
        resolve = ok;
        reject = fail;
      });
      // A reply nobody waits for yet must not be an unhandled rejection.
      promise.catch(() => undefined);
      waiter = { promise, resolve, reject, settled: false };
      this.#waiters.set(requestId, waiter);
    }
    return waiter;
  }

  /** @internal */
  forget(requestId: string): void {
    this.#waiters.delete(requestId);
    for (const [taskId, request] of [...this.#tasks.entries()]) {
      if (request === requestId) this.#tasks.delete(taskId);
    }
  }

  /**
   * Hands a reply to its waiter. Replies are notifications on a private
   * queue: one that cannot be read is logged, not dead-lettered.
   */
  #onReply(delivery: amqp.ConsumeMessage | null): void {
    if (delivery === null) return;
    const type = delivery.properties.type as unknown;
    let reply: Reply;
    let byBody: string | undefined;
    try {
      const body = decodeObject(delivery.content, DEFAULT_MAX_MESSAGE_BYTES);
      if (type === MessageType.TASK_FINISHED) {
        const finished = TaskFinished.fromJson(body);
        reply = finished;
        byBody = finished.requestId ?? this.#tasks.get(finished.taskId);
      } else if (type === MessageType.TASK_REJECTED) {
        const rejected = TaskRejected.fromJson(body);
        reply = rejected;
        byBody = rejected.requestId;
      } else {
        return; // a command reply or another kind this client never asks for
      }
    } catch (e) {
      this.#log.warn("unreadable reply from the coordinator; ignoring it", {
        type,
        error: errorText(e),
      });
      return;
    }
    const correlation = delivery.properties.correlationId as unknown;
    const requestId = typeof correlation === "string" && correlation !== "" ? correlation : byBody;
    let waiter = this.#waiters.get(requestId ?? "");
    if (waiter === undefined && byBody !== undefined) waiter = this.#waiters.get(byBody);
    if (waiter !== undefined && !waiter.settled) {
      waiter.settled = true;
      waiter.resolve(reply);
    }
  }
}

function stepReport(value: unknown): StepReport {
  if (!isObject(value) || typeof value["name"] !== "string" || typeof value["state"] !== "string") {
    throw invalid("a step of a task-finished message needs name and state");
  }
  const error = value["error"];
  const report: StepReport = {
    name: value["name"],
    state: value["state"],
    attempts: typeof value["attempts"] === "number" ? value["attempts"] : 0,
    startedAt: optionalString(value["started_at"]),
    finishedAt: optionalString(value["finished_at"]),
    childTaskId: optionalString(value["child_task_id"]),
  };
  if ("result" in value) report.result = value["result"];
  if (isObject(error)) {
    report.error = {
      retryable: error["retryable"] === true,
      code: String(error["code"]),
      message: String(error["message"]),
      retryAfterSeconds:
        typeof error["retry_after_seconds"] === "number" ? error["retry_after_seconds"] : undefined,
    };
  }
  return report;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function invalid(detail: string): DecodeError {
  return new DecodeError("invalid_message", detail);
}

/** A connection, its publisher, and a private reply queue consumed by `onReply`. */
interface Session {
  broker: Broker;
  publisher: Publisher;
  replyQueue: string;
}

/**
 * Connects, declares the requests exchange (with its alternate exchange and
 * the unrouted queue) and opens a private reply queue, consumed by `onReply`.
 */
async function openSession(
  args: ConnectArgs,
  log: Logger,
  onReply: (delivery: amqp.ConsumeMessage | null) => void,
): Promise<Session> {
  const broker = await Broker.connect(args.amqpUrl, args.name, args.heartbeat, log, args.security);
  try {
    const publisher = await broker.publisher();
    const channel = await broker.channel();
    await broker.declareRequestsExchange();
    try {
      const queue = await channel.assertQueue("", {
        exclusive: true,
        autoDelete: true,
        durable: false,
      });
      await channel.consume(queue.queue, onReply, { noAck: true });
      return { broker, publisher, replyQueue: queue.queue };
    } catch (e) {
      throw broker.error(e);
    }
  } catch (e) {
    await broker.close();
    throw e;
  }
}
