/**
 * A TypeScript step joins the task's trace: the worker continues the
 * step-ready message's `traceparent` as the parent of a consumer span
 * `process <step>`, exported over OTLP (http/protobuf) to a real receiver
 * (rotel, as the Rust and Python tracing tests run it), and passes its own
 * context on in the step result's headers. Without an exporter, the
 * incoming context passes through unchanged.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";

import { trace } from "@opentelemetry/api";
import type * as amqp from "amqplib";

import {
  ConfigError,
  extract,
  initTelemetry,
  inject,
  spanExporter,
  topology,
  tracer,
} from "../src/index.js";
import { AMQP_URL, Bus, stepReady } from "./helpers.js";

/** One span as rotel prints it with `--debug-log-verbosity detailed`. */
interface Span {
  service: string;
  trace: string;
  parent: string;
  id: string;
  name: string;
  kind: string;
  status: string;
  attributes: Record<string, string>;
}

function parse(log: string): Span[] {
  const spans: Span[] = [];
  let service = "";
  let current: Span | undefined;
  let inAttributes = false;
  for (const line of log.split("\n")) {
    const text = line.trim();
    const colon = text.indexOf(":");
    const value = colon < 0 ? "" : text.slice(colon + 1).trim();
    if (text.startsWith("-> service.name:")) {
      service = value.replace(/^Str\((.*)\)$/, "$1");
    } else if (text.startsWith("Span #")) {
      current = {
        service,
        trace: "",
        parent: "",
        id: "",
        name: "",
        kind: "",
        status: "",
        attributes: {},
      };
      spans.push(current);
      inAttributes = false;
    } else if (current === undefined) {
      continue;
    } else if (text.startsWith("Trace ID")) {
      current.trace = value;
    } else if (text.startsWith("Parent ID")) {
      current.parent = value;
    } else if (text.startsWith("ID ")) {
      current.id = value;
    } else if (text.startsWith("Name ")) {
      current.name = value;
    } else if (text.startsWith("Kind ")) {
      current.kind = value;
    } else if (text.startsWith("Status code")) {
      current.status = value;
    } else if (text.startsWith("Attributes:")) {
      inAttributes = true;
    } else if (
      text.startsWith("Events:") ||
      text.startsWith("Links:") ||
      text.startsWith("ResourceSpans")
    ) {
      inAttributes = false;
    } else if (inAttributes && text.startsWith("-> ")) {
      const at = text.indexOf(": ");
      if (at > 0)
        current.attributes[text.slice(3, at)] = text.slice(at + 2).replace(/^\w+\((.*)\)$/, "$1");
    }
  }
  return spans;
}

/** rotel's agent: `TASKER_ROTEL_AGENT` (deploy/dev test installs it and names it), else the install under .dev/. */
function rotelAgent(): string {
  // From dist/test, the repository is four levels up.
  const agent =
    process.env["TASKER_ROTEL_AGENT"] ??
    new URL("../../../../.dev/rotel/rotel/rotel-agent", import.meta.url).pathname;
  if (!existsSync(agent)) {
    assert.fail(
      `no rotel-agent at ${agent}: run deploy/dev test, which installs it, or set TASKER_ROTEL_AGENT`,
    );
  }
  return agent;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function header(message: amqp.ConsumeMessage, name: string): string | undefined {
  const value: unknown = message.properties.headers?.[name];
  return Buffer.isBuffer(value)
    ? value.toString("utf8")
    : typeof value === "string"
      ? value
      : undefined;
}

async function eventually<T>(
  probe: () => T,
  ok: (value: T) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = probe();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = probe();
  }
  return last;
}

