/**
 * The `microservices` namespace's user registration in TypeScript: the
 * five handlers of the diamond, with the validation, error codes and
 * results of the Rust handlers (`examples/microservices/src/lib.rs`), each
 * result naming its `language`.
 *
 * ```text
 * create_user_account ─┬─▶ setup_billing_profile ──┬─▶ send_welcome_sequence ─▶ update_user_status
 *                      └─▶ initialize_preferences ─┘
 * ```
 *
 * Each service has its own queue, so any of them can run here while the
 * others run in Rust, Python or Ruby. Layout: `accounts.ts` (the user
 * service's two steps), `billing.ts`, `preferences.ts`, `notifications.ts`,
 * `account.ts` (what they share), `latency.ts` (the simulated service
 * latency) and `main.ts` (the runner).
 */

import { ConfigError, type StepHandler, type Worker } from "tasker-worker";

import { CreateUserAccount, UpdateUserStatus } from "./accounts.js";
import { SetupBillingProfile } from "./billing.js";
import { Latency } from "./latency.js";
import { SendWelcomeSequence } from "./notifications.js";
import { InitializePreferences } from "./preferences.js";

export { accountOf, LANGUAGE, rfc3339Now, type Account } from "./account.js";
export { BLOCKED_DOMAINS, CreateUserAccount, isEmail, UpdateUserStatus } from "./accounts.js";
export { SetupBillingProfile, TRIAL_DAYS } from "./billing.js";
export { Latency } from "./latency.js";
export { SendWelcomeSequence } from "./notifications.js";
export { InitializePreferences } from "./preferences.js";

/** The namespace these handlers serve. */
export const NAMESPACE = "microservices";

/**
 * The services of the namespace, as the Rust example names them: `user`
 * creates accounts and activates them; `accounts` and `status` split its
 * two handlers; `billing`, `preferences` and `notifications` run one each.
 */
export const SERVICES = [
  "user",
  "accounts",
  "status",
  "billing",
  "preferences",
  "notifications",
] as const;

/** One of {@link SERVICES}. */
export type Service = (typeof SERVICES)[number];

/** Whether `name` is one of {@link SERVICES}. */
export function isService(name: string): name is Service {
  return (SERVICES as readonly string[]).includes(name);
}

/** How the handlers simulate their services. */
export interface Simulation {
  /** How long each service call takes. */
  readonly latency?: Latency;
  /** Whether the billing service is down: every billing attempt fails retryably with `BILLING_SERVICE_UNAVAILABLE`. */
  readonly billingDown?: boolean;
}

/** The handlers `service` runs. */
export function handlersOf(service: Service, simulation: Simulation = {}): StepHandler[] {
  const latency = simulation.latency ?? Latency.none();
  switch (service) {
    case "user":
      return [new CreateUserAccount(latency), new UpdateUserStatus(latency)];
    case "accounts":
      return [new CreateUserAccount(latency)];
    case "status":
      return [new UpdateUserStatus(latency)];
    case "billing":
      return [new SetupBillingProfile(latency, { billingDown: simulation.billingDown ?? false })];
    case "preferences":
      return [new InitializePreferences(latency)];
    case "notifications":
      return [new SendWelcomeSequence(latency)];
  }
}

/**
 * Registers `service`'s handlers on `worker`, each under its template
 * `callable`. The caller chooses the namespaces the worker serves.
 *
 * @throws ConfigError for a service this package does not run.
 */
export function register(worker: Worker, service: string, simulation: Simulation = {}): Worker {
  if (!isService(service)) {
    throw new ConfigError(
      `${JSON.stringify(service)} is not a service; pass one of ${SERVICES.join(", ")}`,
    );
  }
  for (const handler of handlersOf(service, simulation)) worker.handler(handler);
  return worker;
}
