/**
 * The worker: consumes the step-ready messages of its service, runs their
 * handlers, publishes each result, and acks a step only once its result is
 * safe with the broker (docs/protocol.md, "What a worker does with a
 * step-ready message"). It behaves as the Python and Rust SDKs' workers do:
 *
 * - concurrency is the prefetch: at most that many unacked steps, shared
 *   out over the queues of a service split over several (`partitions`);
 * - a step's result is published `mandatory` and confirmed, then the step is
 *   acked; if the worker dies in between, the step is delivered again;
 * - a step that runs past `timeout_seconds` fails retryably with `timeout`;
 *   a handler that throws anything but a {@link StepError} fails it with
 *   `handler_panic`, and the worker goes on;
 * - what cannot be decoded, or was delivered too often, is dead-lettered;
 * - a step redelivered after its result was published is answered with the
 *   remembered result rather than run twice;
 * - a lost connection is replaced, with backoff; on SIGTERM, SIGINT or
 *   {@link Worker.stop} the worker stops consuming, lets in-flight steps
 *   finish within a grace period, and closes, which hands every unacked step
 *   back to its queue, then flushes the spans not yet exported;
 * - each delivery is a consumer span `process <step>`, the child of the
 *   context its message carries (telemetry.ts), and each step's handler
 *   time and queue wait are recorded in {@link METRICS}.
 */

import { randomUUID } from "node:crypto";
import type * as http from "node:http";

import {
  type Attributes,
  type Context,
  context as otelContext,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace as otelTrace,
} from "@opentelemetry/api";
import type * as amqp from "amqplib";

import { Identity, type ServedNamespace } from "./announce.js";
import {
  ack,
  Broker,
  consoleLogger,
  deliveryCount,
  type Logger,
  properties,
  type Properties,
  publishedAtMs,
  type Publisher,
} from "./broker.js";
import { checkConfig, configFromEnv, nameProblem, type WorkerConfig } from "./config.js";
import { type StartChild, StepContext } from "./context.js";
import {
  BrokerError,
  ConfigError,
  DeadLetterReason,
  ErrorCode,
  PermanentError,
  RetryableError,
  StepError,
} from "./errors.js";
import type { StepHandler, StepHandlerClass } from "./handler.js";
import {
  completed,
  DecodeError,
  decodeStepReady,
  encode,
  errorText,
  failed,
  type Outcome,
  type StepReady,
  requestText,
  stepResult,
  WaitingForChild,
  waitingForChild,
} from "./messages.js";
import { close, Health, RABBITMQ, serve } from "./health.js";
import { METRICS, type StepLabels } from "./metrics.js";
import { securityOf } from "./security.js";
import { extract, flushSpans, inject, tracer } from "./telemetry.js";
import * as topology from "./topology.js";
import { MessageType } from "./topology.js";

/** A published step result, as remembered to publish again. */
interface SentResult {
  readonly body: Buffer;
  readonly properties: Properties;
}

/**
 * The results this worker published last, by (task, step, attempt): when a
 * step comes back after its result was published but before its ack was (a
 * lost connection, a coordinator that republished after a crash), the worker
 * sends the result again instead of running the handler twice.
 */
export class RecentResults {
  readonly capacity: number;
  readonly #results = new Map<string, SentResult>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  static key(taskId: string, step: string, attempt: number): string {
    return JSON.stringify([taskId, step, attempt]);
  }

  /** The result published for `key`, if remembered. */
  get(key: string): SentResult | undefined {
    return this.#results.get(key);
  }

  /** Remembers `result`, forgetting the oldest beyond the capacity. */
  insert(key: string, result: SentResult): void {
    if (this.capacity <= 0) return;
    this.#results.delete(key);
    this.#results.set(key, result);
    while (this.#results.size > this.capacity) {
      const oldest = this.#results.keys().next();
      if (oldest.done === true) break;
      this.#results.delete(oldest.value);
    }
  }

  get size(): number {
    return this.#results.size;
  }
}

