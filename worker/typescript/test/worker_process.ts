/**
 * A worker in a process of its own, for the shutdown tests: it serves
 * `Tests::Slow` in the namespace `TEST_NAMESPACE` as service `svc`, and
 * stops on SIGTERM as a deployed worker does. It exports spans when the
 * `OTEL_*` variables ask, as the tracing test does.
 */

import { initTelemetry, type StepContext, StepHandler, Worker } from "../src/index.js";

class Slow extends StepHandler {
  static override readonly handlerName = "Tests::Slow";

  async call(context: StepContext): Promise<unknown> {
    const seconds = context.getInput("seconds", "number");
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    return { slept: seconds };
  }
}

const telemetry = initTelemetry("ts-test-worker");
const namespace = process.env["TEST_NAMESPACE"] ?? "";
const worker = new Worker({ service: "svc" }).namespace(namespace).handler(Slow);
const running = worker.run();
await worker.ready;
process.stdout.write("ready\n");
await running;
await telemetry.shutdown();
process.stdout.write("stopped\n");
