/**
 * RabbitMQ for a worker: connect with a short heartbeat, declare the
 * topology with exactly the settings of docs/protocol.md ("Topology"), build
 * the properties every message carries, and publish with confirms.
 */

import { randomUUID } from "node:crypto";
import { debuglog } from "node:util";

import * as amqp from "amqplib";

import { BrokerError, ConfigError, type DeadLetterReason } from "./errors.js";
import { errorText } from "./messages.js";
import { METRICS } from "./metrics.js";
import {
  type ConnectionSecurity,
  TLS_HINT,
  tlsFailure,
  tlsOptions,
  type TlsOptions,
  urlCredentials,
  withPassword,
} from "./security.js";
import * as topology from "./topology.js";
import { Header } from "./topology.js";

/** What the SDK logs through; `console` by default. */
export interface Logger {
  /** Details for whoever looks into a problem; a logger may leave it out. */
  debug?(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Node's switch for a module's debug output: `NODE_DEBUG=tasker`. */
const debugging = debuglog("tasker").enabled;

/** One line of JSON per record on stderr; debug records only with `NODE_DEBUG=tasker`. */
export const consoleLogger: Logger = {
  debug: (message, fields) => {
    if (debugging) log("debug", message, fields);
  },
  info: (message, fields) => log("info", message, fields),
  warn: (message, fields) => log("warn", message, fields),
  error: (message, fields) => log("error", message, fields),
};

function log(level: string, message: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(
    `${JSON.stringify({ ts: new Date().toISOString(), level, message, ...fields })}\n`,
  );
}

/**
 * The URLs of the nodes that `urls` names: one URL, or several separated by
 * commas (`amqp://n1:5672/%2f,amqp://n2:5672/%2f`), each the URL of a node
 * of one cluster. Spaces around them and empty entries are ignored. A comma
 * in a password must be written `%2C`.
 */
export function brokerUrls(urls: string): string[] {
  return urls
    .split(",")
    .map((url) => url.trim())
    .filter((url) => url !== "");
}

/** `url` without its password, for messages; each of them, for several URLs separated by commas. */
export function redact(url: string): string {
  if (url.includes(",")) return brokerUrls(url).map(redact).join(",");
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an unreadable URL)";
  }
}

/**
 * `url` asking for a heartbeat every `heartbeat` seconds, unless it asks for
 * its own with `?heartbeat=`: the URL wins. AMQP counts whole seconds; a
 * fraction rounds up, so that a short heartbeat never turns into none.
 *
 * @throws ConfigError if `url` is not an AMQP URL.
 */
export function connectionUrl(url: string, heartbeat: number): string {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (parsed === undefined || !["amqp:", "amqps:"].includes(parsed.protocol) || !parsed.hostname) {
    throw new ConfigError(
      `${redact(url)} is not an AMQP URL; write it like ` +
        "amqp://user:password@host:5672/%2f (TASKER_AMQP_URL)",
    );
  }
  if (!parsed.searchParams.has("heartbeat")) {
    parsed.searchParams.set("heartbeat", String(heartbeat > 0 ? Math.ceil(heartbeat) : 0));
  }
  return parsed.toString();
}

/** The AMQP reply code of an error amqplib raised, if it carries one. */
export function replyCode(e: unknown): number | undefined {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "number") {
    return e.code;
  }
  return undefined;
}

const NOT_FOUND = 404;
const PRECONDITION_FAILED = 406;
const COMMAND_INVALID = 503;
const ACCESS_REFUSED = 403;
const NOT_ALLOWED = 530;

/** Connection attempts so far in this process: where in a list of nodes the next one starts. */
let connections = 0;

/**
 * Whether the broker refused the login or the vhost. amqplib gives a
 * handshake's refusal no code, only its text, which names the reply.
 */
function isRefused(e: unknown): boolean {
  const code = replyCode(e);
  return (
    code === ACCESS_REFUSED ||
    code === NOT_ALLOWED ||
    /ACCESS.REFUSED|NOT.ALLOWED/.test(errorText(e))
  );
}

/** Message properties as a Tasker publish sets them. */
export type Properties = amqp.Options.Publish;

/**
 * The properties of a Tasker message: persistent, JSON, typed, with a fresh
 * message id, the protocol version, the task id and the publish time in
 * headers. `extra` headers (the trace context) are added.
 */
