/**
 * A service's steps split over several queues (`partitions`), against a real
 * RabbitMQ with the consistent-hash exchange: the declarations, a worker
 * consuming every queue, the refusal of a worker that would take a share as
 * a single queue, and the draining of a service's former single queue.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, test } from "node:test";

import type * as amqp from "amqplib";

import { ConfigError, type StepContext, StepHandler, topology } from "../src/index.js";
import { Bus, Counted, MemoryLogger, stepReady } from "./helpers.js";

class Echo extends StepHandler {
  static override readonly handlerName = "Tests::Echo";

  async call(context: StepContext): Promise<unknown> {
    return { task: context.taskId };
  }
}

const SERVICE = "svc";

/** Publishes a step of `callable` for a task of its own, with its task id header, as the coordinator does. */
async function publishForTask(
  bus: Bus,
  callable: string,
  context: Record<string, unknown> = {},
): Promise<string> {
  const taskId = randomUUID();
  await bus.publishStep(stepReady(bus.namespace, callable, { taskId, context }), callable, {
    [topology.Header.TASK_ID]: taskId,
  });
  return taskId;
}

/** The messages ready in each of `queues`, once they add up to `total` (or the last counts at the deadline). */
async function messageCounts(bus: Bus, queues: string[], total: number): Promise<number[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const counts: number[] = [];
    for (const queue of queues) counts.push((await bus.queueState(queue))[0]);
    if (counts.reduce((a, b) => a + b, 0) === total || Date.now() > deadline) return counts;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function partitionQueues(bus: Bus, partitions: number): string[] {
  return Array.from({ length: partitions }, (_, index) =>
    topology.partitionQueue(bus.namespace, SERVICE, index),
  );
}

describe("partitions", () => {
  let bus: Bus;

  beforeEach(async () => {
    bus = await Bus.connect();
  });

  afterEach(async () => {
    await bus.close();
  });

  test("a service split over 4 queues gets every step in one of them, spread by task id", async () => {
    bus.rememberPartitions(SERVICE, 4);
    const broker = await bus.broker();
    const channel = await broker.channel();
    const queues = await broker.declareService(
      channel,
      bus.namespace,
      SERVICE,
      [Echo.handlerName],
      4,
    );
    assert.deepEqual(queues, partitionQueues(bus, 4));
    assert.equal(
      await bus.exists("exchange", topology.serviceExchange(bus.namespace, SERVICE)),
      true,
    );
    assert.equal(
      await bus.exists("queue", topology.serviceQueue(bus.namespace, SERVICE)),
      false,
      "no single queue beside the exchange",
    );

    for (let i = 0; i < 40; i++) await publishForTask(bus, Echo.handlerName);
    const counts = await messageCounts(bus, queues, 40);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      40,
      `every step in a partition queue: ${String(counts)}`,
    );
    assert.ok(counts.filter((n) => n > 0).length >= 2, `spread over the queues: ${String(counts)}`);
  });

  test("a worker with 4 partitions consumes each queue, announces them, and runs at most concurrency steps", async () => {
    const announcements = await bus.watch(
      topology.EVENTS_EXCHANGE,
      topology.WORKER_ANNOUNCE_ROUTING_KEY,
    );
    const counted = new Counted();
    const worker = await bus.startWorker([counted], { partitions: 4, concurrency: 4 });
    const queues = partitionQueues(bus, 4);
    assert.deepEqual(worker.queues, queues);
    for (const queue of queues) assert.deepEqual(await bus.queueState(queue), [0, 1], queue);

    const mine = (m: amqp.ConsumeMessage): boolean =>
      (JSON.parse(m.content.toString("utf8")) as Record<string, unknown>)["worker_id"] ===
      worker.workerId;
    const announcement = JSON.parse(
      (await announcements.nextWhere(mine, "the worker's announcement")).content.toString("utf8"),
    ) as Record<string, unknown>;
    assert.deepEqual(announcement["serves"], [
      {
        namespace: bus.namespace,
        queue: topology.serviceQueue(bus.namespace, SERVICE),
        callables: [Counted.handlerName],
        partitions: 4,
      },
    ]);

    const results = await bus.results();
    const published = new Set<string>();
    for (let i = 0; i < 40; i++) {
      published.add(await publishForTask(bus, Counted.handlerName, { ms: 100 }));
    }
    const finished = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const result = await results.nextJson("a result");
      assert.equal(result["status"], "completed");
      finished.add(String(result["task_id"]));
    }
    assert.deepEqual(finished, published);
    // The prefetch is shared out over the 4 consumers: 1 each, not 4 each.
    assert.ok(counted.most <= 4, `${counted.most} steps ran at once`);
    await worker.stop();
    for (const queue of queues) assert.deepEqual(await bus.queueState(queue), [0, 0], queue);
  });

  test("once the service is split, a worker with one partition is refused, naming TASKER_PARTITIONS", async () => {
    bus.rememberPartitions(SERVICE, 2);
    const broker = await bus.broker();
    await broker.declareService(await broker.channel(), bus.namespace, SERVICE, ["A"], 2);

    const refused = (e: unknown): boolean => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(
        e.message,
        `the steps of service '${SERVICE}' in namespace '${bus.namespace}' are split over several ` +
          `queues (the exchange tasker.steps.${bus.namespace}.${SERVICE} exists): start this worker ` +
          "with TASKER_PARTITIONS set to the number the service's other workers use",
      );
      return true;
    };
    await assert.rejects(
      broker.declareService(await broker.channel(), bus.namespace, SERVICE, ["A"]),
      refused,
    );
    // A worker stops at once, rather than trying again and again.
    await assert.rejects(bus.startWorker([Echo]), refused);
    assert.equal(
      await bus.exists("queue", topology.serviceQueue(bus.namespace, SERVICE)),
      false,
      "no single queue was declared",
    );
  });

  test("a service split later drains its former single queue, which new steps no longer reach", async () => {
    bus.rememberPartitions(SERVICE, 2);
    const logger = new MemoryLogger();
    const broker = await bus.broker(logger);
    const channel = await broker.channel();
    const former = topology.serviceQueue(bus.namespace, SERVICE);
    assert.deepEqual(
      await broker.declareService(channel, bus.namespace, SERVICE, [Echo.handlerName]),
      [former],
    );
    // Where earlier versions bound it, beside the namespace's steps exchange.
    await bus.channel.bindQueue(
      former,
      topology.STEPS_EXCHANGE,
      topology.stepRoutingKey(bus.namespace, Echo.handlerName),
    );
    const leftover = await publishForTask(bus, Echo.handlerName);
    assert.deepEqual(await bus.queueState(former), [1, 0]);

    const queues = partitionQueues(bus, 2);
    assert.deepEqual(
      await broker.declareService(channel, bus.namespace, SERVICE, [Echo.handlerName], 2),
      [...queues, former],
    );
    const drains = logger.records.find((r) => r.level === "info" && r.fields["queue"] === former);
    assert.ok(drains, "an info line names the former queue");
    assert.match(drains.message, /former single queue/);

    const next = await publishForTask(bus, Echo.handlerName);
    const counts = await messageCounts(bus, queues, 1);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      1,
      `the new step in a partition queue: ${String(counts)}`,
    );
    assert.deepEqual(
      await bus.queueState(former),
      [1, 0],
      "the new step is not in the former queue",
    );

    // A worker split the same way runs both.
    const results = await bus.results();
    const worker = await bus.startWorker([Echo], { partitions: 2 });
    assert.deepEqual(worker.queues, [...queues, former]);
    const finished = new Set<string>();
    for (let i = 0; i < 2; i++)
      finished.add(String((await results.nextJson("a result"))["task_id"]));
    assert.deepEqual(finished, new Set([leftover, next]));
    await worker.stop();
    assert.deepEqual(await bus.queueState(former), [0, 0]);
  });
});
