/**
 * The billing service: sets up the billing profile of a new account. Paid
 * plans start with a trial. When the billing service is down
 * (`--billing-down`, `TASKER_DEMO_BILLING_DOWN`), every attempt fails
 * retryably, as during an outage, and the step's retries play out.
 */

import { type JsonObject, RetryableError, type StepContext } from "tasker-worker";

import { accountOf, LANGUAGE, rfc3339Now } from "./account.js";
import { Latency, SimulatedHandler } from "./latency.js";

/** Days of trial by plan; other plans have none. */
export const TRIAL_DAYS: Readonly<Record<string, number>> = { pro: 14, enterprise: 30 };

/** `setup_billing_profile`: reads the account, answers with the profile. */
export class SetupBillingProfile extends SimulatedHandler {
  static override readonly handlerName = "Microservices::StepHandlers::SetupBillingProfileHandler";
  readonly billingDown: boolean;

  constructor(latency: Latency = Latency.none(), options: { billingDown?: boolean } = {}) {
    super(latency);
    this.billingDown = options.billingDown ?? false;
  }

  async call(context: StepContext): Promise<JsonObject> {
    const account = accountOf(context);
    const trialDays = Object.hasOwn(TRIAL_DAYS, account.plan) ? (TRIAL_DAYS[account.plan] ?? 0) : 0;
    await this.latency.wait();
    if (this.billingDown) {
      throw new RetryableError(
        "the billing service did not answer; the step is retried with backoff",
        {
          errorCode: "BILLING_SERVICE_UNAVAILABLE",
        },
      );
    }
    if (account.userId.length < 4) {
      // The Rust handler slices the id's `usr_` prefix off and panics on a
      // shorter one: a `handler_panic`, here as there.
      throw new RangeError(
        `the user id ${JSON.stringify(account.userId)} is shorter than its "usr_" prefix`,
      );
    }
    return {
      billing_id: `bill_${account.userId.slice(4)}`,
      user_id: account.userId,
      plan: account.plan,
      trial_days: trialDays,
      billing_status: trialDays > 0 ? "trialing" : "active",
      created_at: rfc3339Now(),
      language: LANGUAGE,
    };
  }
}
