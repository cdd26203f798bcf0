/**
 * TLS, passwords kept out of the URL, and a least-privilege user, against
 * the RabbitMQ that `deploy/dev` runs: its TLS listener on 127.0.0.1:5671,
 * which asks for a client certificate, the certificates under `.dev/tls`,
 * and the user `tasker-test-probe`, whose password is in
 * `.dev/secrets/rabbitmq-tasker-test-probe` and who may run the service
 * `probe` of namespaces `lp_…` but declare none of the shared objects.
 * What the tests declare is declared and deleted as guest, on the plain port.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, test } from "node:test";

import { Broker, properties, redact } from "../src/broker.js";
import {
  BrokerError,
  Client,
  ConfigError,
  type ConnectionSecurity,
  configFromEnv,
  securityFromEnv,
  type StepContext,
  StepHandler,
  TaskFinished,
  topology,
  Worker,
} from "../src/index.js";
import { Bus, Coordinator, MemoryLogger, stepReady, unique, Watch } from "./helpers.js";

// From dist/test, the repository is four levels up.
const DEV = new URL("../../../../.dev/", import.meta.url).pathname;
const CA = `${DEV}tls/ca.pem`;
const OTHER_CA = `${DEV}tls/other-ca.pem`;
const CLIENT_CERT = `${DEV}tls/client.pem`;
const CLIENT_KEY = `${DEV}tls/client.key`;
const PROBE_PASSWORD_FILE = `${DEV}secrets/rabbitmq-tasker-test-probe`;

/** The node deploy/dev runs: plain AMQP, as guest; its TLS listener; and the least-privilege user, without a password. */
const PLAIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TLS_URL = "amqps://guest:guest@127.0.0.1:5671/%2f";
const PROBE_URL = "amqp://tasker-test-probe@127.0.0.1:5672/%2f";

/** A test that waits for a worker that never gets ready fails rather than hangs. */
const LIMIT = { timeout: 60_000 };

/** The TLS settings, as the environment gives them. */
function tlsFromEnv(env: Record<string, string>): ConnectionSecurity {
  const { tlsCaFile, tlsCertFile, tlsKeyFile } = configFromEnv({}, env);
  return { tlsCaFile, tlsCertFile, tlsKeyFile };
}

const MUTUAL_TLS = tlsFromEnv({
  TASKER_TLS_CA_FILE: CA,
  TASKER_TLS_CERT_FILE: CLIENT_CERT,
  TASKER_TLS_KEY_FILE: CLIENT_KEY,
});

/** The least-privilege user's password, from its file, as a deployment gives it. */
function probe(): ConnectionSecurity {
  return securityFromEnv({ TASKER_AMQP_PASSWORD_FILE: PROBE_PASSWORD_FILE });
}

class Echo extends StepHandler {
  static override readonly handlerName = "Tests::Echo";

  async call(context: StepContext): Promise<unknown> {
    return { echo: context.inputs };
  }
}

/** A logger that also hands over the warnings it waits for. */
class Warned extends MemoryLogger {
  readonly #waiting = new Map<string, (fields: Record<string, unknown>) => void>();

  /** The fields of the next warning `message`. */
  next(message: string): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.#waiting.set(message, resolve));
  }

  override warn(message: string, fields: Record<string, unknown> = {}): void {
    super.warn(message, fields);
    this.#waiting.get(message)?.(fields);
    this.#waiting.delete(message);
  }
}

/** What `promise` rejects with; a failure if it resolves. */
async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  return promise.then(
    () => assert.fail(`${what} succeeded`),
    (e: unknown) => e,
  );
}