export function properties(
  messageType: string,
  taskId?: string,
  extra: Readonly<Record<string, string>> = {},
): Properties {
  const headers: Record<string, unknown> = {
    [Header.PROTOCOL_VERSION]: topology.PROTOCOL_VERSION,
    // A long-long-int, whatever the value: the Rust processes read it in no other type.
    [Header.PUBLISHED_AT_MS]: { "!": "long", value: Date.now() },
    ...extra,
  };
  if (taskId !== undefined) {
    headers[Header.TASK_ID] = taskId;
  }
  return {
    persistent: true,
    contentType: topology.CONTENT_TYPE,
    type: messageType,
    messageId: randomUUID(),
    timestamp: Math.floor(Date.now() / 1000),
    headers,
  };
}

/** How many times RabbitMQ says a message was delivered before (`x-delivery-count`), in any integer type. */
export function deliveryCount(headers: Readonly<Record<string, unknown>> | undefined): number {
  const value = headers?.[Header.DELIVERY_COUNT];
  const count = typeof value === "bigint" ? Number(value) : value;
  return typeof count === "number" && Number.isInteger(count) && count > 0 ? count : 0;
}

/**
 * When a message was published, in Unix milliseconds, from its
 * `x-tasker-published-at-ms` header (a long-long-int, in any integer type).
 */
export function publishedAtMs(
  headers: Readonly<Record<string, unknown>> | undefined,
): number | undefined {
  const value = headers?.[Header.PUBLISHED_AT_MS];
  const ms = typeof value === "bigint" ? Number(value) : value;
  return typeof ms === "number" && Number.isInteger(ms) ? ms : undefined;
}

/** A connection to RabbitMQ and the declarations a worker makes on it. */
export class Broker {
  readonly connection: amqp.ChannelModel;
  readonly url: string;
  readonly #log: Logger;

  private constructor(connection: amqp.ChannelModel, url: string, logger: Logger) {
    this.connection = connection;
    this.url = url;
    this.#log = logger;
  }

  /**
   * Connects to `url` with a heartbeat every `heartbeat` seconds, named
   * `name` in the broker's connection list.
   *
   * `url` may name several nodes of a cluster, separated by commas
   * ({@link brokerUrls}). Each connection tries them in turn, starting one
   * further along the list than the process's previous connection did, so
   * that connections spread over the nodes and a reconnection after a node
   * died starts with another one. {@link Broker.url} is then the node reached.
   *
   * `security` gives the password of every URL, in place of the one in it,
   * and the CA and client certificate of `amqps://` URLs, whose files are
   * read at each connection.
   *
   * @throws ConfigError if no URL is given, one is not an AMQP URL, or a
   *   TLS file cannot be read.
   * @throws BrokerError not retryable if a broker refused the login or the
   * vhost (the others would too: a cluster shares its users); retryable if
   * no broker can be reached, naming every URL tried and the last error,
   * which says what to check when it was the TLS handshake that failed.
   */
  static async connect(
    url: string,
    name: string,
    heartbeat: number,
    logger: Logger,
    security: Readonly<ConnectionSecurity> = {},
  ): Promise<Broker> {
    const password = security.amqpPassword;
    const urls = brokerUrls(url).map((one) =>
      password === undefined ? one : withPassword(one, password),
    );
    if (urls.length === 0) {
      throw new ConfigError(
        "no RabbitMQ URL given: set TASKER_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f",
      );
    }
    // Every URL is checked before any is tried, so that a mistyped node
    // fails the start rather than a reconnection days later.
    const targets = urls.map((one) => ({ url: one, target: connectionUrl(one, heartbeat) }));
    const tls: TlsOptions = targets.some((node) => node.target.startsWith("amqps:"))
      ? await tlsOptions(security)
      : {};
    const first = connections++ % targets.length;
    const unreachable: string[] = [];
    let last: unknown;
    let lastTls: string | undefined;
    for (const node of [...targets.slice(first), ...targets.slice(0, first)]) {
      const login = urlCredentials(node.target);
      let connection: amqp.ChannelModel;
      try {
        // The timeout bounds a node that drops packets rather than refusing, so the next is tried.
        connection = await amqp.connect(node.target, {
          clientProperties: { connection_name: name },
          timeout: 30_000,
          ...(login === undefined
            ? {}
            : { credentials: amqp.credentials.plain(login.username, login.password) }),
          ...(node.target.startsWith("amqps:") ? tls : {}),
        });
      } catch (e) {
        if (isRefused(e)) {
          throw new BrokerError(
            `rabbitmq at ${redact(node.url)} refused the connection: ${errorText(e)}; check the user name ` +
              "and password (TASKER_AMQP_URL, TASKER_AMQP_PASSWORD or TASKER_AMQP_PASSWORD_FILE) and " +
              "that the user may use the vhost",
            { retryable: false },
          );
        }
        const handshake = tlsFailure(e);
        lastTls =
          handshake === undefined
            ? undefined
            : `the TLS handshake with rabbitmq at ${redact(node.url)} failed: ${handshake}; ${TLS_HINT}`;
        unreachable.push(redact(node.url));
        last = e;
        continue;
      }
      // Reported by the worker through 'close'; without a listener an 'error' event would throw.
      connection.on("error", () => undefined);
      return new Broker(connection, redact(node.url), logger);
    }
    if (lastTls !== undefined && unreachable.length === 1) throw new BrokerError(lastTls);
    throw new BrokerError(`rabbitmq at ${unreachable.join(", ")}: ${lastTls ?? errorText(last)}`);
  }

