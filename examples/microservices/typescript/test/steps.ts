/**
 * Step contexts for the handlers' unit tests: a step-ready message as the
 * coordinator would send it, decoded by the SDK.
 */

import { decodeStepReady, type JsonObject, type JsonValue, StepContext } from "tasker-worker";

export const TASK_ID = "0b7f3a52-6f1e-4a77-9c1e-0d4c2f3e8a11";

/** A context of `step`, with the task's `context` and the results of its ancestors. */
export function contextOf(
  step: string,
  context: JsonObject = {},
  dependencyResults: JsonObject = {},
): StepContext {
  const body = {
    protocol_version: 1,
    task_id: TASK_ID,
    namespace: "microservices",
    task_name: "user_registration",
    task_version: "1.0.0",
    step,
    callable: "Microservices::StepHandlers::Any",
    attempt: 1,
    max_attempts: 3,
    context,
    initialization: {},
    dependencies: Object.keys(dependencyResults).sort(),
    dependency_results: dependencyResults,
  };
  return new StepContext(decodeStepReady(Buffer.from(JSON.stringify(body)), 1024 * 1024));
}

/** The result of `create_user_account` for `plan`, as the TypeScript handler makes it. */
export function account(plan = "free", name: JsonValue = "Ada Lovelace"): JsonObject {
  return {
    user_id: "usr_0123456789abcdef01234567",
    email: "ada@example.com",
    name,
    plan,
    status: "created",
    email_verified: false,
    verification_token: "0".repeat(32),
    created_at: "2026-01-01T00:00:00.000+00:00",
    language: "typescript",
  };
}
