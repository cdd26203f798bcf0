/**
 * The worker conformance kit (tests/conformance/), run against this SDK:
 * each scenario's messages go to a TypeScript worker's service queue, and
 * what it publishes or dead-letters is checked as
 * tests/conformance/README.md says. One test per scenario, named after it.
 *
 * `TASKER_CONFORMANCE_SCENARIOS` names another scenarios file to run
 * instead of the repository's (a path, or a URL).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

import type * as amqp from "amqplib";

import {
  type JsonObject,
  type JsonValue,
  PermanentError,
  RetryableError,
  type StepContext,
  StepHandler,
  topology,
  type WorkerConfig,
} from "../src/index.js";
import { Bus, MemoryLogger } from "./helpers.js";

const SERVICE = "conformance";
/** How long a runner waits for each thing it expects. */
const WAIT_MS = 15_000;

interface Delivery {
  step_ready?: JsonObject;
  remove?: string[];
  raw_body?: string;
  again?: boolean;
}

interface Expectation {
  result?: JsonObject;
  same_as?: number;
  child_request?: JsonObject;
  dead_letter?: { reason_prefix: string; original_queue: string; body?: string };
}

interface Scenario {
  name: string;
  about?: string;
  worker?: { max_message_bytes?: number };
  deliveries: Delivery[];
  expect: Expectation[];
  handler_runs?: number;
  no_results?: boolean;
}

interface Kit {
  callable: string;
  scenarios: Scenario[];
}

function kitLocation(): URL {
  const chosen = process.env["TASKER_CONFORMANCE_SCENARIOS"];
  if (chosen === undefined || chosen === "") {
    return new URL("../../../../tests/conformance/scenarios.json", import.meta.url);
  }
  return /^[a-z]+:\/\//i.test(chosen) ? new URL(chosen) : pathToFileURL(chosen);
}

const KIT = JSON.parse(readFileSync(kitLocation(), "utf8")) as Kit;

/** The kit's one handler, driven by the step's `initialization`. */
class Conformance extends StepHandler {
  static override readonly handlerName = KIT.callable;
  runs = 0;

  async call(context: StepContext): Promise<unknown> {
    this.runs += 1;
    const action = context.getInitialization("do", "string") ?? "echo";
    const text = (key: string): string => context.getInitialization(key, "string") ?? "";
    switch (action) {
      case "echo": {
        const input = context.getInitialization("input", "string");
        const dependency = context.getInitialization("dependency", "string");
        return {
          input: input === undefined ? null : context.getInputOr(input, null),
          dependency: dependency === undefined ? null : context.getDependencyResult(dependency),
          dependencies: context.dependencies,
          attempt: context.attempt,
          idempotency_key: context.idempotencyKey,
        };
      }
      case "permanent":
        throw new PermanentError(text("message"), { errorCode: text("code") });
      case "retryable":
        throw new RetryableError(text("message"), {
          errorCode: text("code"),
          retryAfter: context.getInitialization("retry_after", "number"),
        });
      case "sleep": {
        const seconds = context.getInitialization("seconds", "number") ?? 0;
        // Stops at the timeout, as a cancelled task would.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, seconds * 1000);
          context.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return {};
      }
      case "crash":
        throw new Error(text("message") || "crash");
      case "child":
        return context.completeWithChild(
          text("namespace"),
          text("name"),
          context.getInitialization("context", "object") ?? {},
        );
      default:
        throw new Error(`the kit names no action ${JSON.stringify(action)}`);
    }
  }
}

/**
 * The kit's substitutions: `{task_id}`, `{namespace}` and `{service_queue}`
 * in every string, and `{"$repeat": s, "times": n}` objects.
 */
function substitute(value: unknown, names: Readonly<Record<string, string>>): unknown {
  if (typeof value === "string") {
    let text = value;
    for (const [name, replacement] of Object.entries(names)) {
      text = text.replaceAll(`{${name}}`, replacement);
    }
    return text;
  }
  if (Array.isArray(value)) {
    return value.map((v) => substitute(v, names));
  }
  if (typeof value === "object" && value !== null) {
    const object = value as Record<string, unknown>;
    if ("$repeat" in object) {
      return String(object["$repeat"]).repeat(Number(object["times"]));
    }
    return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, substitute(v, names)]));
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Objects match field by field (a subset), other values exactly. */
function isSubset(expected: unknown, actual: unknown): boolean {
  if (isPlainObject(expected)) {
    return (
      isPlainObject(actual) &&
      Object.entries(expected).every(([k, v]) => Object.hasOwn(actual, k) && isSubset(v, actual[k]))
    );
  }
  return isDeepStrictEqual(expected, actual);
}

function assertSubset(expected: unknown, actual: unknown, what: string): void {
  if (!isSubset(expected, actual)) {
    assert.fail(
      `${what} does not match\nexpected (a subset): ${JSON.stringify(expected)}\nactual: ${JSON.stringify(actual)}`,
    );
  }
}

/** The base step-ready message of the kit's README. */
function base(namespace: string, taskId: string): JsonObject {
  return {
    protocol_version: 1,
    task_id: taskId,
    namespace,
    task_name: "conformance",
    task_version: "1.0.0",
    step: "s",
    callable: KIT.callable,
    attempt: 1,
    max_attempts: 3,
    context: {},
    initialization: {},
    dependencies: [],
    dependency_results: {},
  };
}

/** A header as text (amqplib gives long strings as strings, or as bytes). */
function header(message: amqp.ConsumeMessage, name: string): string | undefined {
  const value = message.properties.headers?.[name] as unknown;
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return typeof value === "string" ? value : JSON.stringify(value);
}

