/**
 * What the handlers share: the language they name in their results, the
 * account that `create_user_account` made as the steps after it read it
 * (the same fields, and the same refusal of a result without them, as the
 * Rust handlers' `Account`), and the time as they write it.
 */

import {
  ErrorCode,
  type JsonObject,
  type JsonValue,
  PermanentError,
  type StepContext,
} from "tasker-worker";

/**
 * The language these handlers are written in, which each result names
 * (`language`), as the other languages' versions of them do, so that a task
 * served by several languages shows which ran each step.
 */
export const LANGUAGE = "typescript";

/** The step whose result is the account. */
export const CREATE_USER_ACCOUNT = "create_user_account";

/** The account in the result of `create_user_account`. */
export interface Account {
  readonly userId: string;
  readonly email: string;
  readonly name: string | null;
  readonly plan: string;
}

/**
 * The account in the result of `create_user_account`.
 *
 * @throws PermanentError `invalid_input` if the step's message does not
 *   carry that result, or it lacks a field or mistypes one.
 */
export function accountOf(context: StepContext): Account {
  const result = context.getDependencyResult(CREATE_USER_ACCOUNT, "object");
  const name = result["name"];
  return {
    userId: text(result, "user_id"),
    email: text(result, "email"),
    name: name === undefined || name === null ? null : text(result, "name"),
    plan: text(result, "plan"),
  };
}

function text(result: JsonObject, key: string): string {
  const value = result[key];
  if (typeof value === "string") return value;
  const problem =
    value === undefined || value === null
      ? `missing field \`${key}\``
      : `field \`${key}\` is not a string`;
  throw new PermanentError(
    `the result of "${CREATE_USER_ACCOUNT}" is not what this handler expects: ${problem}`,
    {
      errorCode: ErrorCode.INVALID_INPUT,
    },
  );
}

/**
 * `value[path[0]][path[1]]...`, or `null` where the path runs out or goes
 * through something that is not an object, as JSON indexing does in the
 * Rust handlers.
 */
export function at(value: JsonValue | undefined, ...path: string[]): JsonValue {
  let current: JsonValue | undefined = value;
  for (const key of path) {
    if (!isObject(current)) return null;
    current = Object.hasOwn(current, key) ? current[key] : undefined;
  }
  return current ?? null;
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The current time as the Rust handlers write it: RFC 3339, UTC, `+00:00`. */
export function rfc3339Now(): string {
  return new Date().toISOString().replace(/Z$/, "+00:00");
}
