/**
 * `/healthz` and `/readyz`: a worker connected to RabbitMQ is ready; one
 * pointed at a port where nothing listens is alive but not ready.
 * `/metrics`: the step and dead-letter metrics of the Rust and Python
 * workers, as OpenMetrics text.
 */

import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { afterEach, beforeEach, describe, test } from "node:test";

import {
  BUCKETS,
  configFromEnv,
  Metrics,
  parseAddress,
  StepHandler,
  topology,
  Worker,
} from "../src/index.js";
import { Bus, MemoryLogger, stepReady } from "./helpers.js";

class Echo extends StepHandler {
  static override readonly handlerName = "Tests::HealthEcho";

  async call(): Promise<unknown> {
    return {};
  }
}

/** `[status, body]` of a plain HTTP GET. */
function httpGet(port: number, path: string): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve([response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")]),
        );
        response.on("error", reject);
      })
      .on("error", reject);
  });
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function eventually<T>(
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
): Promise<T> {
  const deadline = Date.now() + 10_000;
  let last: T | undefined;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}; last saw ${JSON.stringify(last)}`);
}

describe("health endpoints", () => {
  let bus: Bus;

  beforeEach(async () => {
    bus = await Bus.connect();
  });

  afterEach(async () => {
    await bus.close();
  });

  test("a connected worker is alive and ready", async () => {
    const port = await freePort();
    const worker = await bus.startWorker([Echo], { healthAddr: ["127.0.0.1", port] });
    assert.deepEqual(await httpGet(port, "/readyz"), [200, "rabbitmq: up\n"]);
    assert.deepEqual(await httpGet(port, "/healthz"), [200, "rabbitmq: up\n"]);
    assert.equal((await httpGet(port, "/nowhere"))[0], 404);
    await worker.stop();
    await assert.rejects(httpGet(port, "/healthz"), "the endpoints stop with the worker");
  });

  test("a worker without a broker is alive but not ready", async () => {
    const [healthPort, brokerPort] = [await freePort(), await freePort()];
    const worker = new Worker(
      {
        amqpUrl: `amqp://guest:guest@127.0.0.1:${brokerPort}/%2f`,
        service: "svc",
        healthAddr: ["127.0.0.1", healthPort],
      },
      { logger: new MemoryLogger() },
    )
      .namespace(bus.namespace)
      .handler(Echo);
    const running = worker.run({ handleSignals: false });
    try {
      await eventually(
        () => httpGet(healthPort, "/healthz"),
        ([status, body]) => status === 200 && body === "rabbitmq: down\n",
        "healthz saying the broker is down",
      );
      assert.deepEqual(await httpGet(healthPort, "/readyz"), [503, "rabbitmq: down\n"]);
    } finally {
      await worker.stop();
      await running;
    }
  });

  test("/metrics counts step durations, queue waits and dead letters", async () => {
    const port = await freePort();
    await bus.startWorker([Echo], { healthAddr: ["127.0.0.1", port] });
    const results = await bus.results();
    const dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE);
    const publishedAt = { "x-tasker-published-at-ms": { "!": "long", value: Date.now() - 1500 } };
    await bus.publishStep(
      stepReady(bus.namespace, Echo.handlerName, { step: "greet" }),
      Echo.handlerName,
      publishedAt,
    );
    await results.next("the step's result");
    await bus.publishStep(Buffer.from("not json"), Echo.handlerName);
    await dead.next("the dead letter");

    const queue = topology.serviceQueue(bus.namespace, "svc");
    const labels = `namespace="${bus.namespace}",template="task",step="greet"`;
    const [status, text] = await eventually(
      () => httpGet(port, "/metrics"),
      ([, body]) =>
        body.includes(`tasker_dead_letters_total{queue="${queue}",reason="not_json"} 1`),
      "the dead letter counted",
    );
    assert.equal(status, 200);
    const lines = text.split("\n");
    assert.ok(lines.includes(`tasker_step_duration_seconds_count{${labels}} 1`), text);
    assert.ok(lines.includes(`tasker_step_duration_seconds_bucket{${labels},le="+Inf"} 1`), text);
    assert.ok(lines.includes(`tasker_queue_wait_seconds_count{${labels}} 1`), text);
    // Published 1.5 s before: not in the 1.024 s bucket, in the 2.048 s one.
    assert.ok(lines.includes(`tasker_queue_wait_seconds_bucket{${labels},le="1.024"} 0`), text);
    assert.ok(lines.includes(`tasker_queue_wait_seconds_bucket{${labels},le="2.048"} 1`), text);
    assert.ok(lines.includes("# TYPE tasker_step_duration_seconds histogram"), text);
    assert.ok(lines.includes("# TYPE tasker_dead_letters counter"), text);
    assert.ok(text.endsWith("# EOF\n"), text);
  });

  test("metrics render as OpenMetrics, with the Rust worker's buckets", () => {
    assert.equal(BUCKETS.length, 22);
    assert.equal(BUCKETS[0], 0.0005);
    assert.equal(BUCKETS.at(-1), 1048.576);
    const metrics = new Metrics();
    assert.equal(
      metrics.render(),
      [
        "# HELP tasker_step_duration_seconds How long step handlers ran",
        "# TYPE tasker_step_duration_seconds histogram",
        "# HELP tasker_queue_wait_seconds From a step's publish to its handler's start",
        "# TYPE tasker_queue_wait_seconds histogram",
        "# HELP tasker_dead_letters Messages moved to the dead-letter queue",
        "# TYPE tasker_dead_letters counter",
        "# EOF",
        "",
      ].join("\n"),
    );
    const labels = { namespace: "ns", template: "t", step: 'say "hi"\n' };
    metrics.stepDuration.observe(labels, 0.003);
    metrics.stepDuration.observe(labels, 0.0005);
    metrics.deadLetters.inc({ queue: "q", reason: "not_json" });
    metrics.deadLetters.inc({ queue: "q", reason: "not_json" });
    const text = metrics.render();
    const series = 'namespace="ns",template="t",step="say \\"hi\\"\\n"';
    assert.ok(
      text.includes(`tasker_step_duration_seconds_bucket{${series},le="0.0005"} 1\n`),
      text,
    );
    assert.ok(text.includes(`tasker_step_duration_seconds_bucket{${series},le="0.002"} 1\n`), text);
    assert.ok(text.includes(`tasker_step_duration_seconds_bucket{${series},le="0.004"} 2\n`), text);
    assert.ok(text.includes(`tasker_step_duration_seconds_count{${series}} 2\n`), text);
    assert.ok(text.includes(`tasker_step_duration_seconds_sum{${series}} 0.0035\n`), text);
    assert.ok(text.includes('tasker_dead_letters_total{queue="q",reason="not_json"} 2\n'), text);
  });

  test("the health address reads from the environment", () => {
    assert.deepEqual(configFromEnv({}, { TASKER_HEALTH_ADDR: "127.0.0.1:9104" }).healthAddr, [
      "127.0.0.1",
      9104,
    ]);
    assert.deepEqual(parseAddress("[::1]:80", "X"), ["::1", 80]);
    assert.throws(() => parseAddress("nowhere", "X"), /not an address/);
  });
});