describe("tracing", () => {
  let bus: Bus;
  let dir: string;

  beforeEach(async () => {
    bus = await Bus.connect();
    dir = mkdtempSync(join(tmpdir(), "tasker-ts-tracing-"));
  });

  afterEach(async () => {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a step continues its message's trace, and its span reaches an OTLP receiver", async () => {
    const http = await freePort();
    const log = join(dir, "rotel.log");
    const out = openSync(log, "w");
    const err = openSync(join(dir, "rotel.stderr"), "w");
    const receiver = spawn(
      rotelAgent(),
      [
        "start",
        "--exporter",
        "blackhole",
        "--debug-log",
        "traces",
        "--debug-log-verbosity",
        "detailed",
        "--otlp-grpc-endpoint",
        `127.0.0.1:${await freePort()}`,
        "--otlp-http-endpoint",
        `127.0.0.1:${http}`,
      ],
      { stdio: ["ignore", out, err] },
    );
    closeSync(out);
    closeSync(err);
    const queue = topology.serviceQueue(bus.namespace, "svc");
    bus.remember(queue);
    const worker = spawn(
      process.execPath,
      [new URL("./worker_process.js", import.meta.url).pathname],
      {
        env: {
          ...process.env,
          TEST_NAMESPACE: bus.namespace,
          TASKER_AMQP_URL: AMQP_URL,
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${http}`,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
          OTEL_SERVICE_NAME: "typescript-worker",
          OTEL_BSP_SCHEDULE_DELAY: "200",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let workerErr = "";
    worker.stderr.on("data", (chunk: Buffer) => (workerErr += chunk.toString("utf8")));
    try {
      let workerOut = "";
      await new Promise<void>((resolve, reject) => {
        worker.stdout.on("data", (chunk: Buffer) => {
          workerOut += chunk.toString("utf8");
          if (workerOut.includes("ready")) resolve();
        });
        worker.once("exit", () =>
          reject(new Error(`the worker exited before it was ready: ${workerErr}`)),
        );
      });
      const results = await bus.results();

      // One step that completes, one that fails for good (a mistyped input).
      const traceId = randomBytes(16).toString("hex");
      const publishSpan = randomBytes(8).toString("hex");
      const ready = stepReady(bus.namespace, "Tests::Slow", {
        step: "send_welcome_sequence",
        context: { seconds: 0 },
      });
      await bus.publishStep(ready, "Tests::Slow", {
        traceparent: `00-${traceId}-${publishSpan}-01`,
        tracestate: "k=v",
      });
      const result = await results.next("the step's result");
      const [, resultTrace, processSpan] = (header(result, "traceparent") ?? "").split("-");
      assert.equal(resultTrace, traceId, "the result carries the task's trace on");
      assert.notEqual(processSpan, publishSpan, "the result names the worker's span as its parent");
      assert.equal(header(result, "tracestate"), "k=v");

      const failingTrace = randomBytes(16).toString("hex");
      const failing = stepReady(bus.namespace, "Tests::Slow", {
        step: "bad_input",
        context: { seconds: "soon" },
      });
      await bus.publishStep(failing, "Tests::Slow", {
        traceparent: `00-${failingTrace}-${publishSpan}-01`,
      });
      const failed = JSON.parse(
        (await results.next("the failing step's result")).content.toString("utf8"),
      ) as {
        status: string;
      };
      assert.equal(failed.status, "failed");

      // A graceful stop flushes the spans.
      worker.kill("SIGTERM");
      assert.equal(await exited(worker), 0, workerErr);

      const spans = await eventually(
        () =>
          parse(readFileSync(log, "utf8")).filter(
            (s) => s.trace === traceId || s.trace === failingTrace,
          ),
        (found) => found.length >= 2,
        "rotel receiving both steps' spans",
      );
      const span = spans.find((s) => s.trace === traceId);
      assert.ok(span !== undefined);
      assert.equal(spans.filter((s) => s.trace === traceId).length, 1, JSON.stringify(spans));
      assert.equal(span.name, "process send_welcome_sequence");
      assert.equal(span.kind, "SPAN_KIND_CONSUMER");
      assert.equal(span.parent, publishSpan, "a child of the span that published the step");
      assert.equal(span.id, processSpan, "the result's traceparent names this span");
      assert.equal(span.service, "typescript-worker");
      assert.notEqual(span.status, "STATUS_CODE_ERROR");
      const a = span.attributes;
      assert.equal(a["tasker.task.id"], ready["task_id"]);
      assert.equal(a["tasker.namespace"], bus.namespace);
      assert.equal(a["tasker.task.name"], "task");
      assert.equal(a["tasker.task.version"], "1.0.0");
      assert.equal(a["tasker.step.name"], "send_welcome_sequence");
      assert.equal(a["tasker.step.attempt"], "1");
      assert.equal(a["tasker.step.outcome"], "completed");
      assert.equal(a["messaging.system"], "rabbitmq");
      assert.equal(a["messaging.operation.type"], "process");
      assert.equal(a["messaging.destination.name"], queue);
      assert.equal(
        a["messaging.rabbitmq.destination.routing_key"],
        topology.stepRoutingKey(bus.namespace, "Tests::Slow"),
      );
      assert.ok((a["messaging.message.id"] ?? "").length > 0, JSON.stringify(a));

      const bad = spans.find((s) => s.trace === failingTrace);
      assert.ok(bad !== undefined);
      assert.equal(bad.name, "process bad_input");
      assert.equal(bad.status, "STATUS_CODE_ERROR");
      assert.equal(bad.attributes["tasker.step.outcome"], "failed_permanent");
    } finally {
      if (worker.exitCode === null) worker.kill("SIGKILL");
      receiver.kill("SIGTERM");
      await exited(receiver);
    }
  });

  test("without an exporter, the incoming trace context passes through unchanged", () => {
    assert.equal(initTelemetry("nothing", {}).exporting, false);
    const headers = {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "k=v,a=b",
    };
    const parent = extract(headers);
    const span = tracer().startSpan("process step", {}, parent);
    assert.deepEqual(inject(trace.setSpan(parent, span)), headers);
    span.end();
    assert.deepEqual(inject(extract({})), {}, "no context, no headers");
  });

  test("spans export over http/protobuf only, and another protocol is refused clearly", () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
    void spanExporter(env).shutdown();
    void spanExporter({ ...env, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }).shutdown();
    assert.throws(
      () => initTelemetry("svc", { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported.*use http\/protobuf/.test(e.message),
    );
  });
});