describe("TLS", () => {
  let bus: Bus;
  let coordinators: Coordinator[];
  let clients: Client[];

  beforeEach(async () => {
    bus = await Bus.connect("ts", PLAIN_URL);
    coordinators = [];
    clients = [];
  });

  afterEach(async () => {
    for (const client of clients) await client.close();
    for (const coordinator of coordinators) await coordinator.stop();
    await bus.close();
  });

  test(
    "a worker with the CA and a client certificate runs a step over amqps://",
    LIMIT,
    async () => {
      const logger = new MemoryLogger();
      await bus.startWorker([Echo], { amqpUrl: TLS_URL, ...MUTUAL_TLS }, logger);
      const results = await bus.results();
      await bus.publishStep(
        stepReady(bus.namespace, Echo.handlerName, { context: { over: "tls" } }),
        Echo.handlerName,
      );

      const result = await results.nextJson("the step result");
      assert.equal(result["status"], "completed", JSON.stringify(result));
      assert.deepEqual(result["result"], { echo: { over: "tls" } });
      const ready = logger.records.find((r) => r.message === "worker ready");
      assert.equal(ready?.fields["broker"], "amqps://guest:***@127.0.0.1:5671/%2f");
    },
  );

  test(
    "a client and a worker over amqps:// run a task through the coordinator",
    LIMIT,
    async () => {
      const namespace = bus.namespace;
      // The coordinator on the plain port, with the URL as it is.
      await Coordinator.start(
        coordinators,
        {
          "echo.yaml": `
name: echo
namespace_name: ${namespace}
version: 1.0.0
steps:
  - name: only
    handler:
      callable: ${Echo.handlerName}
`,
        },
        [namespace],
        PLAIN_URL,
      );
      await bus.startWorker([Echo], { amqpUrl: TLS_URL, ...MUTUAL_TLS });
      const client = await Client.connect(TLS_URL, { ...MUTUAL_TLS, logger: new MemoryLogger() });
      clients.push(client);

      const finished = await client.runTask(namespace, "echo", { n: 7 }, { timeoutSeconds: 60 });
      assert.ok(finished instanceof TaskFinished, JSON.stringify(finished));
      assert.equal(finished.status, "complete");
      assert.deepEqual(finished.step("only").result, { echo: { n: 7 } });
    },
  );

  test(
    "trusting another CA, the handshake fails with an error naming TASKER_TLS_CA_FILE",
    LIMIT,
    async () => {
      const password = `tls-${randomUUID()}`;
      const url = TLS_URL.replace("guest:guest@", `guest:${password}@`);
      const other = tlsFromEnv({
        TASKER_TLS_CA_FILE: OTHER_CA,
        TASKER_TLS_CERT_FILE: CLIENT_CERT,
        TASKER_TLS_KEY_FILE: CLIENT_KEY,
      });

      // The client throws it.
      const error = await rejection(
        Client.connect(url, { ...other, logger: new MemoryLogger() }),
        "a client trusting another CA",
      );
      assert.ok(error instanceof BrokerError, String(error));
      assert.match(error.message, /^the TLS handshake with rabbitmq at /);
      assert.ok(error.message.includes(redact(url)), error.message);
      assert.ok(error.message.includes("TASKER_TLS_CA_FILE"), error.message);
      assert.match(error.message, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO/);
      assert.ok(!error.message.includes(password), error.message);

      // The worker logs it, and tries again until stopped.
      const logger = new Warned();
      const worker = new Worker({ amqpUrl: url, service: "svc", ...other }, { logger })
        .namespace(bus.namespace)
        .handler(Echo);
      const warning = logger.next("lost the broker; reconnecting");
      const running = worker.run({ handleSignals: false });
      const fields = await warning;
      await worker.stop();
      await running;
      assert.match(
        String(fields["error"]),
        /^the TLS handshake with rabbitmq at .*TASKER_TLS_CA_FILE/,
      );
      assert.ok(!JSON.stringify(logger.records).includes(password));
    },
  );

  test(
    "with the CA but no client certificate, the broker refuses the handshake",
    LIMIT,
    async () => {
      const caOnly = { tlsCaFile: CA, tlsCertFile: undefined, tlsKeyFile: undefined };
      const error = await rejection(
        Client.connect(TLS_URL, { ...caOnly, logger: new MemoryLogger() }),
        "a client without a certificate",
      );
      assert.ok(error instanceof BrokerError, String(error));
      assert.match(error.message, /^the TLS handshake with rabbitmq at amqps:\/\/guest:\*\*\*@/);
      assert.match(error.message, /certificate required/);
      assert.ok(error.message.includes("TASKER_TLS_CERT_FILE"), error.message);
    },
  );

  test(
    "the TLS files apply to amqps:// URLs only, and must be readable and paired",
    LIMIT,
    async () => {
      const missing = "/nonexistent/tasker/ca.pem";
      const plain = await Client.connect(PLAIN_URL, {
        tlsCaFile: missing,
        logger: new MemoryLogger(),
      });
      clients.push(plain);

      await assert.rejects(
        Client.connect(TLS_URL, { tlsCaFile: missing, logger: new MemoryLogger() }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.match(e.message, /^TASKER_TLS_CA_FILE=\/nonexistent\/tasker\/ca.pem: cannot read/);
          return true;
        },
      );
      await assert.rejects(
        Client.connect(TLS_URL, {
          tlsCaFile: CA,
          tlsCertFile: CLIENT_CERT,
          tlsKeyFile: undefined,
          logger: new MemoryLogger(),
        }),
        /TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE/,
      );
      // A certificate with the key of another.
      await assert.rejects(
        Client.connect(TLS_URL, {
          tlsCaFile: CA,
          tlsCertFile: CLIENT_CERT,
          tlsKeyFile: `${DEV}tls/server.key`,
          logger: new MemoryLogger(),
        }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.ok(e.message.includes(`TASKER_TLS_KEY_FILE=${DEV}tls/server.key`), e.message);
          return true;
        },
      );
    },
  );
});

