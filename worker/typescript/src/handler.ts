/**
 * What a step handler is: a class extending {@link StepHandler}, whose
 * static `handlerName` is the template's `handler.callable`, with an
 * `async call(context)` that returns the step's result.
 *
 * One instance serves every attempt of every task, concurrently, so it holds
 * only shared, read-mostly state (clients, settings), never an attempt's data.
 */

import type { StepContext } from "./context.js";

/**
 * The user's code for one template `callable`:
 *
 * ```ts
 * class SetupBillingProfile extends StepHandler {
 *   static override readonly handlerName = "Microservices::StepHandlers::SetupBillingProfileHandler";
 *
 *   async call(context: StepContext) {
 *     const account = context.getDependencyResult("create_user_account", "object");
 *     return { billing_id: `bill_${String(account["user_id"])}` };
 *   }
 * }
 * ```
 *
 * `call` returns the step's result, any JSON value (`null` included), or
 * throws {@link PermanentError} or {@link RetryableError}. Delivery is at
 * least once: an attempt can run twice after a crash, so pass
 * `context.idempotencyKey` to the services you call.
 */
export abstract class StepHandler {
  /** The template's `handler.callable` this handler runs; every subclass sets it. */
  static readonly handlerName: string = "";

  /** Runs one attempt and returns its result. */
  abstract call(context: StepContext): Promise<unknown>;
}

/** A handler class: constructible without arguments, with its callable's name. */
export interface StepHandlerClass {
  new (): StepHandler;
  readonly handlerName: string;
}
