/**
 * The preferences service: creates the user's preferences, with
 * notification channels by plan; the task's `preferences` input may
 * override them (`notifications`) and set the `language`.
 */

import { type JsonObject, type JsonValue, type StepContext } from "tasker-worker";

import { accountOf, isObject, LANGUAGE, rfc3339Now } from "./account.js";
import { SimulatedHandler } from "./latency.js";

/** `initialize_preferences`: reads the account, answers with the preferences. */
export class InitializePreferences extends SimulatedHandler {
  static override readonly handlerName =
    "Microservices::StepHandlers::InitializePreferencesHandler";

  async call(context: StepContext): Promise<JsonObject> {
    const account = accountOf(context);
    const notifications: JsonObject = { email: true, push: account.plan !== "free", sms: false };
    const overrides: JsonValue = context.getInputOr("preferences", null);
    const extra = isObject(overrides) ? overrides["notifications"] : undefined;
    if (isObject(extra)) {
      Object.assign(notifications, extra);
    }
    await this.latency.wait();
    return {
      user_id: account.userId,
      preferences: {
        notifications,
        language:
          isObject(overrides) && Object.hasOwn(overrides, "language")
            ? (overrides["language"] ?? null)
            : "en",
        theme: "light",
      },
      created_at: rfc3339Now(),
      language: LANGUAGE,
    };
  }
}
