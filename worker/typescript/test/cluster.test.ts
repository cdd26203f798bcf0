/**
 * A cluster's nodes in one URL setting, against the real RabbitMQ: nodes
 * that cannot be reached are passed over, and when none can be, the error
 * names them all without their passwords.
 */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { afterEach, beforeEach, describe, test } from "node:test";

import { Broker, brokerUrls, redact } from "../src/broker.js";
import { BrokerError, Client, ConfigError, type StepContext, StepHandler } from "../src/index.js";
import { AMQP_URL, Bus, MemoryLogger, stepReady } from "./helpers.js";

/** The node that answers: the first of a cluster's, when TASKER_AMQP_URL lists several. */
const LIVE = brokerUrls(AMQP_URL)[0] ?? AMQP_URL;

const PASSWORD = "n0t-for-logs";

/** An AMQP URL at a loopback port nothing listens on. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === "object");
  return `amqp://guest:${PASSWORD}@127.0.0.1:${address.port}/%2f`;
}

class Echo extends StepHandler {
  static override readonly handlerName = "Tests::Echo";

  async call(context: StepContext): Promise<unknown> {
    return { echo: context.inputs };
  }
}

describe("a cluster's nodes", () => {
  let bus: Bus;

  beforeEach(async () => {
    bus = await Bus.connect();
  });

  afterEach(async () => {
    await bus.close();
  });

  test("each connection passes over the nodes that are down", async () => {
    const nodes = ` ${await deadUrl()} ,${LIVE}, ${await deadUrl()}`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const broker = await Broker.connect(nodes, `test-cluster-${attempt}`, 5, new MemoryLogger());
      try {
        assert.equal(broker.url, redact(LIVE), `attempt ${attempt}`);
      } finally {
        await broker.close();
      }
    }
    const client = await Client.connect(nodes, { logger: new MemoryLogger() });
    await client.close();
  });

  test("connections start at the next node", async () => {
    // Two spellings of the one real broker, to see which is reached.
    const other = `${LIVE}?heartbeat=7`;
    const reached = new Set<string>();
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const broker = await Broker.connect(
        `${LIVE},${other}`,
        "test-cluster",
        5,
        new MemoryLogger(),
      );
      reached.add(broker.url);
      await broker.close();
    }
    assert.deepEqual([...reached].sort(), [redact(LIVE), redact(other)].sort());
  });

  test("when no node answers, the error names each without its password", async () => {
    const [first, second] = [await deadUrl(), await deadUrl()];
    const error = await Broker.connect(
      `${first},${second}`,
      "test-cluster",
      5,
      new MemoryLogger(),
    ).then(
      () => assert.fail("connected to nothing"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof BrokerError, String(error));
    assert.ok(error.retryable);
    assert.ok(error.message.includes(redact(first)), error.message);
    assert.ok(error.message.includes(redact(second)), error.message);
    assert.ok(!error.message.includes(PASSWORD), error.message);
  });

  test("a refused login is not tried on the other nodes", async () => {
    const wrong = LIVE.replace("guest:guest@", `guest:${PASSWORD}@`);
    assert.notEqual(wrong, LIVE);
    // One of two connections starts at the refusing node: it fails at once,
    // rather than going on to the node that would accept it.
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const broker = await Broker.connect(
          `${wrong},${LIVE}`,
          "test-cluster",
          5,
          new MemoryLogger(),
        );
        await broker.close();
        outcomes.push("connected");
      } catch (e) {
        assert.ok(e instanceof BrokerError, String(e));
        assert.ok(!e.retryable, e.message);
        assert.match(e.message, /refused the connection/);
        assert.ok(!e.message.includes(PASSWORD), e.message);
        outcomes.push("refused");
      }
    }
    assert.deepEqual(outcomes.sort(), ["connected", "refused"]);
  });

  test("an invalid node URL is a configuration error", async () => {
    await assert.rejects(
      Broker.connect(`${LIVE},http://n2/`, "test-cluster", 5, new MemoryLogger()),
      ConfigError,
    );
    await assert.rejects(
      Broker.connect(" , ", "test-cluster", 5, new MemoryLogger()),
      /no RabbitMQ URL given/,
    );
  });

  test("a worker given a cluster runs a step", async () => {
    const logger = new MemoryLogger();
    await bus.startWorker(
      [Echo],
      { amqpUrl: `${await deadUrl()},${LIVE},${await deadUrl()}` },
      logger,
    );
    const results = await bus.results();
    await bus.publishStep(
      stepReady(bus.namespace, Echo.handlerName, { context: { n: 1 } }),
      Echo.handlerName,
    );

    const result = await results.nextJson("the step result");
    assert.equal(result["status"], "completed", JSON.stringify(result));
    assert.deepEqual(result["result"], { echo: { n: 1 } });
    const ready = logger.records.find((r) => r.message === "worker ready");
    assert.equal(ready?.fields["broker"], redact(LIVE));
  });
});
