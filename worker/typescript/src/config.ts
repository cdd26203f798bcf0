/**
 * How a worker runs: {@link WorkerConfig}, with defaults, and reading it from
 * the environment as the Rust and Python SDKs do, so that a service deploys
 * the same way whatever its language.
 */

import { ConfigError } from "./errors.js";
import { parseAddress } from "./health.js";
import { checkSecurity, type ConnectionSecurity, securityFromEnv } from "./security.js";
import { DELIVERY_LIMIT, MAX_PARTITIONS } from "./topology.js";

/** Where RabbitMQ is when `TASKER_AMQP_URL` is not set. */
export const DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f";
/** The size limit of a message, the same on every coordinator and worker. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/** The longest name (namespace, service) Tasker accepts, in bytes. */
export const MAX_NAME_LEN = 100;

/**
 * How a worker runs. Every field has a default except `service`. The
 * password and TLS files ({@link ConnectionSecurity}) apply to each
 * connection it makes: the TLS files to `amqps://` URLs only.
 */
export interface WorkerConfig extends ConnectionSecurity {
  /** The RabbitMQ URL (`amqp://` or `amqps://`), or the URLs of a cluster's nodes separated by commas. */
  amqpUrl: string;
  /**
   * The service this worker is part of, such as `billing`. The workers of
   * one service share its queue of each namespace's steps, so they must
   * serve the same callables.
   */
  service: string;
  /** Seconds between the worker's announcements to the coordinators. */
  announceEvery: number;
  /** Seconds between AMQP heartbeats, unless the URL says (`?heartbeat=`). */
  heartbeat: number;
  /**
   * How many steps run at once: the prefetch, shared out over the queues it
   * consumes (`ceil(concurrency / partitions)` each, as RabbitMQ counts the
   * prefetch per consumer).
   */
  concurrency: number;
  /**
   * How many queues the service's steps of each namespace are split over,
   * from 1 (its single queue, the default) to 64. More than one lets a hot
   * service spread over several broker nodes: every worker of the service
   * must give the same number.
   */
  partitions: number;
  /** On shutdown, seconds in-flight steps get to finish before they are handed back to the queue. */
  shutdownGrace: number;
  /**
   * Larger step-ready messages are dead-lettered, and a result that would
   * make a larger step result is reported as `result_too_large`.
   */
  maxMessageBytes: number;
  /** A step delivered more often than this is dead-lettered instead of run again. */
  maxRedeliveries: number;
  /** Shown in the broker's connection list and in logs. */
  name: string;
  /** How many recent results the worker remembers, to answer a redelivered step without running it again. */
  rememberedResults: number;
  /** Where to serve `/healthz` and `/readyz` (`[host, port]`), if anywhere. */
  healthAddr?: [string, number] | undefined;
}

/** The default configuration, with `overrides` on top. */
export function workerConfig(overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    amqpUrl: DEFAULT_AMQP_URL,
    service: "",
    announceEvery: 10,
    heartbeat: 5,
    concurrency: 32,
    partitions: 1,
    shutdownGrace: 30,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    maxRedeliveries: 5,
    name: `tasker-worker-${process.pid}`,
    rememberedResults: 10_000,
    ...overrides,
  };
}

/**
 * The default configuration, with what the environment sets
 * (`TASKER_AMQP_URL`, `TASKER_SERVICE`, `TASKER_CONCURRENCY`,
 * `TASKER_PARTITIONS`, `TASKER_MAX_MESSAGE_BYTES`, `TASKER_HEALTH_ADDR`,
 * and the password and TLS files of {@link securityFromEnv}), and
 * `overrides` on top of both.
 *
 * @throws ConfigError when a variable is set but cannot be read, or a
 *   password is given both in `TASKER_AMQP_PASSWORD` and in a file.
 */