describe("passwords", () => {
  test("a URL without its password connects with TASKER_AMQP_PASSWORD_FILE", LIMIT, async () => {
    const security = probe();
    assert.ok(security.amqpPassword !== undefined && security.amqpPassword.length > 0);
    // Without it, the user has no password.
    const refused = await rejection(
      Broker.connect(PROBE_URL, "test-probe", 5, new MemoryLogger()),
      "a login without a password",
    );
    assert.ok(refused instanceof BrokerError && !refused.retryable, String(refused));

    const broker = await Broker.connect(PROBE_URL, "test-probe", 5, new MemoryLogger(), security);
    try {
      assert.equal(broker.url, "amqp://tasker-test-probe:***@127.0.0.1:5672/%2f");
    } finally {
      await broker.close();
    }
    const client = await Client.connect(PROBE_URL, { ...security, logger: new MemoryLogger() });
    await client.close();
  });

  test("a wrong password is refused, and no error or log line holds it", LIMIT, async () => {
    // Characters a URL must encode, a comma among them, which separates a cluster's nodes.
    const wrong = `wr0ng,%é@/:${randomUUID()}`;
    const error = await rejection(
      Client.connect(PROBE_URL, { amqpPassword: wrong, logger: new MemoryLogger() }),
      "a client with a wrong password",
    );
    assert.ok(error instanceof BrokerError, String(error));
    assert.ok(!error.retryable);
    assert.match(error.message, /refused the connection.*TASKER_AMQP_PASSWORD/);
    assert.ok(!error.message.includes(wrong), error.message);
    assert.ok(!error.message.includes(encodeURIComponent(wrong)), error.message);

    const logger = new MemoryLogger();
    const { amqpPassword } = configFromEnv({}, { TASKER_AMQP_PASSWORD: wrong });
    const worker = new Worker({ amqpUrl: PROBE_URL, service: "probe", amqpPassword }, { logger })
      .namespace(`lp_${randomUUID().slice(0, 8)}`)
      .handler(Echo);
    const stopped = await rejection(worker.run({ handleSignals: false }), "a worker");
    assert.ok(stopped instanceof BrokerError, String(stopped));
    assert.ok(!stopped.message.includes(wrong), stopped.message);
    const logged = JSON.stringify(logger.records);
    assert.ok(!logged.includes(wrong) && !logged.includes(encodeURIComponent(wrong)), logged);
  });

  test("a password and a password file both set is a configuration error", LIMIT, () => {
    const secret = `inline-${randomUUID()}`;
    assert.throws(
      () =>
        configFromEnv(
          {},
          { TASKER_AMQP_PASSWORD: secret, TASKER_AMQP_PASSWORD_FILE: PROBE_PASSWORD_FILE },
        ),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, /both TASKER_AMQP_PASSWORD and TASKER_AMQP_PASSWORD_FILE are set/);
        assert.ok(!e.message.includes(secret), e.message);
        return true;
      },
    );
  });
});