/** Options of {@link Worker.run}. */
export interface RunOptions {
  /** Stop on SIGTERM and SIGINT (default `true`). */
  readonly handleSignals?: boolean;
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The namespaces a worker serves and the handlers it knows:
 *
 * ```ts
 * await new Worker({ service: "billing" })
 *   .namespace("microservices")
 *   .handler(SetupBillingProfile)
 *   .run();
 * ```
 *
 * The configuration is {@link configFromEnv}'s, with the fields given here on top.
 */
export class Worker {
  readonly config: WorkerConfig;
  readonly #log: Logger;
  readonly #namespaces: string[] = [];
  readonly #handlers = new Map<string, StepHandler>();
  readonly #recent: RecentResults;
  readonly #identity: Identity;
  readonly #ready = deferred();
  #stop = deferred();
  #stopping = false;
  #running: Promise<void> | undefined;
  #queues: string[] = [];

  constructor(config: Partial<WorkerConfig> = {}, options: { logger?: Logger } = {}) {
    this.config = configFromEnv(config);
    this.#log = options.logger ?? consoleLogger;
    this.#recent = new RecentResults(this.config.rememberedResults);
    this.#identity = new Identity(
      randomUUID(),
      this.config.service,
      this.config.concurrency,
      new Date(),
      this.config.announceEvery,
    );
  }

  /** This worker process's id, as its announcements give it. */
  get workerId(): string {
    return this.#identity.workerId;
  }

  /** The service queues it consumes, of every namespace, once {@link ready}. */
  get queues(): readonly string[] {
    return this.#queues;
  }

  /** Resolves once the worker has declared its queues, consumes them, and has announced itself. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** Serves `namespace`'s steps too. */
  namespace(namespace: string): this {
    const problem = nameProblem(namespace);
    if (problem !== undefined) {
      throw new ConfigError(`the namespace ${JSON.stringify(namespace)} ${problem}`);
    }
    if (!this.#namespaces.includes(namespace)) {
      this.#namespaces.push(namespace);
    }
    return this;
  }

  /**
   * Runs `handler` for the steps whose template names its `handlerName` as
   * their callable. Give the class (constructed once, without arguments) or
   * an instance of it.
   *
   * @throws ConfigError if it has no `handlerName` or no `call` method.
   */
  handler(handler: StepHandlerClass | StepHandler): this {
    const instance: StepHandler = typeof handler === "function" ? new handler() : handler;
    const callable = (instance.constructor as Partial<StepHandlerClass>).handlerName;
    const className = instance.constructor.name || "the handler";
    if (typeof callable !== "string" || callable.length === 0) {
      throw new ConfigError(
        `${className} has no handlerName; give it 'static readonly handlerName = "<the template's handler.callable>"'`,
      );
    }
    if (typeof (instance as Partial<StepHandler>).call !== "function") {
      throw new ConfigError(
        `${className} (for ${JSON.stringify(callable)}) needs a method 'async call(context)'`,
      );
    }
    this.#handlers.set(callable, instance);
    return this;
  }

  /**
   * Consumes until {@link stop} (or SIGTERM or SIGINT), reconnecting when
   * the broker goes away. On stopping it stops consuming, lets in-flight
   * steps finish within `shutdownGrace`, announces itself as leaving, and
   * closes the connection, which hands every unacked step back to its queue.
   *
   * @throws ConfigError for a configuration that cannot work.
   * @throws BrokerError if the broker refuses the login or the vhost; any
   *   other broker failure is retried.
   */
  run(options: RunOptions = {}): Promise<void> {
    if (this.#running !== undefined) {
      throw new ConfigError("this worker already runs; create another Worker to run twice");
    }
    checkConfig(this.config);
    if (this.#namespaces.length === 0) {
      throw new ConfigError("a worker needs at least one namespace; call .namespace(..)");
    }
    if (this.#handlers.size === 0) {
      throw new ConfigError("a worker needs at least one handler; call .handler(HandlerClass)");
    }
    this.#running = this.#run(options.handleSignals ?? true);
    return this.#running;
  }