  /** A channel to consume and declare on. */
  async channel(): Promise<amqp.Channel> {
    try {
      const channel = await this.connection.createChannel();
      channel.on("error", () => undefined);
      return channel;
    } catch (e) {
      throw this.error(e);
    }
  }

  /** A channel in confirm mode to publish on. */
  async publisher(): Promise<Publisher> {
    try {
      const channel = await this.connection.createConfirmChannel();
      channel.on("error", () => undefined);
      return new Publisher(channel, this.url, this.#log);
    } catch (e) {
      throw this.error(e);
    }
  }

  /** Closes the connection, which hands every unacked delivery back to its queue. */
  async close(): Promise<void> {
    try {
      await this.connection.close();
    } catch {
      // already gone: nothing to hand back
    }
  }

  /**
   * `e` as a {@link BrokerError} naming the broker: retryable, but for a
   * refusal (ACCESS_REFUSED), which no reconnection fixes: the user lacks a
   * permission on one of the process's own queues or exchanges.
   */
  error(e: unknown): BrokerError {
    if (e instanceof BrokerError) return e;
    if (replyCode(e) === ACCESS_REFUSED) {
      return new BrokerError(
        `rabbitmq at ${this.url} refused: ${errorText(e)}; give the user the permissions this process ` +
          "needs on its own queues and exchanges (configure, write and read), or run it as a user that has them",
        { retryable: false },
      );
    }
    return new BrokerError(`rabbitmq at ${this.url}: ${errorText(e)}`);
  }

  /**
   * Declares `what`, an object every Tasker process shares, with `declare`
   * on a channel of its own, since a refusal closes the channel it came on.
   * A user without the permission to declare it (a worker's least-privilege
   * user) is refused with ACCESS_REFUSED: then the coordinators, which may,
   * declare it, and the declaration is skipped with a debug line, `refused`
   * if given. Any other error is thrown.
   */
  async #declareShared(
    what: string,
    declare: (channel: amqp.Channel) => Promise<unknown>,
    refused = `not allowed to declare ${what}; the coordinators declare it`,
  ): Promise<void> {
    const own = await this.connection.createChannel();
    own.on("error", () => undefined);
    try {
      await declare(own);
    } catch (e) {
      if (replyCode(e) !== ACCESS_REFUSED) throw e;
      this.#log.debug?.(refused, { error: errorText(e) });
    } finally {
      try {
        await own.close();
      } catch {
        // closed by a refusal already
      }
    }
  }

