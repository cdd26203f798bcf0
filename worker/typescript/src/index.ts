/** Tasker's worker SDK: step handlers in TypeScript, and the worker that runs them. */

export { Identity, LANGUAGE, type ServedNamespace } from "./announce.js";
export { brokerUrls, consoleLogger, type Logger, redact } from "./broker.js";
export {
  checkConfig,
  configFromEnv,
  nameProblem,
  workerConfig,
  type WorkerConfig,
} from "./config.js";
export { StepContext, type Kind, type KindType, type StartChild } from "./context.js";
export {
  BrokerError,
  ConfigError,
  DeadLetterReason,
  ErrorCode,
  PermanentError,
  RetryableError,
  StepError,
  TaskerError,
} from "./errors.js";
export { StepHandler, type StepHandlerClass } from "./handler.js";
export {
  DecodeError,
  decodeStepReady,
  type JsonObject,
  type JsonValue,
  type Outcome,
  type StepFailure,
  type StepReady,
  TASK_ID_NAMESPACE,
  taskIdOf,
  uuid5,
  WaitingForChild,
} from "./messages.js";
export {
  Client,
  type ClientOptions,
  type Reply,
  ReplyTimeoutError,
  type StepReport,
  type StepReportError,
  Submitted,
  TaskFinished,
  type TaskOptions,
  TaskRejected,
} from "./client.js";
export { Health, parseAddress, RABBITMQ } from "./health.js";
export {
  BUCKETS,
  CONTENT_TYPE as METRICS_CONTENT_TYPE,
  Counter,
  type DeadLetterLabels,
  Histogram,
  Metrics,
  METRICS,
  type StepLabels,
} from "./metrics.js";
export {
  extract,
  flushSpans,
  initTelemetry,
  inject,
  spanExporter,
  SUPPORTED_PROTOCOLS,
  Telemetry,
  TRACER_NAME,
  tracer,
} from "./telemetry.js";
export { checkSecurity, type ConnectionSecurity, securityFromEnv, TLS_HINT } from "./security.js";
export * as topology from "./topology.js";
export { SDK_VERSION } from "./version.js";
export { RecentResults, Worker, type RunOptions } from "./worker.js";