  /** Stops the worker as {@link run} says, and resolves once it has stopped. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stop.resolve();
    await this.#running;
  }

  async #run(handleSignals: boolean): Promise<void> {
    const onSignal = (): void => {
      void this.stop();
    };
    if (handleSignals) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    const state = new Health([RABBITMQ], this.#log);
    let server: http.Server | undefined;
    if (this.config.healthAddr !== undefined) {
      const [host, port] = this.config.healthAddr;
      try {
        server = await serve(host, port, state, this.#log);
      } catch (e) {
        throw new ConfigError(
          `cannot serve the health endpoints on ${host}:${port} (${e instanceof Error ? e.message : String(e)}); pass another address`,
        );
      }
    }
    let delay = 0.5;
    try {
      while (!this.#stopping) {
        try {
          await this.#serve(() => {
            delay = 0.5;
            state.up(RABBITMQ);
          });
          return;
        } catch (e) {
          if (!(e instanceof BrokerError) || !e.retryable) {
            throw e;
          }
          state.down(RABBITMQ, e);
          const wait = delay * (1 + Math.random() * 0.25);
          this.#log.warn("lost the broker; reconnecting", {
            error: e.message,
            in_seconds: Number(wait.toFixed(2)),
          });
          delay = Math.min(delay * 2, 30);
          await Promise.race([sleep(wait * 1000), this.#stop.promise]);
        }
      }
    } finally {
      if (server !== undefined) await close(server);
      await flushSpans();
      if (handleSignals) {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
    }
  }

  /** One connection's life: declare, consume, and on stopping drain. */
  async #serve(connected: () => void): Promise<void> {
    const config = this.config;
    const broker = await Broker.connect(
      config.amqpUrl,
      config.name,
      config.heartbeat,
      this.#log,
      securityOf(config),
    );
    const lost = deferred();
    const inFlight = new Set<Promise<void>>();
    const controllers = new Set<AbortController>();
    let accepting = true;
    let announcing: NodeJS.Timeout | undefined;
    try {
      broker.connection.on("close", () => lost.resolve());
      const publisher = await broker.publisher();
      const channel = await broker.channel();
      publisher.channel.on("close", () => lost.resolve());
      channel.on("close", () => lost.resolve());
      await broker.declareCommon();
      // RabbitMQ applies the prefetch to each consumer: shared out over the
      // queues, so that a split service takes no more than `concurrency` steps.
      const prefetch = Math.ceil(config.concurrency / config.partitions);
      await channel.prefetch(prefetch).catch((e: unknown) => {
        throw broker.error(e);
      });

      const callables = [...this.#handlers.keys()].sort();
      const serves: ServedNamespace[] = [];
      const consumers: string[] = [];
      const queues: string[] = [];
      for (const namespace of this.#namespaces) {
        await broker.declareNamespace(namespace);
        const declared = await broker.declareService(
          channel,
          namespace,
          config.service,
          callables,
          config.partitions,
        );
        const tag = randomUUID().slice(0, 8);
        for (const [index, queue] of declared.entries()) {
          const onDelivery = (delivery: amqp.ConsumeMessage | null): void => {
            if (delivery === null) {
              // The broker cancelled the consumer (its queue was deleted):
              // consume again on a new connection.
              lost.resolve();
              return;
            }
            if (!accepting) {
              // Delivered as the consumer was being cancelled: left unacked,
              // it goes back to the queue when the connection closes.
              return;
            }
            const controller = new AbortController();
            controllers.add(controller);
            const running = this.#handle(publisher, channel, queue, delivery, controller).finally(
              () => {
                inFlight.delete(running);
                controllers.delete(controller);
              },
            );
            inFlight.add(running);
          };
          try {
            const { consumerTag } = await channel.consume(queue, onDelivery, {
              noAck: false,
              consumerTag: `${config.name}-${namespace}-${index}-${tag}`,
            });
            consumers.push(consumerTag);
          } catch (e) {
            throw broker.error(e);
          }
          queues.push(queue);
        }
        serves.push({
          namespace,
          queue: topology.serviceQueue(namespace, config.service),
          callables,
          partitions: config.partitions,
        });
      }
      this.#queues = queues;
      connected();
      this.#log.info("worker ready", {
        service: config.service,
        namespaces: this.#namespaces.join(","),
        callables: callables.length,
        concurrency: config.concurrency,
        partitions: config.partitions,
        broker: broker.url,
      });
      // Announced once it consumes: a coordinator may then release the
      // steps that waited for these callables.
      try {
        await this.#identity.announce(publisher, serves, false);
      } catch (e) {
        this.#log.warn("the worker's announcement was not sent; the next one will be", {
          error: errorText(e),
        });
      }
      announcing = setInterval(() => {
        this.#identity.announce(publisher, serves, false).catch(() => undefined);
      }, config.announceEvery * 1000);
      this.#ready.resolve();

      await Promise.race([this.#stop.promise, lost.promise]);
      accepting = false;
      if (!this.#stopping) {
        throw new BrokerError(`rabbitmq at ${broker.url}: the connection or a channel closed`);
      }

      // Stop taking new work first, then give in-flight steps their grace.
      for (const tag of consumers) {
        try {
          await channel.cancel(tag);
        } catch {
          // the channel is gone: nothing more comes from it
        }
      }
      this.#log.info("stopping: finishing in-flight steps", {
        in_flight: inFlight.size,
        grace: config.shutdownGrace,
      });
      if (inFlight.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), config.shutdownGrace * 1000);
        });
        const finished = await Promise.race([
          Promise.allSettled([...inFlight]).then(() => true),
          graceOver,
        ]);
        clearTimeout(timer);
        if (!finished) {
          this.#log.warn("grace period over; unfinished steps go back to the queue", {
            unfinished: inFlight.size,
          });
        }
      }
      clearInterval(announcing);
      announcing = undefined;
      // Stopping on purpose: the coordinators drop it from the list now.
      await this.#identity.announce(publisher, serves, true).catch(() => undefined);
    } finally {
      accepting = false;
      if (announcing !== undefined) clearInterval(announcing);
      for (const controller of controllers) {
        controller.abort(new Error("the worker is closing"));
      }
      // A handler still running cannot be stopped from here: whatever it
      // returns later is published on a closed channel and never acked, so
      // its step goes back to the queue.
      await broker.close();
    }
  }

  /**
   * Runs one delivery to its end, in a consumer span: the result published
   * and confirmed, then the step acked; or the message dead-lettered. On a
   * failed publish the step stays unacked, and comes back when the
   * connection is replaced.
   */
  async #handle(
    publisher: Publisher,
    channel: amqp.Channel,
    queue: string,
    delivery: amqp.ConsumeMessage,
    controller: AbortController,
  ): Promise<void> {
    const parent = extract(delivery.properties.headers);
    const attributes: Attributes = {
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "process",
      "messaging.destination.name": queue,
      "messaging.rabbitmq.destination.routing_key": delivery.fields.routingKey,
    };
    const messageId: unknown = delivery.properties.messageId;
    if (typeof messageId === "string" && messageId.length > 0) {
      attributes["messaging.message.id"] = messageId;
    }
    // Named for its step once the message is decoded.
    const span = tracer().startSpan(
      "process step",
      { kind: SpanKind.CONSUMER, attributes },
      parent,
    );
    try {
      await this.#process(
        publisher,
        channel,
        queue,
        delivery,
        controller,
        span,
        otelTrace.setSpan(parent, span),
      );
    } catch (e) {
      if (e instanceof BrokerError) {
        this.#log.warn("step not acknowledged; it comes back when the connection is replaced", {
          queue,
          error: e.message,
        });
      } else {
        this.#log.error("a delivery failed unexpectedly; it stays unacknowledged", {
          queue,
          error: errorText(e),
        });
      }
    } finally {
      span.end();
    }
  }

  async #process(
    publisher: Publisher,
    channel: amqp.Channel,
    queue: string,
    delivery: amqp.ConsumeMessage,
    controller: AbortController,
    span: Span,
    spanContext: Context,
  ): Promise<void> {
    const config = this.config;
    let ready: StepReady;
    try {
      ready = decodeStepReady(delivery.content, config.maxMessageBytes);
    } catch (e) {
      if (e instanceof DecodeError) {
        await publisher.deadLetter(channel, delivery, queue, e.reason, e.detail);
        return;
      }
      throw e;
    }
    span.updateName(`process ${ready.step}`);
    span.setAttributes({
      "tasker.task.id": ready.taskId,
      "tasker.namespace": ready.namespace,
      "tasker.task.name": ready.taskName,
      "tasker.task.version": ready.taskVersion,
      "tasker.step.name": ready.step,
      "tasker.step.attempt": ready.attempt,
    });
    const headers = (delivery.properties.headers ?? {}) as Record<string, unknown>;
    const redeliveries = deliveryCount(headers);
    if (redeliveries > config.maxRedeliveries) {
      await publisher.deadLetter(
        channel,
        delivery,
        queue,
        DeadLetterReason.REDELIVERY_LIMIT,
        `redelivered ${redeliveries} times, over the limit of ${config.maxRedeliveries}; the step may crash its worker`,
      );
      return;
    }

    const key = RecentResults.key(ready.taskId, ready.step, ready.attempt);
    const ids = { task_id: ready.taskId, step: ready.step, attempt: ready.attempt };
    const routingKey = topology.stepResultRoutingKey(ready.namespace);
    const remembered = this.#recent.get(key);
    if (remembered !== undefined) {
      this.#log.info(
        "step already finished here; sending its result again instead of running it twice",
        ids,
      );
      await publisher.publish(
        topology.EVENTS_EXCHANGE,
        routingKey,
        remembered.body,
        remembered.properties,
        true,
      );
      ack(channel, delivery);
      return;
    }

    // This span's context, or without export the incoming one unchanged:
    // the coordinator's spans of the result are its children.
    const trace = inject(spanContext);
    const startChild: StartChild = async (request, childTaskId) => {
      const namespace = requestText(request, "namespace");
      const child = `${namespace}/${requestText(request, "name")}`;
      await publisher.publish(
        topology.REQUESTS_EXCHANGE,
        namespace,
        encode(request),
        properties(MessageType.TASK_REQUEST, childTaskId, trace),
        true,
      );
      this.#log.info("child task requested", { ...ids, child_task_id: childTaskId, child });
    };
    const labels: StepLabels = {
      namespace: ready.namespace,
      template: ready.taskName,
      step: ready.step,
    };
    const startedAt = new Date();
    const sentAt = publishedAtMs(headers);
    if (sentAt !== undefined) {
      METRICS.queueWait.observe(labels, Math.max(0, startedAt.getTime() - sentAt) / 1000);
    }
    const started = performance.now();
    // The handler runs in the delivery's span: the spans it starts join the task's trace.
    const outcome = await otelContext.with(spanContext, () =>
      this.runHandler(ready, controller, startChild),
    );
    METRICS.stepDuration.observe(labels, (performance.now() - started) / 1000);
    const finishedAt = new Date();
    let body: Buffer;
    try {
      body = encode(stepResult(ready, startedAt, finishedAt, outcome));
    } catch (e) {
      const error = new PermanentError(`the handler's result is not JSON: ${errorText(e)}`, {
        errorCode: ErrorCode.INVALID_RESULT,
      });
      body = encode(stepResult(ready, startedAt, finishedAt, failed(error)));
    }
    const limit = config.maxMessageBytes;
    if (body.length > limit) {
      // Never published: the coordinator would dead-letter it, and the step
      // would wait for its lease. A small failure goes instead.
      const error = new PermanentError(
        `the result of step ${ready.step} makes a step result of ${body.length} bytes, over the limit of ` +
          `${limit} bytes; return less (store large data elsewhere and return a reference to it), or raise ` +
          "the limit (TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker",
        { errorCode: ErrorCode.RESULT_TOO_LARGE },
      );
      body = encode(stepResult(ready, startedAt, finishedAt, failed(error)));
    }
    this.#recordOutcome(span, body, ids);
    const outgoing = properties(MessageType.STEP_RESULT, ready.taskId, trace);
    // Remembered before it is published: a redelivery that overtakes the
    // confirm, or that follows a failed publish, sends this result rather
    // than running the handler a second time.
    this.#recent.insert(key, { body, properties: outgoing });
    await publisher.publish(topology.EVENTS_EXCHANGE, routingKey, body, outgoing, true);
    ack(channel, delivery);
  }

  /**
   * Runs the step's handler; a timeout or an unexpected exception becomes
   * the step's failure instead of taking the worker down. Child task
   * requests go out through `startChild`; without it, a handler that starts
   * a child fails with `child_not_started`.
   */
  async runHandler(
    ready: StepReady,
    controller: AbortController = new AbortController(),
    startChild?: StartChild,
  ): Promise<Outcome> {
    const handler = this.#handlers.get(ready.callable);
    if (handler === undefined) {
      const known = [...this.#handlers.keys()].sort().join(", ") || "none";
      const quoted = JSON.stringify(ready.callable);
      return failed(
        new PermanentError(
          `this worker has no handler for callable ${quoted}; register a handler whose handlerName is ${quoted} ` +
            `(known: ${known})`,
          { errorCode: ErrorCode.HANDLER_NOT_FOUND },
        ),
      );
    }
    let context: StepContext;
    try {
      context = new StepContext(ready, controller.signal, startChild);
    } catch (e) {
      if (e instanceof StepError) return failed(e);
      throw e;
    }
    const running = Promise.resolve().then(() => handler.call(context));
    const limit = ready.timeoutSeconds;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (limit === undefined) {
        return outcomeOf(await running);
      }
      const TIMED_OUT = Symbol("timed out");
      const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMED_OUT), limit * 1000);
      });
      const value = await Promise.race([running, deadline]);
      if (value === TIMED_OUT) {
        // The handler cannot be stopped from outside: its signal asks it to,
        // and whatever it returns or throws later is thrown away.
        running.catch(() => undefined);
        const error = new RetryableError(`the handler ran past timeout_seconds (${limit} s)`, {
          errorCode: ErrorCode.TIMEOUT,
        });
        controller.abort(error);
        return failed(error);
      }
      return outcomeOf(value);
    } catch (e) {
      if (e instanceof StepError) {
        return failed(e);
      }
      this.#log.error("step handler threw", {
        task_id: ready.taskId,
        step: ready.step,
        error: errorText(e),
      });
      const what = e instanceof Error ? `${e.name}: ${e.message}` : describeThrown(e);
      return failed(
        new PermanentError(`the handler threw ${what}`, { errorCode: ErrorCode.HANDLER_PANIC }),
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Logs the step's outcome, and puts it on its span: `tasker.step.outcome`, and an error status with the code. */
  #recordOutcome(span: Span, body: Buffer, ids: Record<string, unknown>): void {
    const result = JSON.parse(body.toString("utf8")) as {
      status: string;
      error?: { code: string; retryable: boolean; message: string };
    };
    if (result.status === "waiting_for_child") {
      span.setAttribute("tasker.step.outcome", "waiting_for_child");
      this.#log.info("step waits for its child task", ids);
    } else if (result.error === undefined) {
      span.setAttribute("tasker.step.outcome", "completed");
      this.#log.info(`step ${result.status}`, ids);
    } else {
      span.setAttribute(
        "tasker.step.outcome",
        result.error.retryable ? "failed_retryable" : "failed_permanent",
      );
      span.setStatus({ code: SpanStatusCode.ERROR, message: result.error.code });
      this.#log.warn("step failed", { ...ids, ...result.error });
    }
  }
}

/**
 * The outcome of a handler that returned `value`: waiting for the child it
 * started, or completed with `value` as its result (`undefined`, nothing
 * returned, is `null`).
 */
function outcomeOf(value: unknown): Outcome {
  if (value instanceof WaitingForChild) {
    return waitingForChild(value.childTaskId);
  }
  return completed(value === undefined ? null : value);
}

function describeThrown(e: unknown): string {
  try {
    // undefined for undefined, a function or a symbol, whatever its declared type says
    const json = JSON.stringify(e) as string | undefined;
    return `${typeof e} ${json ?? String(e)}`;
  } catch {
    return typeof e;
  }
}