  /** Declares the shared exchange `name` of `type`, durable (see {@link #declareShared}). */
  async #sharedExchange(
    name: string,
    type: string,
    args: Record<string, unknown> = {},
  ): Promise<void> {
    await this.#declareShared(`exchange ${name}`, (channel) =>
      channel.assertExchange(name, type, { durable: true, autoDelete: false, arguments: args }),
    );
  }

  /** Declares the shared queue `name` (see {@link #declareShared} and {@link declareQueue}). */
  async #sharedQueue(name: string): Promise<void> {
    await this.#declareShared(`queue ${name}`, (channel) => this.#assertQueue(channel, name));
  }

  /** Binds the shared queue `queue` to `exchange` with `routingKey` (see {@link #declareShared}). */
  async #sharedBinding(queue: string, exchange: string, routingKey: string): Promise<void> {
    await this.#declareShared(`the binding of queue ${queue} to exchange ${exchange}`, (channel) =>
      channel.bindQueue(queue, exchange, routingKey),
    );
  }

  /**
   * Binds the exchange `destination` to the shared exchange `source` with
   * `routingKey` (see {@link #declareShared}).
   */
  async #sharedExchangeBinding(
    destination: string,
    source: string,
    routingKey: string,
  ): Promise<void> {
    await this.#declareShared(
      `the binding of exchange ${destination} to exchange ${source} with ${routingKey}`,
      (channel) => channel.bindExchange(destination, source, routingKey),
    );
  }

  /**
   * Declares what every process uses: the events exchange, and the
   * dead-letter exchange and queue. They are shared: a user not allowed to
   * declare them skips them ({@link #declareShared}).
   */
  async declareCommon(): Promise<void> {
    try {
      await this.#sharedExchange(topology.EVENTS_EXCHANGE, "topic");
      await this.#sharedExchange(topology.DEAD_LETTER_EXCHANGE, "fanout");
      await this.#sharedQueue(topology.DEAD_LETTER_QUEUE);
      await this.#sharedBinding(topology.DEAD_LETTER_QUEUE, topology.DEAD_LETTER_EXCHANGE, "");
    } catch (e) {
      throw this.error(e);
    }
  }

  /**
   * Declares the exchange clients publish requests to, with its alternate
   * exchange and the queue that catches requests for a namespace no
   * coordinator serves. They are shared, as in {@link declareCommon}.
   */
  async declareRequestsExchange(): Promise<void> {
    try {
      await this.#sharedExchange(topology.UNROUTED_REQUESTS_EXCHANGE, "fanout");
      await this.#sharedQueue(topology.UNROUTED_REQUESTS_QUEUE);
      await this.#sharedBinding(
        topology.UNROUTED_REQUESTS_QUEUE,
        topology.UNROUTED_REQUESTS_EXCHANGE,
        "",
      );
      await this.#sharedExchange(topology.REQUESTS_EXCHANGE, "direct", {
        [topology.ALTERNATE_EXCHANGE_ARGUMENT]: topology.UNROUTED_REQUESTS_EXCHANGE,
      });
    } catch (e) {
      throw this.error(e);
    }
  }

  /**
   * Declares the queues every process touching `namespace` shares, its task
   * requests and its step results, and the steps exchange, so that no
   * request or result of it is ever unroutable, whichever process starts
   * first. They are shared, as in {@link declareCommon}.
   */
  async declareNamespace(namespace: string): Promise<void> {
    await this.declareRequestsExchange();
    try {
      const requests = topology.requestQueue(namespace);
      await this.#sharedQueue(requests);
      await this.#sharedBinding(requests, topology.REQUESTS_EXCHANGE, namespace);
      await this.declareStepsExchange();
      const results = topology.resultQueue(namespace);
      await this.#sharedQueue(results);
      await this.#sharedBinding(
        results,
        topology.EVENTS_EXCHANGE,
        topology.stepResultRoutingKey(namespace),
      );
    } catch (e) {
      throw this.error(e);
    }
  }

  /**
   * Declares `service`'s queues of `namespace`'s steps, bound so that the
   * steps of each of `callables` reach them from then on, whether or not a
   * worker of the service runs, and returns the queues to consume.
   *
   * The steps come through the namespace's steps exchange,
   * `tasker.steps.<namespace>` ({@link routeNamespaceSteps}), not straight
   * from `tasker.steps`, so the worker's user needs `read` on its own
   * namespace's exchange only. With one partition (the default) the
   * service's single queue is bound to it with each callable's routing key.
   * With more, the service's consistent-hash exchange is bound to it with
   * those keys, with `partitions` queues behind it; a single queue the
   * service used before is unbound (from the namespace's exchange, and from
   * `tasker.steps`, where earlier versions bound it) and returned last, for
   * the worker to empty.
   *
   * @throws ConfigError with one partition, if the service's steps are
   *   already split over several queues: its other workers use more.
   * @throws BrokerError not retryable if RabbitMQ lacks the consistent-hash
   *   exchange; retryable for anything else the broker refuses.
   */
  async declareService(
    channel: amqp.Channel,
    namespace: string,
    service: string,
    callables: readonly string[],
    partitions = 1,
  ): Promise<string[]> {
    if (partitions <= 1) {
      return this.#declareSingleQueue(channel, namespace, service, callables);
    }
    const exchange = topology.serviceExchange(namespace, service);
    const steps = topology.namespaceStepsExchange(namespace);
    const queues: string[] = [];
    try {
      await this.routeNamespaceSteps(namespace, callables);
      await this.#declarePartitionedExchange(channel, exchange);
      // The queues are bound before the exchange is, so that no step reaches
      // the exchange with nowhere to go.
      for (let index = 0; index < partitions; index++) {
        const queue = topology.partitionQueue(namespace, service, index);
        await this.declareQueue(queue);
        await channel.bindQueue(queue, exchange, topology.PARTITION_WEIGHT);
        queues.push(queue);
      }
      for (const callable of callables) {
        await channel.bindExchange(exchange, steps, topology.stepRoutingKey(namespace, callable));
      }
      const former = topology.serviceQueue(namespace, service);
      if (await this.#exists("queue", former)) {
        // New steps stop reaching it; the worker empties it.
        for (const callable of callables) {
          const key = topology.stepRoutingKey(namespace, callable);
          await channel.unbindQueue(former, steps, key);
          // Where earlier versions bound it; a user without `read` on
          // tasker.steps never could have.
          await this.#declareShared(
            `the unbinding of queue ${former} from exchange ${topology.STEPS_EXCHANGE}`,
            (own) => own.unbindQueue(former, topology.STEPS_EXCHANGE, key),
            `not allowed to unbind queue ${former} from exchange ${topology.STEPS_EXCHANGE}; ` +
              "only a user that may read it can have bound it there",
          );
        }
        this.#log.info("draining the service's former single queue; delete it once it is empty", {
          queue: former,
          partitions,
        });
        queues.push(former);
      }
    } catch (e) {
      throw this.error(e);
    }
    return queues;
  }

  async #declareSingleQueue(
    channel: amqp.Channel,
    namespace: string,
    service: string,
    callables: readonly string[],
  ): Promise<string[]> {
    const exchange = topology.serviceExchange(namespace, service);
    let split: boolean;
    try {
      split = await this.#exists("exchange", exchange);
    } catch (e) {
      throw this.error(e);
    }
    if (split) {
      // A single queue beside the exchange would take a share of every step.
      throw new ConfigError(
        `the steps of service '${service}' in namespace '${namespace}' are split over several queues ` +
          `(the exchange ${exchange} exists): start this worker with TASKER_PARTITIONS set to the ` +
          "number the service's other workers use",
      );
    }
    const queue = topology.serviceQueue(namespace, service);
    const steps = topology.namespaceStepsExchange(namespace);
    try {
      await this.routeNamespaceSteps(namespace, callables);
      await this.declareQueue(queue);
      for (const callable of callables) {
        await channel.bindQueue(queue, steps, topology.stepRoutingKey(namespace, callable));
      }
    } catch (e) {
      throw this.error(e);
    }
    return [queue];
  }

  /**
   * Declares a service's consistent-hash exchange. A broker without the
   * plugin closes the whole connection, with the reason only on the
   * connection's error, so that is where it is looked for.
   */
  async #declarePartitionedExchange(channel: amqp.Channel, exchange: string): Promise<void> {
    let closedWith: unknown;
    const onError = (e: unknown): void => {
      closedWith = e;
    };
    this.connection.on("error", onError);
    try {
      await channel.assertExchange(exchange, topology.PARTITIONED_EXCHANGE_TYPE, {
        durable: true,
        autoDelete: false,
        arguments: { [topology.HASH_HEADER_ARGUMENT]: Header.TASK_ID },
      });
    } catch (e) {
      const cause = closedWith ?? e;
      if (
        replyCode(cause) === COMMAND_INVALID &&
        errorText(cause).includes(topology.PARTITIONED_EXCHANGE_TYPE)
      ) {
        throw new BrokerError(
          `rabbitmq at ${this.url} does not know the exchange type ${topology.PARTITIONED_EXCHANGE_TYPE} ` +
            `(${errorText(cause)}), which a service split over several queues needs: enable its plugin ` +
            "with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` (on every node of a cluster), " +
            "or start the worker without TASKER_PARTITIONS",
          { retryable: false },
        );
      }
      throw e;
    } finally {
      this.connection.off("error", onError);
    }
  }

  /**
   * Whether the exchange or queue `name` exists: a passive declare, on a
   * channel of its own, since a 404 closes the channel it came on.
   */
  async #exists(kind: "exchange" | "queue", name: string): Promise<boolean> {
    const own = await this.connection.createChannel();
    own.on("error", () => undefined);
    try {
      await (kind === "exchange" ? own.checkExchange(name) : own.checkQueue(name));
      return true;
    } catch (e) {
      if (replyCode(e) === NOT_FOUND) return false;
      throw e;
    } finally {
      try {
        await own.close();
      } catch {
        // closed by the 404 already
      }
    }
  }

  /** Declares the exchange of every namespace's steps; shared, as in {@link declareCommon}. */
  async declareStepsExchange(): Promise<void> {
    await this.#sharedExchange(topology.STEPS_EXCHANGE, "direct");
  }

  /**
   * Declares `namespace`'s steps exchange, `tasker.steps.<namespace>`, and
   * binds it to `tasker.steps` with the routing key of each of `callables`,
   * so that their steps reach it. The coordinators do so for every callable
   * of their templates; a worker does for its own, as shared declarations
   * ({@link declareCommon}): a least-privilege user, which may not read
   * `tasker.steps` and so may not bind to it, skips them, and the
   * coordinators' bindings bring its steps.
   */
  async routeNamespaceSteps(namespace: string, callables: readonly string[]): Promise<void> {
    try {
      await this.declareStepsExchange();
      const steps = topology.namespaceStepsExchange(namespace);
      await this.#sharedExchange(steps, "direct");
      for (const callable of callables) {
        await this.#sharedExchangeBinding(
          steps,
          topology.STEPS_EXCHANGE,
          topology.stepRoutingKey(namespace, callable),
        );
      }
    } catch (e) {
      throw this.error(e);
    }
  }

  /**
   * Declares a Tasker queue with {@link topology.QUORUM}'s arguments. A queue
   * that an older Tasker declared without the delivery limit refuses them:
   * it is used as it is, with a warning. The declaration goes on a channel
   * of its own, since a refusal closes the channel it came on.
   */
  async declareQueue(name: string): Promise<void> {
    const own = await this.connection.createChannel();
    own.on("error", () => undefined);
    try {
      await this.#assertQueue(own, name);
    } finally {
      try {
        await own.close();
      } catch {
        // closed by a refusal already
      }
    }
  }

  /** Declares queue `name` on `channel`, as {@link declareQueue} says; the channel is closed if it is refused. */
  async #assertQueue(channel: amqp.Channel, name: string): Promise<void> {
    try {
      await channel.assertQueue(name, {
        durable: true,
        exclusive: false,
        autoDelete: false,
        arguments: { ...topology.QUORUM },
      });
    } catch (e) {
      if (replyCode(e) !== PRECONDITION_FAILED) {
        throw e;
      }
      this.#log.warn(
        "the queue exists with other arguments, likely declared by an older Tasker without " +
          "x-delivery-limit; using it as it is. Give it a delivery-limit policy so RabbitMQ 4 never " +
          "drops a message before Tasker dead-letters it",
        { queue: name, error: errorText(e) },
      );
    }
  }
}