function json(message: amqp.ConsumeMessage): JsonValue {
  return JSON.parse(message.content.toString("utf8")) as JsonValue;
}

async function untilConsumed(bus: Bus, queue: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while ((await bus.queueState(queue))[1] === 0) {
    assert.ok(Date.now() < deadline, `the worker never consumed ${queue}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function run(bus: Bus, scenario: Scenario): Promise<void> {
  const namespace = bus.namespace;
  const taskId = randomUUID();
  const queue = topology.serviceQueue(namespace, SERVICE);
  const s = substitute(scenario, { task_id: taskId, namespace, service_queue: queue }) as Scenario;
  assert.equal(s.deliveries.length, s.expect.length, "one expectation per delivery");

  // 1. A worker of service `conformance` with the conformance handler only.
  const handler = new Conformance();
  const config: Partial<WorkerConfig> = { service: SERVICE };
  if (s.worker?.max_message_bytes !== undefined) {
    config.maxMessageBytes = s.worker.max_message_bytes;
  }
  await bus.startWorker([handler], config, new MemoryLogger());
  await untilConsumed(bus, queue);

  // 2. What it publishes: step results, dead letters, child task requests
  // (bound after the worker, which declares the requests exchange).
  const results = await bus.results();
  const dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE);
  const children = await bus.watch(topology.REQUESTS_EXCHANGE, `${namespace}_child`);

  // 3 and 4. Each delivery, then its expectation.
  const seen: JsonValue[] = [];
  let body = Buffer.alloc(0);
  for (const [n, delivery] of s.deliveries.entries()) {
    const expected = s.expect[n] ?? {};
    const which = `delivery ${n + 1}`;
    if (delivery.raw_body !== undefined) {
      body = Buffer.from(delivery.raw_body, "utf8");
    } else if (delivery.step_ready !== undefined) {
      const remove = new Set(delivery.remove);
      const message = Object.fromEntries(
        Object.entries({ ...base(namespace, taskId), ...delivery.step_ready }).filter(
          ([field]) => !remove.has(field),
        ),
      );
      body = Buffer.from(JSON.stringify(message), "utf8");
    } else {
      assert.equal(delivery.again, true, `${which} is none of step_ready, raw_body, again`);
      assert.ok(n > 0, "`again` needs a delivery before it");
    }
    await bus.publish("", queue, body);

    let childTaskId: string | undefined;
    if (expected.child_request !== undefined) {
      const request = await children.next(`child task request of ${which}`, WAIT_MS);
      assertSubset(expected.child_request, json(request), `the child task request of ${which}`);
      childTaskId = header(request, topology.Header.TASK_ID);
      assert.ok(
        childTaskId !== undefined,
        `the child task request of ${which} has no ${topology.Header.TASK_ID} header`,
      );
    }
    if (expected.result !== undefined) {
      const result = json(await results.next(`step result of ${which}`, WAIT_MS));
      assertSubset(expected.result, result, `the step result of ${which}`);
      if (childTaskId !== undefined) {
        assert.equal(
          (result as JsonObject)["child_task_id"],
          childTaskId,
          `the child_task_id of ${which}'s result`,
        );
      }
      if (expected.same_as !== undefined) {
        assert.ok(
          expected.same_as < seen.length,
          `same_as ${expected.same_as}: there is no such result yet`,
        );
        assert.deepEqual(
          result,
          seen[expected.same_as],
          `the step result of ${which} is result ${expected.same_as}'s`,
        );
      }
      seen.push(result);
    } else if (expected.dead_letter !== undefined) {
      const want = expected.dead_letter;
      const letter = await dead.nextWhere(
        (m) => header(m, topology.Header.DEAD_LETTER_QUEUE) === queue,
        `dead letter from ${queue} for ${which}`,
        WAIT_MS,
      );
      const reason = header(letter, topology.Header.DEAD_LETTER_REASON) ?? "";
      assert.ok(
        reason.startsWith(`${want.reason_prefix}:`),
        `dead-letter reason ${JSON.stringify(reason)} is not ${want.reason_prefix}`,
      );
      assert.equal(header(letter, topology.Header.DEAD_LETTER_QUEUE), want.original_queue);
      if (want.body !== undefined) {
        assert.equal(
          letter.content.toString("utf8"),
          want.body,
          `the dead letter's body of ${which}`,
        );
        assert.deepEqual(letter.content, Buffer.from(want.body, "utf8"));
      }
    } else {
      assert.ok(
        expected.child_request !== undefined,
        `the expectation of ${which} expects nothing`,
      );
    }
  }

  // 5. No stray result, and the handler ran as often as said.
  if (s.no_results === true) {
    const stray = await results.quietFor(500);
    assert.equal(
      stray,
      undefined,
      `a step result was published: ${stray?.content.toString("utf8") ?? ""}`,
    );
  }
  if (s.handler_runs !== undefined) {
    assert.equal(handler.runs, s.handler_runs, "the conformance handler's runs");
  }
  // 6. The worker stops and the queues go in afterEach (Bus.close).
}

describe("conformance kit", () => {
  let bus: Bus;

  beforeEach(async () => {
    bus = await Bus.connect();
  });

  afterEach(async () => {
    await bus.close();
  });

  test("the kit has scenarios, each with a name of its own", () => {
    assert.ok(KIT.scenarios.length > 0, "no scenarios");
    const names = KIT.scenarios.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, `duplicate names among ${names.join(", ")}`);
  });

  for (const scenario of KIT.scenarios) {
    test(scenario.name, { timeout: 60_000 }, () => run(bus, scenario));
  }
});
