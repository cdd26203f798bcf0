/**
 * The chaos suite's TypeScript worker: a service of its own that serves some
 * of the chaos namespace's callables, beside the Rust and Python chaos
 * workers, so that the suite's faults also strike a namespace split into
 * services in several languages.
 *
 * Each handler waits 5 to 20 ms and returns `{"step": ..., "nonce": ...}`:
 * the nonce makes a second run's result differ from the first's, so the
 * suite sees any result that changes after it was recorded. Like the Python
 * one, it does not count its runs in Redis: the suite checks its joins in
 * the tasks' own state. It runs 64 steps at once and drains on SIGTERM.
 *
 *     node tests/typescript/chaos_worker.mjs --namespace NS --service S CALLABLE...
 *
 * Plain JavaScript, so that it runs without a compile step; it needs the
 * SDK built (`npm run build` in worker/typescript).
 */

import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

import { initTelemetry, StepHandler, TaskerError, Worker } from "../../worker/typescript/dist/src/index.js";

const USAGE = "usage: node tests/typescript/chaos_worker.mjs --namespace NS --service S CALLABLE...";

/** A handler class for `callable`: the worker keys handlers by their class's `handlerName`. */
function chaos(callable) {
  return class Chaos extends StepHandler {
    static handlerName = callable;

    async call(context) {
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 15));
      // 53 random bits: the most a JSON number carries exactly in every language.
      return { step: context.stepName, nonce: Number(randomBytes(8).readBigUInt64BE() >> 11n) };
    }
  };
}

function parse(argv) {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { namespace: { type: "string" }, service: { type: "string" } },
      allowPositionals: true,
    });
    if (values.namespace === undefined || values.service === undefined || positionals.length === 0) {
      throw new Error("--namespace, --service and at least one callable are required");
    }
    return { namespace: values.namespace, service: values.service, callables: positionals };
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
}

const args = parse(process.argv.slice(2));
const telemetry = initTelemetry(`chaos-${args.service}`);
try {
  const worker = new Worker({ service: args.service, concurrency: 64, shutdownGrace: 5 }).namespace(args.namespace);
  for (const callable of args.callables) worker.handler(chaos(callable));
  await worker.run();
} catch (e) {
  if (!(e instanceof TaskerError)) throw e;
  process.stderr.write(`error: ${e.message}\n`);
  process.exitCode = 1;
} finally {
  await telemetry.shutdown();
}
