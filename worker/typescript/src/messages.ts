/**
 * The JSON bodies of Tasker's messages (docs/protocol.md, "Messages"):
 * decoding a step-ready message with the same checks and dead-letter
 * reasons as the Python and Rust SDKs, and encoding a step result.
 *
 * Decoding is strict where a wrong shape would mislead a handler (a missing
 * field, a mistyped one) and lenient where the protocol says so: unknown
 * fields are ignored, and `null` reads as "no value" for optional fields.
 */

import { createHash } from "node:crypto";

import { DeadLetterReason, type StepError } from "./errors.js";
import { PROTOCOL_VERSION } from "./topology.js";

/** Any JSON value. */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = Record<string, JsonValue>;

/**
 * Why a message cannot be used: its dead-letter `reason` and a detail for
 * people. The header it gets is `<reason>: <detail>`.
 */
export class DecodeError extends Error {
  readonly reason: DeadLetterReason;
  readonly detail: string;

  constructor(reason: DeadLetterReason, detail: string) {
    super(detail);
    this.name = "DecodeError";
    this.reason = reason;
    this.detail = detail;
  }

  /** The `x-tasker-dead-letter-reason` header of the message. */
  get header(): string {
    return `${this.reason}: ${this.detail}`;
  }
}

/** An RFC 3339 timestamp in UTC with milliseconds, as Tasker writes them: `2025-03-14T09:26:54.318Z`. */
export function timestamp(moment: Date): string {
  return moment.toISOString();
}

/**
 * A message as compact UTF-8 JSON.
 *
 * @throws TypeError for values JSON cannot carry: NaN, infinities, bigints,
 *   functions, symbols, `undefined` at the top, or cycles.
 */
export function encode(message: unknown): Buffer {
  const text = JSON.stringify(message, (_key, value: unknown) => {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError(`${value} is not a JSON value`);
    }
    if (typeof value === "function" || typeof value === "symbol") {
      throw new TypeError(`a ${typeof value} is not a JSON value`);
    }
    return value;
  }) as string | undefined;
  if (text === undefined) {
    throw new TypeError("undefined is not a JSON value");
  }
  return Buffer.from(text, "utf8");
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A message's JSON object, once its size, its syntax and its protocol
 * version are checked.
 *
 * @throws DecodeError `too_large`, `not_json`, `wrong_protocol_version` or `invalid_message`.
 */
export function decodeObject(body: Uint8Array, maxBytes: number): Record<string, unknown> {
  if (body.length > maxBytes) {
    throw new DecodeError(
      DeadLetterReason.TOO_LARGE,
      `payload of ${body.length} bytes is over the limit of ${maxBytes} bytes`,
    );
  }
  let message: unknown;
  try {
    message = JSON.parse(utf8.decode(body));
  } catch (e) {
    throw new DecodeError(DeadLetterReason.NOT_JSON, `payload is not JSON: ${errorText(e)}`);
  }
  if (!isObject(message)) {
    throw invalid(`it is ${describe(message)}, not a JSON object`);
  }
  const version = message["protocol_version"];
  if (version !== undefined && version !== null && version !== PROTOCOL_VERSION) {
    const found =
      typeof version === "number" && Number.isInteger(version) && version >= 0
        ? String(version)
        : "not a number";
    throw new DecodeError(
      DeadLetterReason.WRONG_PROTOCOL_VERSION,
      `protocol_version is ${found}, this process speaks only ${PROTOCOL_VERSION}; ` +
        `resend the message as version ${PROTOCOL_VERSION} or upgrade the consumer`,
    );
  }
  if (version === undefined || version === null) {
    throw invalid("missing field protocol_version");
  }
  return message;
}

/** The coordinator asks a worker to run one attempt of one step. */
export interface StepReady {
  readonly taskId: string;
  readonly namespace: string;
  readonly taskName: string;
  readonly taskVersion: string;
  readonly step: string;
  readonly callable: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Seconds the handler may run; `undefined` when the step has no timeout. */
  readonly timeoutSeconds: number | undefined;
  /** The task's context; a JSON object in every message Tasker sends. */
  readonly context: JsonValue;
  readonly initialization: JsonObject;
  readonly dependencies: readonly string[];
  readonly dependencyResults: JsonObject;
}