describe("least privilege", () => {
  let bus: Bus;

  beforeEach(async () => {
    // A namespace the least-privilege user may serve: lp_<random hex>.
    bus = await Bus.connect("lp", PLAIN_URL);
  });

  afterEach(async () => {
    await bus.close();
  });

  /**
   * Declares the namespace's shared objects as guest, as a coordinator does,
   * and routes the steps of `Echo` to the namespace's steps exchange.
   */
  async function declareAsCoordinator(): Promise<void> {
    const guest = await bus.broker();
    await guest.declareCommon();
    await guest.declareNamespace(bus.namespace);
    await bus.routeSteps([Echo.handlerName]);
  }

  test(
    "a worker as tasker-test-probe skips the shared declarations and runs a step",
    LIMIT,
    async () => {
      await declareAsCoordinator();
      const results = await bus.consume(topology.resultQueue(bus.namespace));
      const logger = new MemoryLogger();
      const worker = await bus.startWorker(
        [Echo],
        { amqpUrl: PROBE_URL, service: "probe", ...probe() },
        logger,
      );
      const queue = topology.serviceQueue(bus.namespace, "probe");
      assert.deepEqual(worker.queues, [queue]);
      assert.equal((await bus.queueState(queue))[1], 1);
      const skipped = logger.records.filter((r) => r.level === "debug").map((r) => r.message);
      const steps = topology.namespaceStepsExchange(bus.namespace);
      for (const name of [
        `exchange ${topology.EVENTS_EXCHANGE}`,
        `exchange ${topology.STEPS_EXCHANGE}`,
        `exchange ${steps}`,
        `the binding of exchange ${steps} to exchange ${topology.STEPS_EXCHANGE} with ` +
          topology.stepRoutingKey(bus.namespace, Echo.handlerName),
        `queue ${topology.DEAD_LETTER_QUEUE}`,
        `queue ${topology.resultQueue(bus.namespace)}`,
      ]) {
        assert.ok(
          skipped.includes(`not allowed to declare ${name}; the coordinators declare it`),
          `${name} in ${JSON.stringify(skipped)}`,
        );
      }

      await bus.publishStep(
        stepReady(bus.namespace, Echo.handlerName, { context: { least: "privilege" } }),
        Echo.handlerName,
      );
      const result = await results.nextJson(
        `the step result in ${topology.resultQueue(bus.namespace)}`,
      );
      assert.equal(result["status"], "completed", JSON.stringify(result));
      assert.deepEqual(result["result"], { echo: { least: "privilege" } });
      assert.deepEqual(
        logger.records.filter((r) => r.level === "error" || r.level === "warn"),
        [],
      );
    },
  );

  test("a worker as tasker-test-probe splits its service over several queues", LIMIT, async () => {
    await declareAsCoordinator();
    const worker = await bus.startWorker(
      [Echo],
      { amqpUrl: PROBE_URL, service: "probe", partitions: 2, ...probe() },
      new MemoryLogger(),
    );
    assert.equal(worker.queues.length, 2);
    const results = await bus.results();
    await bus.publishStep(stepReady(bus.namespace, Echo.handlerName), Echo.handlerName);
    const result = await results.nextJson("the step result");
    assert.equal(result["status"], "completed", JSON.stringify(result));
  });

  test(
    "its connection can neither consume another queue nor publish another's events",
    LIMIT,
    async () => {
      await declareAsCoordinator();
      const broker = await Broker.connect(PROBE_URL, "test-probe", 5, new MemoryLogger(), probe());
      try {
        const channel = await broker.channel();
        await assert.rejects(
          channel.consume(topology.resultQueue(bus.namespace), () => undefined),
          (e: unknown) => {
            assert.equal((e as { code?: unknown }).code, 403, String(e));
            return true;
          },
        );
        const body = Buffer.from("{}");
        // Its own namespace's results, the control: allowed.
        const allowed = await broker.publisher();
        await allowed.publish(
          topology.EVENTS_EXCHANGE,
          topology.stepResultRoutingKey(bus.namespace),
          body,
          properties(topology.MessageType.STEP_RESULT),
          false,
        );
        for (const routingKey of ["task.finished.x.y", "step.result.other_ns"]) {
          // The refusal closes the channel: one each.
          const publisher = await broker.publisher();
          await assert.rejects(
            publisher.publish(
              topology.EVENTS_EXCHANGE,
              routingKey,
              body,
              properties(topology.MessageType.STEP_RESULT),
              false,
            ),
            (e: unknown) => {
              assert.ok(e instanceof BrokerError, String(e));
              assert.match(e.message, /ACCESS.REFUSED/);
              assert.ok(e.message.includes(routingKey), e.message);
              return true;
            },
            routingKey,
          );
        }
      } finally {
        await broker.close();
      }
    },
  );

  test(
    "its user may bind only to its namespace's steps exchange, and gets no other namespace's steps",
    LIMIT,
    async () => {
      await declareAsCoordinator();
      // Another namespace, outside the user's (lp_…), routed as its coordinator would.
      const other = unique("other");
      const otherKey = topology.stepRoutingKey(other, Echo.handlerName);
      const otherSteps = await bus.routeSteps([Echo.handlerName], other);
      const otherWatch = await bus.watch(otherSteps, otherKey);
      const ownKey = topology.stepRoutingKey(bus.namespace, Echo.handlerName);
      const ownSteps = topology.namespaceStepsExchange(bus.namespace);

      const broker = await Broker.connect(PROBE_URL, "test-probe", 5, new MemoryLogger(), probe());
      try {
        const channel = await broker.channel();
        const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
        for (const [exchange, key] of [
          [topology.STEPS_EXCHANGE, ownKey],
          [topology.STEPS_EXCHANGE, otherKey],
          [otherSteps, otherKey],
        ] as const) {
          // The refusal closes the channel: one each.
          const refused = await broker.channel();
          await assert.rejects(
            refused.bindQueue(queue, exchange, key),
            (e: unknown) => {
              assert.equal((e as { code?: unknown }).code, 403, String(e));
              return true;
            },
            `the binding of its queue to ${exchange} with ${key}`,
          );
        }
        // Its namespace's exchange, the control: allowed, even with the other's key,
        // which brings nothing, since only its namespace's keys route steps there.
        await channel.bindQueue(queue, ownSteps, ownKey);
        await channel.bindQueue(queue, ownSteps, otherKey);
        const received = new Watch();
        await channel.consume(queue, (m) => m !== null && received.push(m), { noAck: true });

        const stranger = stepReady(other, Echo.handlerName);
        await bus.publish(topology.STEPS_EXCHANGE, otherKey, stranger);
        const routed = await otherWatch.nextJson("the other namespace's step, in its own queue");
        assert.equal(routed["task_id"], stranger["task_id"]);
        // Published after it on the same channel: the first step the probe's queue gets.
        const own = stepReady(bus.namespace, Echo.handlerName);
        await bus.publishStep(own, Echo.handlerName);
        const first = await received.nextJson("its namespace's step");
        assert.equal(first["task_id"], own["task_id"], JSON.stringify(first));
        assert.equal(await received.quietFor(500), undefined, "no other step reaches its queue");
      } finally {
        await broker.close();
      }
    },
  );

  test("a worker of a service the user may not run stops, naming its queue", LIMIT, async () => {
    await declareAsCoordinator();
    const queue = topology.serviceQueue(bus.namespace, "intruder");
    bus.remember(queue);
    const worker = new Worker(
      { amqpUrl: PROBE_URL, service: "intruder", ...probe() },
      { logger: new MemoryLogger() },
    )
      .namespace(bus.namespace)
      .handler(Echo);
    const error = await rejection(
      worker.run({ handleSignals: false }),
      "a worker of another service",
    );
    assert.ok(error instanceof BrokerError, String(error));
    assert.ok(!error.retryable);
    assert.ok(error.message.includes(queue), error.message);
    assert.match(error.message, /ACCESS.REFUSED/);
  });
});
