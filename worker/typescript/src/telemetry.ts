/**
 * Traces, as the Python and Rust SDKs make them: a task is one trace across
 * the coordinator and every worker, whatever their language.
 *
 * - {@link initTelemetry} sets up span export over OTLP when
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, configured by the standard
 *   variables: `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default
 *   and the only one this SDK speaks), `OTEL_SERVICE_NAME`,
 *   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and the batch
 *   processor's `OTEL_BSP_*`. With no endpoint nothing is exported, and
 *   spans cost next to nothing.
 * - {@link extract} and {@link inject} read and write the W3C `traceparent`
 *   and `tracestate` in AMQP headers.
 *
 * The worker makes one consumer span per delivery, `process <step>`, a
 * child of the context its step-ready message carries; the step's result
 * carries that span's context on. Without an exporter the span records
 * nothing and carries the incoming context itself, so the trace still
 * continues past this process.
 */

import {
  context as otelContext,
  type Context,
  ROOT_CONTEXT,
  type TextMapGetter,
  type TextMapSetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

import { ConfigError } from "./errors.js";

/** The name of the tracer of Tasker's spans. */
export const TRACER_NAME = "tasker";

/** The OTLP protocols this SDK can export with. */
export const SUPPORTED_PROTOCOLS = ["http/protobuf"] as const;

const PROPAGATOR = new W3CTraceContextPropagator();

/** The provider {@link initTelemetry} installed, if it exports; flushed when a worker stops. */
let installed: BasicTracerProvider | undefined;

/**
 * Keeps span export going for the life of `main`: call {@link shutdown}
 * before the process exits, which exports the spans still buffered.
 */
export class Telemetry {
  #provider: BasicTracerProvider | undefined;

  constructor(provider: BasicTracerProvider | undefined) {
    this.#provider = provider;
  }

  /** Whether spans are exported. */
  get exporting(): boolean {
    return this.#provider !== undefined;
  }

  /** Exports the buffered spans without stopping. */
  async flush(): Promise<void> {
    await this.#provider?.forceFlush();
  }

  /** Exports the buffered spans and stops the exporter; later calls do nothing. */
  async shutdown(): Promise<void> {
    const provider = this.#provider;
    this.#provider = undefined;
    if (provider === undefined) return;
    if (installed === provider) installed = undefined;
    await provider.shutdown();
  }
}

/**
 * Installs span export when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. `serviceName` names the
 * process's spans unless `OTEL_SERVICE_NAME` does. Call once, at the start
 * of `main`, and `await telemetry.shutdown()` at its end.
 *
 * @throws ConfigError for an `OTEL_EXPORTER_OTLP_PROTOCOL` it cannot use.
 */
export function initTelemetry(
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
): Telemetry {
  if (!env["OTEL_EXPORTER_OTLP_ENDPOINT"] && !env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
    return new Telemetry(undefined);
  }
  const exporter = spanExporter(env);
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the program's name.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // The handler runs inside its delivery's span: the spans it starts are children of it.
  otelContext.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  installed = provider;
  return new Telemetry(provider);
}

/**
 * The exporter that `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
 * `OTEL_EXPORTER_OTLP_PROTOCOL` asks for (`http/protobuf` by default); it
 * reads its endpoint, headers and timeout from the environment itself.
 *
 * @throws ConfigError for another protocol.
 */
export function spanExporter(env: NodeJS.ProcessEnv = process.env): SpanExporter {
  const variable = env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
    ? "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    : "OTEL_EXPORTER_OTLP_PROTOCOL";
  const protocol = (env[variable] ?? "").trim() || "http/protobuf";
  if (protocol !== "http/protobuf") {
    throw new ConfigError(
      `${variable}=${JSON.stringify(protocol)} is not supported by the TypeScript worker; use http/protobuf ` +
        "(the OTLP receiver's HTTP port, usually 4318)",
    );
  }
  return new OTLPTraceExporter();
}

/** Exports the spans buffered so far, if {@link initTelemetry} installed an exporter; never throws. */
export async function flushSpans(): Promise<void> {
  try {
    await installed?.forceFlush();
  } catch {
    // the exporter reports its own failures; a flush must not fail a shutdown
  }
}

/** The tracer of Tasker's spans: a no-op one until {@link initTelemetry} installs export. */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

const headerGetter: TextMapGetter<Readonly<Record<string, unknown>>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    if (typeof value === "string") return value;
    if (Buffer.isBuffer(value)) return value.toString("utf8");
    return undefined;
  },
};

const headerSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/**
 * The trace context that AMQP `headers` carry (`traceparent`,
 * `tracestate`); an empty context when they carry none.
 */
export function extract(headers: Readonly<Record<string, unknown>> | undefined): Context {
  return PROPAGATOR.extract(ROOT_CONTEXT, headers ?? {}, headerGetter);
}

/**
 * `traceparent` and `tracestate` for `context` (the current one by
 * default), to put in a message's headers; none when it has no valid span.
 */
export function inject(context: Context = otelContext.active()): Record<string, string> {
  const headers: Record<string, string> = {};
  PROPAGATOR.inject(context, headers, headerSetter);
  return headers;
}
