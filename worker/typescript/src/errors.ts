/**
 * How a step fails, and what else can go wrong in the SDK.
 *
 * A handler fails an attempt by throwing {@link PermanentError} (no retry can
 * fix it) or {@link RetryableError} (another attempt may succeed). Anything
 * else it throws is a bug in the handler: the worker reports it as a
 * permanent `handler_panic` and keeps running.
 */

/** The codes Tasker's processes fail a step with; every SDK spells them alike. */
export const ErrorCode = {
  TIMEOUT: "timeout",
  HANDLER_NOT_FOUND: "handler_not_found",
  HANDLER_PANIC: "handler_panic",
  INVALID_INPUT: "invalid_input",
  INVALID_RESULT: "invalid_result",
  NO_CHILD_TASK: "no_child_task",
  CHILD_NOT_STARTED: "child_not_started",
  CHILD_TASK_FAILED: "child_task_failed",
  CHILD_TASK_CANCELLED: "child_task_cancelled",
  CHILD_TASK_REJECTED: "child_task_rejected",
  INPUT_TOO_LARGE: "input_too_large",
  RESULT_TOO_LARGE: "result_too_large",
} as const;

/** Why a message went to the dead-letter queue: the start of its `x-tasker-dead-letter-reason` header. */
export const DeadLetterReason = {
  TOO_LARGE: "too_large",
  NOT_JSON: "not_json",
  WRONG_PROTOCOL_VERSION: "wrong_protocol_version",
  INVALID_MESSAGE: "invalid_message",
  REDELIVERY_LIMIT: "redelivery_limit",
} as const;

export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/**
 * Why an attempt failed: a short, stable `code` and a sentence for people.
 * Throw one of its two kinds, never this class itself.
 */
export abstract class StepError extends Error {
  abstract readonly retryable: boolean;
  readonly code: string;

  protected constructor(message: string, errorCode: string) {
    super(message);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- JavaScript callers can pass any value; the wire's error_code is a string
    this.code = String(errorCode);
  }

  /** Seconds to wait before the next attempt; only retryable errors carry it. */
  get retryAfter(): number | undefined {
    return undefined;
  }

  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/**
 * Trying again cannot help: bad input, or a business rule says no, as in
 * `throw new PermanentError("Invalid email format: x", { errorCode: "INVALID_EMAIL" })`.
 */
export class PermanentError extends StepError {
  readonly retryable = false;

  constructor(message: string, options: { errorCode: string }) {
    super(message, options.errorCode);
    this.name = "PermanentError";
  }
}

/**
 * Trying again may help: a timeout, a 503, a lock held elsewhere.
 *
 * `retryAfter` (seconds) asks the coordinator to wait that long (at most a
 * day) before the next attempt, instead of the step's backoff.
 */
export class RetryableError extends StepError {
  readonly retryable = true;
  readonly #retryAfter: number | undefined;

  constructor(message: string, options: { errorCode: string; retryAfter?: number | undefined }) {
    super(message, options.errorCode);
    this.name = "RetryableError";
    const retryAfter = options.retryAfter;
    if (retryAfter !== undefined && !(Number.isFinite(retryAfter) && retryAfter >= 0)) {
      throw new RangeError(`retryAfter is ${retryAfter}; give a number of seconds >= 0`);
    }
    this.#retryAfter = retryAfter;
  }

  override get retryAfter(): number | undefined {
    return this.#retryAfter;
  }
}

/** Something went wrong in the SDK itself, not in a step. */
export class TaskerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TaskerError";
  }
}

/** A configuration value cannot work; the message says how to fix it. */
export class ConfigError extends TaskerError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * RabbitMQ could not be used: the connection, a channel or a publish
 * failed. `retryable` says whether reconnecting may help.
 */
export class BrokerError extends TaskerError {
  readonly retryable: boolean;

  constructor(message: string, options: { retryable?: boolean } = {}) {
    super(message);
    this.name = "BrokerError";
    this.retryable = options.retryable ?? true;
  }
}