export function configFromEnv(
  overrides: Partial<WorkerConfig> = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): WorkerConfig {
  const fromEnv: Partial<WorkerConfig> = securityFromEnv(env);
  const url = env["TASKER_AMQP_URL"];
  if (url !== undefined) fromEnv.amqpUrl = url;
  const service = env["TASKER_SERVICE"];
  if (service !== undefined) fromEnv.service = service;
  const concurrency = env["TASKER_CONCURRENCY"];
  if (concurrency !== undefined)
    fromEnv.concurrency = positiveInt(concurrency, "TASKER_CONCURRENCY", "steps");
  const partitions = env["TASKER_PARTITIONS"];
  if (partitions !== undefined) fromEnv.partitions = partitionCount(partitions);
  const size = env["TASKER_MAX_MESSAGE_BYTES"];
  if (size !== undefined)
    fromEnv.maxMessageBytes = positiveInt(size, "TASKER_MAX_MESSAGE_BYTES", "bytes");
  const health = env["TASKER_HEALTH_ADDR"];
  if (health !== undefined) fromEnv.healthAddr = parseAddress(health, "TASKER_HEALTH_ADDR");
  return workerConfig({ ...fromEnv, ...overrides });
}

/** @throws ConfigError for a configuration that cannot work. */
export function checkConfig(config: WorkerConfig): void {
  const problem = nameProblem(config.service);
  if (problem !== undefined) {
    throw new ConfigError(
      `the worker's service name ${JSON.stringify(config.service)} ${problem}; set the service ` +
        `(or TASKER_SERVICE) to the service it is part of, such as "billing": workers of one service share its queue`,
    );
  }
  if (
    !Number.isInteger(config.concurrency) ||
    config.concurrency < 1 ||
    config.concurrency > 65535
  ) {
    throw new ConfigError(
      `concurrency is ${config.concurrency}; give a number of steps from 1 to 65535`,
    );
  }
  checkSecurity(config);
  if (
    !Number.isInteger(config.partitions) ||
    config.partitions < 1 ||
    config.partitions > MAX_PARTITIONS
  ) {
    throw new ConfigError(
      `partitions is ${config.partitions}; give a number of queues from 1 to ${MAX_PARTITIONS}`,
    );
  }
  if (!(config.maxMessageBytes > 0)) {
    throw new ConfigError(
      `maxMessageBytes is ${config.maxMessageBytes}; give a positive number of bytes`,
    );
  }
  if (!(config.announceEvery > 0)) {
    throw new ConfigError(
      `announceEvery is ${config.announceEvery}; give a positive number of seconds`,
    );
  }
  if (!(config.heartbeat >= 0)) {
    throw new ConfigError(`heartbeat is ${config.heartbeat}; give a number of seconds, 0 for none`);
  }
  if (!(config.shutdownGrace >= 0)) {
    throw new ConfigError(`shutdownGrace is ${config.shutdownGrace}; give a number of seconds`);
  }
  if (
    !Number.isInteger(config.maxRedeliveries) ||
    config.maxRedeliveries < 0 ||
    config.maxRedeliveries >= DELIVERY_LIMIT
  ) {
    throw new ConfigError(
      `maxRedeliveries is ${config.maxRedeliveries}; keep it from 0 to ${DELIVERY_LIMIT - 1}, below the ` +
        "queues' delivery limit, so the worker dead-letters a message before the broker drops it",
    );
  }
}

const NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Why `name` cannot be part of a queue name or a routing key, if it cannot
 * (the same rule as the Rust and Python SDKs).
 */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty; give it a name";
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_LEN)
    return `is ${bytes} bytes long; shorten it to ${MAX_NAME_LEN} bytes or fewer`;
  if (!NAME.test(name)) {
    // With the u flag a character outside the BMP is matched whole.
    const bad = /[^A-Za-z0-9_-]/u.exec(name)?.[0] ?? "";
    return `contains ${JSON.stringify(bad)}; use only ASCII letters, digits, '_' and '-'`;
  }
  return undefined;
}

function positiveInt(text: string, what: string, unit: string): number {
  const value = Number(text.trim());
  if (!Number.isInteger(value) || text.trim() === "") {
    throw new ConfigError(`${what}=${JSON.stringify(text)} is not a number of ${unit}`);
  }
  if (value <= 0) {
    throw new ConfigError(`${what}=${JSON.stringify(text)} must be a positive number of ${unit}`);
  }
  return value;
}

function partitionCount(text: string): number {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isInteger(value) || value < 1 || value > MAX_PARTITIONS) {
    throw new ConfigError(
      `TASKER_PARTITIONS=${JSON.stringify(text)} is not a number of queues from 1 to ${MAX_PARTITIONS}; ` +
        "give the number of queues the service's steps are split over (1, the default, is one queue)",
    );
  }
  return value;
}
