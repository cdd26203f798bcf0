/**
 * What a handler can read about the attempt it runs: the task's input, the
 * results of its ancestors, its template's `initialization`, and who it is.
 *
 * Every reader throws a permanent `invalid_input` {@link PermanentError}
 * when what it asks for is missing or has the wrong shape: a bad input is a
 * bug in the request or the template, which no retry fixes, and the message
 * says where to look.
 */

import { randomUUID } from "node:crypto";

import { BrokerError, ErrorCode, PermanentError, RetryableError } from "./errors.js";
import {
  describe,
  errorText,
  idempotencyKey,
  isObject,
  type JsonObject,
  type JsonValue,
  type StepReady,
  taskIdOf,
  taskRequest,
  WaitingForChild,
} from "./messages.js";

/**
 * Publishes a child task request (the request, its task id) and resolves
 * once the broker confirmed it; rejects with a {@link BrokerError} if it did not.
 */
export type StartChild = (request: JsonObject, childTaskId: string) => Promise<void>;

/** The kinds a reader can check a value against. */
export type Kind = "string" | "number" | "integer" | "boolean" | "object" | "array";

/** The TypeScript type of a value of kind `K`. */
export type KindType<K extends Kind> = K extends "string"
  ? string
  : K extends "number" | "integer"
    ? number
    : K extends "boolean"
      ? boolean
      : K extends "object"
        ? JsonObject
        : K extends "array"
          ? JsonValue[]
          : never;

const KIND_NAMES: Record<Kind, string> = {
  string: "a string",
  number: "a number",
  integer: "an integer",
  boolean: "a boolean",
  object: "an object",
  array: "an array",
};

/**
 * One attempt of one step, built from its step-ready message.
 *
 * Give a reader a `kind` to check the value's type; without one, the value
 * is returned as decoded from JSON.
 */
export class StepContext {
  readonly #ready: StepReady;
  readonly #inputs: JsonObject;
  readonly #signal: AbortSignal;
  readonly #startChild: StartChild | undefined;

  /**
   * `startChild` publishes the requests of {@link completeWithChild}; a
   * worker gives one.
   *
   * @throws PermanentError `invalid_input` if the task's context is not a JSON object.
   */
  constructor(
    ready: StepReady,
    signal: AbortSignal = new AbortController().signal,
    startChild?: StartChild,
  ) {
    if (!isObject(ready.context)) {
      throw new PermanentError(
        `the task context is not a JSON object: it is ${describe(ready.context)}`,
        {
          errorCode: ErrorCode.INVALID_INPUT,
        },
      );
    }
    this.#ready = ready;
    this.#inputs = ready.context;
    this.#signal = signal;
    this.#startChild = startChild;
  }

  /**
   * Starts a task of template `namespace/name` (of any namespace), with
   * `context` as its input, and makes its outcome this step's: return what
   * this gives from `call`:
   *
   * ```ts
   * return await context.completeWithChild("payments", "process_refund", refund);
   * ```
   *
   * The request is confirmed before this resolves, and the step holds no
   * worker slot while the child runs. When the child completes, the step
   * completes with an object of the child's `task_id`, `namespace`, `name`,
   * `version` and `results`; when it fails, is cancelled or is refused, the
   * step fails permanently with `child_task_failed`, `child_task_cancelled`
   * or `child_task_rejected`. Every attempt and delivery of this step asks
   * for the same child (its idempotency key is `child-of:<task_id>:<step>`),
   * so none starts a second one.
   *
   * @throws PermanentError `invalid_input` if `context` is not a JSON
   *   object; `child_not_started` outside a worker.
   * @throws RetryableError `child_not_started` if the request could not be published.
   */
  async completeWithChild(
    namespace: string,
    name: string,
    context: Readonly<JsonObject>,
    options: { version?: string | undefined } = {},
  ): Promise<WaitingForChild> {
    if (!isObject(context)) {
      throw new PermanentError(
        `the context of child task ${namespace}/${name} must be a JSON object, not ${describe(context)}`,
        { errorCode: ErrorCode.INVALID_INPUT },
      );
    }
    const ready = this.#ready;
    const request = taskRequest(namespace, name, context, {
      requestId: randomUUID(),
      version: options.version,
      idempotencyKey: `child-of:${ready.taskId}:${ready.step}`,
    });
    request["parent"] = {
      task_id: ready.taskId,
      namespace: ready.namespace,
      name: ready.taskName,
      version: ready.taskVersion,
      step: ready.step,
      attempt: ready.attempt,
    };
    const childTaskId = taskIdOf(request);
    if (this.#startChild === undefined) {
      throw new PermanentError(
        "this context has no broker to start a child task with; child tasks start only in a Worker",
        { errorCode: ErrorCode.CHILD_NOT_STARTED },
      );
    }
    try {
      await this.#startChild(request, childTaskId);
    } catch (e) {
      if (e instanceof BrokerError) {
        throw new RetryableError(
          `the request for child task ${namespace}/${name} was not published: ${errorText(e)}`,
          {
            errorCode: ErrorCode.CHILD_NOT_STARTED,
          },
        );
      }
      throw e;
    }
    return new WaitingForChild(childTaskId);
  }

  /** The step-ready message this attempt came from. */
  get message(): StepReady {
    return this.#ready;
  }

  /** The task's id. */
  get taskId(): string {
    return this.#ready.taskId;
  }

