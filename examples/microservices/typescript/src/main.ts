#!/usr/bin/env node
/**
 * `node dist/src/main.js <service> [--namespace NS] [--latency-ms MIN..MAX]
 * [--billing-down[=BOOL]] [--shutdown-grace SECONDS]`: runs that service's
 * worker until SIGTERM or SIGINT, configured from the environment
 * (`TASKER_AMQP_URL`, `TASKER_CONCURRENCY`, `TASKER_HEALTH_ADDR`, `OTEL_*`...)
 * with the flags on top. Its spans are `worker-microservices-<service>`'s.
 */

import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { ConfigError, initTelemetry, TaskerError, type Telemetry, Worker } from "tasker-worker";

import { isService, NAMESPACE, register, type Service, SERVICES } from "./index.js";
import { Latency } from "./latency.js";

/** What the command line asks for. */
export interface Options {
  readonly service: Service;
  readonly namespace: string;
  readonly latency: Latency;
  readonly billingDown: boolean;
  readonly shutdownGrace: number;
}

export const USAGE =
  `usage: node dist/src/main.js <${SERVICES.join("|")}> [--namespace NS] [--latency-ms MIN..MAX] ` +
  "[--billing-down[=BOOL]] [--shutdown-grace SECONDS]";

const TRUE = new Set(["y", "yes", "t", "true", "on", "1"]);
const FALSE = new Set(["n", "no", "f", "false", "off", "0", ""]);

/**
 * `true`/`false` as flags and variables write them (yes, on, 1...).
 *
 * @throws ConfigError for anything else.
 */
export function boolish(text: string, what: string): boolean {
  const value = text.trim().toLowerCase();
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw new ConfigError(
    `${what}=${JSON.stringify(text)} is not true or false; write true or false`,
  );
}

/**
 * The options of `argv` (the arguments after the script), with the
 * defaults from `env`: `TASKER_DEMO_LATENCY_MS` (`40..120`) and
 * `TASKER_DEMO_BILLING_DOWN` (`false`).
 *
 * @throws ConfigError saying what is wrong, and the usage.
 */
export function parseArguments(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Options {
  let service: string | undefined;
  let namespace = NAMESPACE;
  let latency: Latency | undefined;
  let billingDown: boolean | undefined;
  let shutdownGrace = 30;
  const args = [...argv];
  const value = (flag: string, inline: string | undefined): string => {
    const next = inline ?? args.shift();
    if (next === undefined) throw new ConfigError(`${flag} needs a value\n${USAGE}`);
    return next;
  };
  while (args.length > 0) {
    const arg = args.shift() ?? "";
    const eq = arg.indexOf("=");
    const [flag, inline] =
      arg.startsWith("--") && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    switch (flag) {
      case "--namespace":
        namespace = value(flag, inline);
        break;
      case "--latency-ms":
        latency = Latency.parse(value(flag, inline));
        break;
      case "--billing-down":
        billingDown = inline === undefined ? true : boolish(inline, flag);
        break;
      case "--shutdown-grace": {
        const text = value(flag, inline);
        shutdownGrace = Number(text);
        if (text.trim() === "" || !Number.isFinite(shutdownGrace) || shutdownGrace < 0) {
          throw new ConfigError(
            `--shutdown-grace ${JSON.stringify(text)} is not a number of seconds`,
          );
        }
        break;
      }
      case "-h":
      case "--help":
        throw new ConfigError(USAGE);
      default:
        if (flag.startsWith("-")) throw new ConfigError(`unknown option ${flag}\n${USAGE}`);
        if (service !== undefined)
          throw new ConfigError(`one service at a time; got ${service} and ${flag}\n${USAGE}`);
        service = flag;
    }
  }
  if (service === undefined) throw new ConfigError(`name the service to run\n${USAGE}`);
  if (!isService(service)) {
    throw new ConfigError(
      `${JSON.stringify(service)} is not a service; pass one of ${SERVICES.join(", ")}`,
    );
  }
  return {
    service,
    namespace,
    latency: latency ?? Latency.parse(env["TASKER_DEMO_LATENCY_MS"] ?? "40..120"),
    billingDown:
      billingDown ??
      boolish(env["TASKER_DEMO_BILLING_DOWN"] ?? "false", "TASKER_DEMO_BILLING_DOWN"),
    shutdownGrace,
  };
}

/** Runs the worker `options` describe until SIGTERM or SIGINT. */
export async function run(options: Options): Promise<void> {
  const worker = new Worker({
    service: options.service,
    shutdownGrace: options.shutdownGrace,
    name: `${NAMESPACE}-${options.service}-typescript-${process.pid}`,
  }).namespace(options.namespace);
  register(worker, options.service, { latency: options.latency, billingDown: options.billingDown });
  await worker.run();
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  let telemetry: Telemetry;
  try {
    telemetry = initTelemetry(`worker-${NAMESPACE}-${options.service}`);
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  try {
    await run(options);
    return 0;
  } catch (e) {
    if (e instanceof TaskerError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await telemetry.shutdown();
  }
}

// Run only as the program, not when a test imports it.
if (
  process.argv[1] !== undefined &&
  realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  process.exitCode = await main();
}
