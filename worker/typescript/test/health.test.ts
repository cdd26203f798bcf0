/**
 * `/healthz` and `/readyz`: a worker connected to RabbitMQ is ready; one
 * pointed at a port where nothing listens is alive but not ready.
 */

import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { afterEach, beforeEach, describe, test } from "node:test";

import { configFromEnv, parseAddress, StepHandler, Worker } from "../src/index.js";
import { Bus, MemoryLogger } from "./helpers.js";

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
        response.on("end", () => resolve([response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")]));
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

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
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
      { amqpUrl: `amqp://guest:guest@127.0.0.1:${brokerPort}/%2f`, service: "svc", healthAddr: ["127.0.0.1", healthPort] },
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

  test("the health address reads from the environment", () => {
    assert.deepEqual(configFromEnv({}, { TASKER_HEALTH_ADDR: "127.0.0.1:9104" }).healthAddr, ["127.0.0.1", 9104]);
    assert.deepEqual(parseAddress("[::1]:80", "X"), ["::1", 80]);
    assert.throws(() => parseAddress("nowhere", "X"), /not an address/);
  });
});
