/** The parts that need no broker: decoding, encoding, the context's readers, names and settings. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { brokerUrls, connectionUrl, deliveryCount, redact } from "../src/broker.js";
import { Identity } from "../src/announce.js";
import {
  BrokerError,
  checkConfig,
  ConfigError,
  configFromEnv,
  DecodeError,
  decodeStepReady,
  type JsonObject,
  nameProblem,
  PermanentError,
  RecentResults,
  RetryableError,
  StepContext,
  type StepReady,
  TASK_ID_NAMESPACE,
  taskIdOf,
  topology,
  WaitingForChild,
  workerConfig,
} from "../src/index.js";
import { encode, failed, stepResult, uuid5, waitingForChild } from "../src/messages.js";
import { TLS_HINT, tlsFailure, urlCredentials, withPassword } from "../src/security.js";

const FIXTURES = new URL("../../../../protocol/tests/fixtures/messages/", import.meta.url);

function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

function fixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(fixture(name).toString("utf8")) as Record<string, unknown>;
}

function decodeError(body: string | Buffer, maxBytes = 1 << 20): DecodeError {
  try {
    decodeStepReady(typeof body === "string" ? Buffer.from(body) : body, maxBytes);
  } catch (e) {
    assert.ok(e instanceof DecodeError);
    return e;
  }
  assert.fail("decoded");
}

describe("step ready", () => {
  test("the golden fixture decodes", () => {
    const ready = decodeStepReady(fixture("step_ready.json"), 1 << 20);
    assert.equal(ready.taskId, "1313b797-4991-51f3-b1c9-e05383177de6");
    assert.equal(ready.namespace, "microservices");
    assert.equal(ready.step, "send_welcome_sequence");
    assert.equal(ready.callable, "Microservices::StepHandlers::SendWelcomeSequenceHandler");
    assert.equal(ready.attempt, 1);
    assert.equal(ready.maxAttempts, 2);
    assert.equal(ready.timeoutSeconds, undefined);
    assert.deepEqual(ready.dependencies, ["setup_billing_profile", "initialize_preferences"]);
    assert.deepEqual(Object.keys(ready.dependencyResults).sort(), [
      "create_user_account",
      "initialize_preferences",
      "setup_billing_profile",
    ]);
  });

  test("a missing dependencies field, or null optional fields, read as no value", () => {
    const m = fixtureJson("step_ready.json");
    delete m["dependencies"];
    m["timeout_seconds"] = null;
    const ready = decodeStepReady(Buffer.from(JSON.stringify(m)), 1 << 20);
    assert.deepEqual(ready.dependencies, []);
    assert.equal(ready.timeoutSeconds, undefined);
    const upper = { ...m, task_id: "{1313B797-4991-51F3-B1C9-E05383177DE6}" };
    assert.equal(
      decodeStepReady(Buffer.from(JSON.stringify(upper)), 1 << 20).taskId,
      "1313b797-4991-51f3-b1c9-e05383177de6",
    );
    assert.equal(
      decodeStepReady(Buffer.from(JSON.stringify({ ...m, timeout_seconds: 30, extra: 1 })), 1 << 20)
        .timeoutSeconds,
      30,
    );
  });

  test("what cannot be used gets its dead-letter reason", () => {
    const good = fixtureJson("step_ready.json");
    assert.equal(decodeError("{").reason, "not_json");
    assert.equal(decodeError(Buffer.from([0xff])).reason, "not_json");
    assert.equal(decodeError("NaN").reason, "not_json");
    assert.equal(
      decodeError("1").header,
      "invalid_message: payload does not match the message schema: it is an integer, not a JSON object",
    );
    assert.equal(
      decodeError(JSON.stringify({ ...good, protocol_version: 2 })).reason,
      "wrong_protocol_version",
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, protocol_version: "1" })).detail,
      /^protocol_version is not a number/,
    );
    assert.equal(
      decodeError(JSON.stringify({ ...good, protocol_version: null })).detail,
      "payload does not match the message schema: missing field protocol_version",
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, task_id: "nope" })).detail,
      /task_id is "nope", not a UUID$/,
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, attempt: -1 })).detail,
      /field attempt is -1, expected a non-negative integer$/,
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, attempt: 1.5 })).detail,
      /field attempt is a number, expected/,
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, timeout_seconds: "5" })).detail,
      /timeout_seconds is a string/,
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, initialization: [] })).detail,
      /initialization is an array, expected an object$/,
    );
    assert.match(
      decodeError(JSON.stringify({ ...good, dependencies: [1] })).detail,
      /dependencies must be an array of step names$/,
    );
    const { context: _, ...noContext } = good;
    assert.match(decodeError(JSON.stringify(noContext)).detail, /missing field context$/);
    assert.equal(
      decodeError(fixture("step_ready.json"), 100).header,
      `too_large: payload of ${fixture("step_ready.json").length} bytes is over the limit of 100 bytes`,
    );
  });
});

function ready(overrides: Partial<StepReady> = {}): StepReady {
  return {
    taskId: "1313b797-4991-51f3-b1c9-e05383177de6",
    namespace: "microservices",
    taskName: "user_registration",
    taskVersion: "1.0.0",
    step: "send_welcome_sequence",
    callable: "X",
    attempt: 1,
    maxAttempts: 2,
    timeoutSeconds: undefined,
    context: { email: "a@b.io", count: 3, flag: false, nothing: null },
    initialization: { region: "eu" },
    dependencies: ["create_user_account"],
    dependencyResults: { create_user_account: { user_id: "usr_1" }, empty: null },
    ...overrides,
  };
}

function invalidInput(read: () => unknown): string {
  try {
    read();
  } catch (e) {
    assert.ok(e instanceof PermanentError);
    assert.equal(e.code, "invalid_input");
    return e.message;
  }
  assert.fail("no error");
}

describe("step context", () => {
  test("reads the input, the dependency results, the settings and who it is", () => {
    const context = new StepContext(ready());
    assert.equal(
      context.idempotencyKey,
      "1313b797-4991-51f3-b1c9-e05383177de6:send_welcome_sequence",
    );
    assert.equal(context.taskId, "1313b797-4991-51f3-b1c9-e05383177de6");
    assert.equal(context.stepName, "send_welcome_sequence");
    assert.equal(context.attempt, 1);
    assert.equal(context.getInput("email"), "a@b.io");
    assert.equal(context.getInput("count", "integer"), 3);
    assert.equal(context.getInput("flag", "boolean"), false);
    assert.equal(context.getInputOr("missing", "x"), "x");
    assert.equal(context.getInputOr("nothing", 7, "number"), 7);
    assert.deepEqual(context.getDependencyResult("create_user_account", "object"), {
      user_id: "usr_1",
    });
    assert.equal(context.getDependencyResult("empty"), null);
    assert.equal(context.getInitialization("region", "string"), "eu");
    assert.equal(context.getInitialization("absent"), undefined);
  });

  test("a missing or mistyped value is a permanent invalid_input", () => {
    const context = new StepContext(ready());
    assert.equal(
      invalidInput(() => context.getInput("user")),
      'the task context has no "user"; add it to the task request\'s context',
    );
    assert.equal(
      invalidInput(() => context.getInput("email", "number")),
      'input "email" is malformed: expected a number, found a string',
    );
    assert.equal(
      invalidInput(() => context.getInputOr("count", 0, "string")),
      'input "count" is malformed: expected a string, found an integer',
    );
    assert.match(
      invalidInput(() => context.getDependencyResult("billing")),
      /has no result from "billing"; .*: create_user_account, empty$/,
    );
    assert.equal(
      invalidInput(() => new StepContext(ready({ context: [1] }))),
      "the task context is not a JSON object: it is an array",
    );
    assert.equal(
      invalidInput(() => context.getInput("toString")),
      'the task context has no "toString"; add it to the task request\'s context',
    );
  });
});

describe("step result", () => {
  test("has the shape of the golden fixtures", () => {
    const started = new Date("2025-03-14T11:40:02.120Z");
    const finished = new Date("2025-03-14T11:40:02.133Z");
    const error = new PermanentError("Disposable email addresses are not allowed: mailinator.com", {
      errorCode: "BLOCKED_EMAIL_DOMAIN",
    });
    const permanent = stepResult(
      ready({ taskId: "f167b859-3585-4908-b4bf-725455399a1d", step: "create_user_account" }),
      started,
      finished,
      failed(error),
    );
    assert.deepEqual(
      JSON.parse(encode(permanent).toString("utf8")),
      fixtureJson("step_result_failed_permanent.json"),
    );

    const retryable = fixtureJson("step_result_failed_retryable.json");
    const again = stepResult(
      ready({ taskId: String(retryable["task_id"]), step: "setup_billing_profile", attempt: 2 }),
      new Date(String(retryable["started_at"])),
      new Date(String(retryable["finished_at"])),
      failed(
        new RetryableError("billing service returned 503 Service Unavailable", {
          errorCode: "BILLING_UNAVAILABLE",
          retryAfter: 5,
        }),
      ),
    );
    assert.deepEqual(JSON.parse(encode(again).toString("utf8")), retryable);
  });

  test("values JSON cannot carry are refused", () => {
    assert.throws(() => encode({ n: Number.NaN }), TypeError);
    assert.throws(() => encode({ n: 10n }), TypeError);
    const cycle: Record<string, unknown> = {};
    cycle["self"] = cycle;
    assert.throws(() => encode(cycle), TypeError);
    assert.throws(() => new RetryableError("x", { errorCode: "X", retryAfter: -1 }), RangeError);
  });
});

describe("child tasks", () => {
  const parent = (): StepReady => {
    const request = fixtureJson("task_request_child.json");
    const p = request["parent"] as Record<string, unknown>;
    return ready({
      taskId: String(p["task_id"]),
      namespace: String(p["namespace"]),
      taskName: String(p["name"]),
      taskVersion: String(p["version"]),
      step: String(p["step"]),
      attempt: Number(p["attempt"]),
    });
  };

  test("the task id of a request is the UUIDv5 of its namespace, name and idempotency key", () => {
    // RFC 4122's example: the DNS namespace and "python.org".
    assert.equal(
      uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"),
      "886313e1-3b8a-5372-9b90-0c9aee199e5d",
    );
    assert.equal(
      taskIdOf(fixtureJson("task_request.json") as JsonObject),
      "1313b797-4991-51f3-b1c9-e05383177de6",
    );
    assert.equal(
      taskIdOf(fixtureJson("task_request_child.json") as JsonObject),
      "0203cdea-4a86-5cc4-9a57-7b04284b46ec",
    );
    assert.equal(taskIdOf({ request_id: "r-1", namespace: "a", name: "b" }), "r-1");
    assert.equal(TASK_ID_NAMESPACE, "6b1f0c52-3e0a-4c8e-9d43-7a521f0eb7c1");
  });

  test("completeWithChild publishes the golden request and gives the child's task id", async () => {
    const sent: [JsonObject, string][] = [];
    const context = new StepContext(parent(), undefined, async (request, childTaskId) => {
      sent.push([request, childTaskId]);
    });
    const golden = fixtureJson("task_request_child.json");
    const waiting = await context.completeWithChild(
      "payments",
      "process_refund",
      golden["context"] as JsonObject,
    );
    assert.ok(waiting instanceof WaitingForChild);
    assert.equal(waiting.childTaskId, "0203cdea-4a86-5cc4-9a57-7b04284b46ec");
    assert.equal(sent.length, 1);
    const [request, id] = sent[0] ?? [{}, ""];
    assert.equal(id, waiting.childTaskId);
    assert.match(
      request["request_id"] as string,
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.deepEqual({ ...request, request_id: golden["request_id"] }, golden);

    // The same step asks for the same child at every attempt; a version is passed on.
    const again = new StepContext({ ...parent(), attempt: 2 }, undefined, async (r) => {
      sent.push([r, ""]);
    });
    const second = await again.completeWithChild(
      "payments",
      "process_refund",
      {},
      { version: "1.1.0" },
    );
    assert.equal(second.childTaskId, waiting.childTaskId);
    const childRequest: JsonObject = sent[1]?.[0] ?? {};
    assert.equal(childRequest["version"], "1.1.0");
    assert.equal((childRequest["parent"] as JsonObject)["attempt"], 2);
  });

  test("the step result of a step waiting for its child has the shape of the golden fixture", () => {
    const golden = fixtureJson("step_result_waiting_for_child.json");
    const result = stepResult(
      parent(),
      new Date(String(golden["started_at"])),
      new Date(String(golden["finished_at"])),
      waitingForChild(String(golden["child_task_id"])),
    );
    assert.deepEqual(JSON.parse(encode(result).toString("utf8")), golden);
  });

  test("outside a worker, with a context that is no object, or unpublished, no child starts", async () => {
    const outside = new StepContext(parent());
    await assert.rejects(
      outside.completeWithChild("payments", "process_refund", {}),
      (e: unknown) => {
        assert.ok(e instanceof PermanentError);
        assert.equal(e.code, "child_not_started");
        return true;
      },
    );
    const inside = new StepContext(parent(), undefined, async () => undefined);
    await assert.rejects(
      inside.completeWithChild("payments", "process_refund", [1] as unknown as JsonObject),
      (e: unknown) => {
        assert.ok(e instanceof PermanentError);
        assert.equal(e.code, "invalid_input");
        assert.equal(
          e.message,
          "the context of child task payments/process_refund must be a JSON object, not an array",
        );
        return true;
      },
    );
    const refused = new StepContext(parent(), undefined, async () => {
      throw new BrokerError("no queue is bound");
    });
    await assert.rejects(
      refused.completeWithChild("payments", "process_refund", {}),
      (e: unknown) => {
        assert.ok(e instanceof RetryableError);
        assert.equal(e.code, "child_not_started");
        assert.match(
          e.message,
          /^the request for child task payments\/process_refund was not published: no queue is bound$/,
        );
        return true;
      },
    );
  });
});

describe("announcement", () => {
  test("has the fields of the golden fixture", () => {
    const body = new Identity(
      "0d9a6c1e-52b7-4f08-a3e1-6b4c2f7d9e15",
      "billing",
      16,
      new Date(),
      10,
    ).announcement(
      [
        {
          namespace: "microservices",
          queue: "tasker.steps.microservices.billing",
          callables: ["A"],
        },
      ],
      false,
    );
    assert.deepEqual(
      Object.keys(body).sort(),
      Object.keys(fixtureJson("worker_announcement.json")).sort(),
    );
    assert.equal(body["language"], "typescript");
  });

  test("a namespace's entry carries partitions only when its steps are split", () => {
    const identity = new Identity(randomUUID(), "billing", 16, new Date(), 10);
    const entry = { namespace: "ns", queue: "tasker.steps.ns.billing", callables: ["A"] };
    const serves = (partitions?: number): unknown =>
      identity.announcement([partitions === undefined ? entry : { ...entry, partitions }], false)[
        "serves"
      ];
    assert.deepEqual(serves(4), [{ ...entry, partitions: 4 }]);
    assert.deepEqual(serves(1), [entry]);
    assert.deepEqual(serves(), [entry]);
  });
});

describe("settings", () => {
  test("several URLs name a cluster's nodes", () => {
    assert.deepEqual(brokerUrls(" amqp://n1:5672/%2f , amqp://n2:5672/%2f,, "), [
      "amqp://n1:5672/%2f",
      "amqp://n2:5672/%2f",
    ]);
    assert.deepEqual(brokerUrls("amqp://host"), ["amqp://host"]);
    assert.deepEqual(brokerUrls("amqp://u:a%2Cb@host"), ["amqp://u:a%2Cb@host"]);
    assert.deepEqual(brokerUrls(" , "), []);
    assert.equal(redact("amqp://guest:secret@h:5672/%2f"), "amqp://guest:***@h:5672/%2f");
    assert.equal(
      redact("amqp://u:pw@n1:5672/%2f, amqp://u:pw@n2:5673/%2f"),
      "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5673/%2f",
    );
  });

  test("names, configuration and headers", () => {
    assert.equal(nameProblem("billing"), undefined);
    assert.equal(nameProblem(""), "is empty; give it a name");
    assert.equal(nameProblem("a.b"), `contains "."; use only ASCII letters, digits, '_' and '-'`);
    assert.match(nameProblem("x".repeat(101)) ?? "", /is 101 bytes long/);
    assert.throws(() => checkConfig(workerConfig()), ConfigError);
    assert.throws(
      () => checkConfig(workerConfig({ service: "s", maxRedeliveries: 100 })),
      ConfigError,
    );
    checkConfig(workerConfig({ service: "s" }));
    assert.equal(
      configFromEnv({}, { TASKER_SERVICE: "svc", TASKER_CONCURRENCY: "4" }).concurrency,
      4,
    );
    assert.throws(() => configFromEnv({}, { TASKER_CONCURRENCY: "four" }), ConfigError);
    assert.equal(connectionUrl("amqp://u:p@h:5672/%2f", 5), "amqp://u:p@h:5672/%2f?heartbeat=5");
    assert.equal(connectionUrl("amqp://h/?heartbeat=9", 5), "amqp://h/?heartbeat=9");
    assert.equal(connectionUrl("amqp://h/", 0.5), "amqp://h/?heartbeat=1");
    assert.throws(() => connectionUrl("http://h/", 5), ConfigError);
    assert.throws(() => connectionUrl("not a url", 5), ConfigError);
    assert.equal(deliveryCount(undefined), 0);
    assert.equal(deliveryCount({ "x-delivery-count": 6 }), 6);
    assert.equal(deliveryCount({ "x-delivery-count": 6n }), 6);
    assert.equal(deliveryCount({ "x-delivery-count": "6" }), 0);
    assert.deepEqual(topology.QUORUM, { "x-queue-type": "quorum", "x-delivery-limit": 100 });
  });

  test("TASKER_PARTITIONS takes a whole number of queues from 1 to 64", () => {
    assert.equal(configFromEnv({}, {}).partitions, 1);
    assert.equal(configFromEnv({}, { TASKER_PARTITIONS: "4" }).partitions, 4);
    assert.equal(configFromEnv({}, { TASKER_PARTITIONS: " 64 " }).partitions, 64);
    for (const bad of ["0", "65", "x", "", "2.5", "-1"]) {
      assert.throws(
        () => configFromEnv({}, { TASKER_PARTITIONS: bad }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.equal(
            e.message,
            `TASKER_PARTITIONS=${JSON.stringify(bad)} is not a number of queues from 1 to 64; give ` +
              "the number of queues the service's steps are split over (1, the default, is one queue)",
          );
          return true;
        },
        bad,
      );
    }
    checkConfig(workerConfig({ service: "s", partitions: 64 }));
    for (const bad of [0, 65, 1.5]) {
      assert.throws(
        () => checkConfig(workerConfig({ service: "s", partitions: bad })),
        /^ConfigError: partitions is .*; give a number of queues from 1 to 64$/,
      );
    }
    assert.equal(topology.MAX_PARTITIONS, 64);
    assert.equal(topology.serviceExchange("ns", "billing"), "tasker.steps.ns.billing");
    assert.equal(topology.partitionQueue("ns", "billing", 3), "tasker.steps.ns.billing.3");
    assert.equal(topology.PARTITIONED_EXCHANGE_TYPE, "x-consistent-hash");
    assert.equal(topology.HASH_HEADER_ARGUMENT, "hash-header");
    assert.equal(topology.PARTITION_WEIGHT, "1");
  });

  test("a namespace's steps exchange is tasker.steps.<namespace>, no service's queue", () => {
    assert.equal(topology.namespaceStepsExchange("billing"), "tasker.steps.billing");
    assert.equal(topology.STEPS_EXCHANGE, "tasker.steps");
    // Names have no dots: no namespace's exchange is a service's queue or exchange.
    assert.notEqual(topology.namespaceStepsExchange("ns_svc"), topology.serviceQueue("ns", "svc"));
    assert.notEqual(topology.namespaceStepsExchange("ns"), topology.serviceExchange("ns", "svc"));
  });

  test("recent results forget the oldest beyond their capacity", () => {
    const recent = new RecentResults(2);
    const sent = { body: Buffer.from("{}"), properties: {} };
    recent.insert("a", sent);
    recent.insert("b", sent);
    recent.insert("c", sent);
    assert.equal(recent.size, 2);
    assert.equal(recent.get("a"), undefined);
    assert.equal(recent.get("c"), sent);
  });
});

describe("credentials and TLS settings", () => {
  test("the environment gives the password, or its file, and the TLS files", () => {
    const dir = mkdtempSync(join(tmpdir(), "tasker-ts-secret-"));
    try {
      const file = join(dir, "password");
      writeFileSync(file, "s3cret\r\n\n");
      const config = configFromEnv(
        {},
        {
          TASKER_AMQP_PASSWORD_FILE: file,
          TASKER_TLS_CA_FILE: "/etc/tasker/ca.pem",
          TASKER_TLS_CERT_FILE: "/etc/tasker/client.pem",
          TASKER_TLS_KEY_FILE: "/etc/tasker/client.key",
        },
      );
      assert.equal(config.amqpPassword, "s3cret");
      assert.deepEqual(
        [config.tlsCaFile, config.tlsCertFile, config.tlsKeyFile],
        ["/etc/tasker/ca.pem", "/etc/tasker/client.pem", "/etc/tasker/client.key"],
      );
      assert.equal(configFromEnv({}, { TASKER_AMQP_PASSWORD: "inline" }).amqpPassword, "inline");
      const none = configFromEnv({}, {});
      assert.deepEqual(
        [none.amqpPassword, none.tlsCaFile, none.tlsCertFile, none.tlsKeyFile],
        [undefined, undefined, undefined, undefined],
      );
      // Code wins over the environment, as for every setting.
      assert.equal(
        configFromEnv({ amqpPassword: "code" }, { TASKER_AMQP_PASSWORD_FILE: file }).amqpPassword,
        "code",
      );

      assert.throws(
        () =>
          configFromEnv({}, { TASKER_AMQP_PASSWORD: "hunter2", TASKER_AMQP_PASSWORD_FILE: file }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.equal(
            e.message,
            "both TASKER_AMQP_PASSWORD and TASKER_AMQP_PASSWORD_FILE are set; set one: the password " +
              "itself, or the file that holds it",
          );
          return true;
        },
      );
      const missing = join(dir, "missing");
      assert.throws(
        () => configFromEnv({}, { TASKER_AMQP_PASSWORD_FILE: missing }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.ok(
            e.message.startsWith(`TASKER_AMQP_PASSWORD_FILE=${missing}: cannot read the file: `),
            e.message,
          );
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a client certificate needs its key, and the key its certificate", () => {
    const message =
      "set both TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE (tlsCertFile and tlsKeyFile) for a " +
      "client certificate, or neither";
    assert.throws(() => configFromEnv({}, { TASKER_TLS_CERT_FILE: "c.pem" }), {
      name: "ConfigError",
      message,
    });
    assert.throws(() => configFromEnv({}, { TASKER_TLS_KEY_FILE: "c.key" }), {
      name: "ConfigError",
      message,
    });
    assert.throws(() => checkConfig(workerConfig({ service: "s", tlsCertFile: "c.pem" })), {
      name: "ConfigError",
      message,
    });
    checkConfig(workerConfig({ service: "s", tlsCertFile: "c.pem", tlsKeyFile: "c.key" }));
    checkConfig(workerConfig({ service: "s", tlsCaFile: "ca.pem" }));
  });

  test("the password goes into every URL, encoded, in place of the one there", () => {
    const password = "p@ss/w,rd%é:";
    const urls = ["amqp://tasker@n1:5672/%2f", "amqps://tasker:old@n2:5671/%2f?heartbeat=9"].map(
      (url) => withPassword(url, password),
    );
    assert.deepEqual(urls, [
      "amqp://tasker:p%40ss%2Fw%2Crd%25%C3%A9%3A@n1:5672/%2f",
      "amqps://tasker:p%40ss%2Fw%2Crd%25%C3%A9%3A@n2:5671/%2f?heartbeat=9",
    ]);
    // Still two URLs once joined, and the broker gets the password as it was.
    assert.deepEqual(brokerUrls(urls.join(",")), urls);
    assert.deepEqual(urlCredentials(urls[0] ?? ""), { username: "tasker", password });
    assert.equal(
      redact(urls.join(",")),
      "amqp://tasker:***@n1:5672/%2f,amqps://tasker:***@n2:5671/%2f?heartbeat=9",
    );
    assert.equal(urlCredentials("amqp://n1:5672/%2f"), undefined);
    assert.equal(withPassword("not a url", "hunter2"), "not a url");
  });

  test("a failed TLS handshake is told from other connection errors", () => {
    const error = (code: string, message: string): Error =>
      Object.assign(new Error(message), { code });
    assert.equal(
      tlsFailure(
        error("SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain"),
      ),
      "self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN)",
    );
    const alert = Object.assign(
      error("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "8000:error:0A00045C:SSL routines:..."),
      { reason: "tlsv13 alert certificate required" },
    );
    assert.equal(
      tlsFailure(alert),
      "tlsv13 alert certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)",
    );
    assert.match(
      tlsFailure(error("ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match")) ?? "",
      /ALTNAME/,
    );
    assert.equal(
      tlsFailure(error("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5671")),
      undefined,
    );
    assert.equal(
      tlsFailure(new Error("Socket closed abruptly during opening handshake")),
      undefined,
    );
    for (const variable of ["TASKER_TLS_CA_FILE", "TASKER_TLS_CERT_FILE", "TASKER_TLS_KEY_FILE"]) {
      assert.ok(TLS_HINT.includes(variable), variable);
    }
  });
});