/** `<task_id>:<step>`: the same for every attempt and delivery of a step. */
export function idempotencyKey(ready: StepReady): string {
  return `${ready.taskId}:${ready.step}`;
}

const UUID =
  /^(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

/** `text` as a lowercase hyphenated UUID, if it is a UUID in a form the Python and Rust SDKs accept. */
export function parseUuid(text: string): string | undefined {
  const match = UUID.exec(text.trim());
  if (match === null) return undefined;
  const braced = text.includes("{");
  if (braced !== text.includes("}")) return undefined;
  return match.slice(1, 6).join("-").toLowerCase();
}

/**
 * A step-ready message, checked as the Python and Rust workers check it.
 *
 * @throws DecodeError when it cannot be used.
 */
export function decodeStepReady(body: Uint8Array, maxBytes: number): StepReady {
  const m = decodeObject(body, maxBytes);
  const text = stringField(m, "task_id", "a UUID string");
  const taskId = parseUuid(text);
  if (taskId === undefined) {
    throw invalid(`field task_id is ${JSON.stringify(text)}, not a UUID`);
  }
  const timeout = m["timeout_seconds"];
  if (
    timeout !== undefined &&
    timeout !== null &&
    !(typeof timeout === "number" && Number.isFinite(timeout) && timeout >= 0)
  ) {
    throw invalid(`field timeout_seconds is ${describe(timeout)}, not a number of seconds`);
  }
  if (!("context" in m)) {
    throw invalid("missing field context");
  }
  const dependencies = m["dependencies"] ?? [];
  if (!Array.isArray(dependencies) || !dependencies.every((d) => typeof d === "string")) {
    throw invalid("field dependencies must be an array of step names");
  }
  return {
    taskId,
    namespace: stringField(m, "namespace", "a string"),
    taskName: stringField(m, "task_name", "a string"),
    taskVersion: stringField(m, "task_version", "a string"),
    step: stringField(m, "step", "a string"),
    callable: stringField(m, "callable", "a string"),
    attempt: countField(m, "attempt"),
    maxAttempts: countField(m, "max_attempts"),
    timeoutSeconds: typeof timeout === "number" ? timeout : undefined,
    context: m["context"] as JsonValue,
    initialization: objectField(m, "initialization"),
    dependencies: dependencies,
    dependencyResults: objectField(m, "dependency_results"),
  };
}

/** How an attempt ended: the `status` and what goes with it. */
export type Outcome =
  | { status: "completed"; result: unknown }
  | { status: "failed"; error: StepFailure }
  | { status: "waiting_for_child"; child_task_id: string };

/** The `error` object of a failed step result. */
export interface StepFailure {
  retryable: boolean;
  code: string;
  message: string;
  retry_after_seconds?: number;
}

/** The outcome of an attempt that returned `result`. */
export function completed(result: unknown): Outcome {
  return { status: "completed", result };
}

/** The outcome of an attempt that started a child task: the step's outcome will be the child's. */
export function waitingForChild(childTaskId: string): Outcome {
  return { status: "waiting_for_child", child_task_id: childTaskId };
}

/**
 * What {@link StepContext.completeWithChild} gives, for the handler to
 * return: the step's outcome will be its child task's.
 */
export class WaitingForChild {
  readonly childTaskId: string;

  constructor(childTaskId: string) {
    this.childTaskId = childTaskId;
  }
}

/**
 * The namespace UUID of task ids derived from an idempotency key
 * (docs/protocol.md, "The task id").
 */
export const TASK_ID_NAMESPACE = "6b1f0c52-3e0a-4c8e-9d43-7a521f0eb7c1";

/** The UUID version 5 (SHA-1) of `name` (UTF-8) under the UUID `namespace`, lowercase and hyphenated. */
export function uuid5(namespace: string, name: string): string {
  const space = parseUuid(namespace);
  if (space === undefined) {
    throw new TypeError(`${JSON.stringify(namespace)} is not a UUID`);
  }
  const hash = createHash("sha1")
    .update(Buffer.from(space.replaceAll("-", ""), "hex"))
    .update(name, "utf8")
    .digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A task request; optional fields are left out when they have no value. */
export function taskRequest(
  namespace: string,
  name: string,
  context: JsonObject,
  options: { requestId: string; version?: string | undefined; idempotencyKey?: string | undefined },
): JsonObject {
  const request: JsonObject = {
    protocol_version: PROTOCOL_VERSION,
    request_id: options.requestId,
    namespace,
    name,
    context: { ...context },
  };
  if (options.version !== undefined) {
    request["version"] = options.version;
  }
  if (options.idempotencyKey !== undefined) {
    request["idempotency_key"] = options.idempotencyKey;
  }
  return request;
}

/**
 * The id of the task a request asks for, known before any coordinator sees
 * it: derived from the idempotency key when there is one, else the request
 * id (docs/protocol.md, "The task id").
 */
export function taskIdOf(request: Readonly<JsonObject>): string {
  const key = request["idempotency_key"];
  if (key !== undefined && key !== null) {
    return uuid5(
      TASK_ID_NAMESPACE,
      `${requestText(request, "namespace")}/${requestText(request, "name")}/${requestText(request, "idempotency_key")}`,
    );
  }
  return requestText(request, "request_id");
}

/**
 * A field of a task request that the protocol makes a string (`namespace`,
 * `name`, `request_id`, `idempotency_key`).
 *
 * @throws TypeError when it is missing or not a string.
 */
export function requestText(request: Readonly<JsonObject>, name: string): string {
  const value = request[name];
  if (typeof value !== "string") {
    const found = value === undefined ? "missing" : JSON.stringify(value);
    throw new TypeError(`the task request's ${name} is ${found}, not a string`);
  }
  return value;
}

/** The outcome of an attempt that failed with `error`. */
export function failed(error: StepError): Outcome {
  const failure: StepFailure = {
    retryable: error.retryable,
    code: error.code,
    message: error.message,
  };
  const retryAfter = error.retryAfter;
  if (error.retryable && retryAfter !== undefined) {
    failure.retry_after_seconds = retryAfter;
  }
  return { status: "failed", error: failure };
}

/**
 * The step result of an attempt: it echoes the task, the template, the step
 * and the attempt, as the protocol requires.
 */
export function stepResult(
  ready: StepReady,
  startedAt: Date,
  finishedAt: Date,
  outcome: Outcome,
): Record<string, unknown> {
  return {
    protocol_version: PROTOCOL_VERSION,
    task_id: ready.taskId,
    namespace: ready.namespace,
    task_name: ready.taskName,
    task_version: ready.taskVersion,
    step: ready.step,
    attempt: ready.attempt,
    started_at: timestamp(startedAt),
    finished_at: timestamp(finishedAt),
    ...outcome,
  };
}

/** What kind of JSON value `value` is, for messages: `a string`. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return "a boolean";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a number";
  if (typeof value === "string") return "a string";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(detail: string): DecodeError {
  return new DecodeError(
    DeadLetterReason.INVALID_MESSAGE,
    `payload does not match the message schema: ${detail}`,
  );
}

function present(m: Record<string, unknown>, name: string): unknown {
  const value = m[name];
  if (value === undefined || value === null) {
    throw invalid(`missing field ${name}`);
  }
  return value;
}

function stringField(m: Record<string, unknown>, name: string, what: string): string {
  const value = present(m, name);
  if (typeof value !== "string") {
    throw invalid(`field ${name} is ${describe(value)}, expected ${what}`);
  }
  return value;
}

function objectField(m: Record<string, unknown>, name: string): JsonObject {
  const value = present(m, name);
  if (!isObject(value)) {
    throw invalid(`field ${name} is ${describe(value)}, expected an object`);
  }
  return value as JsonObject;
}

function countField(m: Record<string, unknown>, name: string): number {
  const value = present(m, name);
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(`field ${name} is ${describe(value)}, expected a non-negative integer`);
  }
  if (value < 0 || value > 0xffff_ffff) {
    throw invalid(`field ${name} is ${value}, expected a non-negative integer`);
  }
  return value;
}

/** The message of an error, or the text of anything else thrown. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