/**
 * A channel in confirm mode: every publish resolves only once the broker has
 * stored the message, and rejects if it refused it, returned it, or the
 * channel closed first.
 */
export class Publisher {
  readonly channel: amqp.ConfirmChannel;
  readonly #url: string;
  readonly #log: Logger;
  readonly #returned = new Set<string>();
  /** Why the broker closed the channel, if it did: the reason its unconfirmed publishes failed. */
  #closedWith: unknown;

  constructor(channel: amqp.ConfirmChannel, url: string, logger: Logger) {
    this.channel = channel;
    this.#url = url;
    this.#log = logger;
    // RabbitMQ sends basic.return before the basic.ack of the same message.
    channel.on("return", (message: amqp.Message) => {
      this.#returned.add(returnKey(message.properties.messageId));
    });
    // Emitted before 'close', which fails every publish not yet confirmed.
    channel.on("error", (e: unknown) => {
      this.#closedWith = e;
    });
  }

  /**
   * Publishes `body` and waits for its confirm.
   *
   * @throws BrokerError if the broker refused it (a nack), a mandatory
   *   message reached no queue, or the channel is gone. All are retryable:
   *   the caller leaves its delivery unacked.
   */
  publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    props: Properties,
    mandatory: boolean,
  ): Promise<void> {
    const key = returnKey(props.messageId);
    return new Promise<void>((resolve, reject) => {
      const confirmed = (err: unknown): void => {
        const returned = this.#returned.delete(key);
        if (err !== null && err !== undefined && replyCode(this.#closedWith) === ACCESS_REFUSED) {
          reject(
            new BrokerError(
              `rabbitmq at ${this.#url} refused a message for exchange ${JSON.stringify(exchange)}, routing ` +
                `key ${JSON.stringify(routingKey)}: ${errorText(this.#closedWith)}; give the user permission ` +
                "to write to the exchange (and, for a topic exchange, the routing key)",
            ),
          );
        } else if (err !== null && err !== undefined) {
          reject(
            new BrokerError(
              `rabbitmq refused to store a message for exchange ${JSON.stringify(exchange)}, routing key ` +
                `${JSON.stringify(routingKey)}: ${errorText(err)}; check the broker's log for the reason ` +
                "(disk or memory alarm, queue limits)",
            ),
          );
        } else if (returned && mandatory) {
          reject(
            new BrokerError(
              `no queue is bound to exchange ${JSON.stringify(exchange)} with routing key ${JSON.stringify(routingKey)}; ` +
                "declare the namespace's queues (any Tasker process serving it does)",
            ),
          );
        } else {
          resolve();
        }
      };
      try {
        this.channel.publish(exchange, routingKey, body, { ...props, mandatory }, confirmed);
      } catch (e) {
        reject(new BrokerError(`rabbitmq at ${this.#url}: ${errorText(e)}`));
      }
    });
  }

  /**
   * Moves `delivery` to the dead-letter queue with `<reason>: <detail>` in a
   * header, waits for the confirm, then acks it on `channel`. If the publish
   * fails, the delivery stays unacked and comes back: a message is never dropped.
   *
   * @throws BrokerError if the publish fails.
   */
  async deadLetter(
    channel: amqp.Channel,
    delivery: amqp.ConsumeMessage,
    queue: string,
    reason: DeadLetterReason,
    detail: string,
  ): Promise<void> {
    const header = `${reason}: ${detail}`;
    const p = delivery.properties;
    const headers: Record<string, unknown> = {
      ...(p.headers ?? {}),
      [Header.DEAD_LETTER_REASON]: header,
      [Header.DEAD_LETTER_QUEUE]: queue,
      [Header.DEAD_LETTER_EXCHANGE]: delivery.fields.exchange,
      [Header.DEAD_LETTER_ROUTING_KEY]: delivery.fields.routingKey,
    };
    // The original properties, persistent. Not its expiration, which would
    // let the dead letter vanish, nor its user id, which RabbitMQ refuses
    // from any other user.
    const copy: Properties = { persistent: true, headers };
    const optional = {
      contentType: p.contentType,
      contentEncoding: p.contentEncoding,
      priority: p.priority,
      correlationId: p.correlationId,
      replyTo: p.replyTo,
      messageId: p.messageId,
      timestamp: p.timestamp,
      type: p.type,
      appId: p.appId,
    } satisfies Record<string, unknown>;
    for (const [name, value] of Object.entries(optional)) {
      if (value !== undefined && value !== null) {
        (copy as Record<string, unknown>)[name] = value;
      }
    }
    await this.publish(topology.DEAD_LETTER_EXCHANGE, queue, delivery.content, copy, true);
    ack(channel, delivery);
    this.#log.warn("message moved to the dead-letter queue", { queue, reason: header });
    METRICS.deadLetters.inc({ queue, reason });
  }
}

function returnKey(messageId: unknown): string {
  return typeof messageId === "string" ? messageId : "";
}

/**
 * Acks `delivery`. If its channel is gone the ack is lost, and the broker
 * redelivers the message: the same as not acking.
 */
export function ack(channel: amqp.Channel, delivery: amqp.ConsumeMessage): void {
  try {
    channel.ack(delivery);
  } catch {
    // the channel closed: the delivery goes back to its queue
  }
}