  /** The template's namespace. */
  get namespace(): string {
    return this.#ready.namespace;
  }

  /** The template's name. */
  get taskName(): string {
    return this.#ready.taskName;
  }

  /** The template's version. */
  get taskVersion(): string {
    return this.#ready.taskVersion;
  }

  /** This step's name. */
  get stepName(): string {
    return this.#ready.step;
  }

  /** This attempt, counting from 1. */
  get attempt(): number {
    return this.#ready.attempt;
  }

  /** The step's `max_attempts`: the last attempt is `attempt === maxAttempts`. */
  get maxAttempts(): number {
    return this.#ready.maxAttempts;
  }

  /**
   * `<task_id>:<step>`, the same for every attempt and delivery of this step
   * of this task: pass it to the services you call, so that a repeated call
   * has no second effect (delivery is at least once).
   */
  get idempotencyKey(): string {
    return idempotencyKey(this.#ready);
  }

  /** The step's direct dependencies, by name, as its template lists them. */
  get dependencies(): readonly string[] {
    return this.#ready.dependencies;
  }

  /** The whole task context, the request's input. */
  get inputs(): Readonly<JsonObject> {
    return this.#inputs;
  }

  /** The step's `handler.initialization` settings. */
  get initialization(): Readonly<JsonObject> {
    return this.#ready.initialization;
  }

  /** The results this step's message carries, by step name. */
  get dependencyResults(): Readonly<JsonObject> {
    return this.#ready.dependencyResults;
  }

  /**
   * Aborted when the attempt runs past `timeout_seconds` or the worker gives
   * up on it: pass it to `fetch` and other cancellable calls. The worker
   * reports the timeout whether or not the handler stops.
   */
  get signal(): AbortSignal {
    return this.#signal;
  }

  /**
   * The input `key` of the task's context.
   *
   * @throws PermanentError `invalid_input` if it is missing or is not a `kind`.
   */
  getInput(key: string): JsonValue;
  getInput<K extends Kind>(key: string, kind: K): KindType<K>;
  getInput(key: string, kind?: Kind): JsonValue {
    if (!Object.hasOwn(this.#inputs, key)) {
      throw new PermanentError(
        `the task context has no ${quote(key)}; add it to the task request's context`,
        {
          errorCode: ErrorCode.INVALID_INPUT,
        },
      );
    }
    return checked(
      this.#inputs[key] as JsonValue,
      kind,
      (e) => `input ${quote(key)} is malformed: ${e}`,
    );
  }

  /**
   * The input `key`, or `fallback` when it is missing or null.
   *
   * @throws PermanentError `invalid_input` if it is present but not a `kind`.
   */
  getInputOr<T>(key: string, fallback: T): JsonValue | T;
  getInputOr<K extends Kind, T>(key: string, fallback: T, kind: K): KindType<K> | T;
  getInputOr<T>(key: string, fallback: T, kind?: Kind): JsonValue | T {
    const value = Object.hasOwn(this.#inputs, key) ? this.#inputs[key] : undefined;
    if (value === undefined || value === null) {
      return fallback;
    }
    return checked(value, kind, (e) => `input ${quote(key)} is malformed: ${e}`);
  }

  /**
   * The result of `step`, an ancestor of this step (a dependency, or a
   * dependency's dependency, and so on).
   *
   * @throws PermanentError `invalid_input` if the message does not carry that
   *   result (it is not an ancestor, or `results_from` leaves it out), or it
   *   is not a `kind`.
   */
  getDependencyResult(step: string): JsonValue;
  getDependencyResult<K extends Kind>(step: string, kind: K): KindType<K>;
  getDependencyResult(step: string, kind?: Kind): JsonValue {
    const results = this.#ready.dependencyResults;
    if (!Object.hasOwn(results, step)) {
      const known = Object.keys(results).join(", ") || "none";
      throw new PermanentError(
        `step ${quote(this.stepName)} has no result from ${quote(step)}; it can read only the results ` +
          `its message carries (its ancestors', or those its results_from names): ${known}`,
        { errorCode: ErrorCode.INVALID_INPUT },
      );
    }
    return checked(
      results[step] as JsonValue,
      kind,
      (e) => `the result of ${quote(step)} is not what this handler expects: ${e}`,
    );
  }

  /**
   * The `handler.initialization` setting `key`, or `undefined` when the
   * template does not set it.
   *
   * @throws PermanentError `invalid_input` if it is not a `kind`.
   */
  getInitialization(key: string): JsonValue | undefined;
  getInitialization<K extends Kind>(key: string, kind: K): KindType<K> | undefined;
  getInitialization(key: string, kind?: Kind): JsonValue | undefined {
    const settings = this.#ready.initialization;
    if (!Object.hasOwn(settings, key)) {
      return undefined;
    }
    return checked(
      settings[key] as JsonValue,
      kind,
      (e) => `handler.initialization.${key} is malformed: ${e}`,
    );
  }
}

function quote(text: string): string {
  return JSON.stringify(text);
}

function matches(value: JsonValue, kind: Kind): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
  }
}

function checked(
  value: JsonValue,
  kind: Kind | undefined,
  problem: (detail: string) => string,
): JsonValue {
  if (kind === undefined || matches(value, kind)) {
    return value;
  }
  throw new PermanentError(problem(`expected ${KIND_NAMES[kind]}, found ${describe(value)}`), {
    errorCode: ErrorCode.INVALID_INPUT,
  });
}
