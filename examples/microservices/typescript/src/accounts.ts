/**
 * The user service's two steps: `create_user_account`, the diamond's
 * start, and `update_user_status`, its end.
 */

import { randomUUID } from "node:crypto";

import {
  ErrorCode,
  type JsonObject,
  type JsonValue,
  PermanentError,
  type StepContext,
  uuid5,
} from "tasker-worker";

import { accountOf, at, LANGUAGE, rfc3339Now } from "./account.js";
import { SimulatedHandler } from "./latency.js";

/** Domains of disposable mailboxes, which cannot register. */
export const BLOCKED_DOMAINS: readonly string[] = [
  "tempmail.com",
  "throwaway.email",
  "mailinator.com",
];

/** The namespace UUID of object identifiers (RFC 9562), under which account ids are derived. */
const NAMESPACE_OID = "6ba7b812-9dad-11d1-80b4-00c04fd430c8";

/**
 * `create_user_account`: creates the account in the user service. Validates
 * the email: required, well-formed, and not from a disposable domain; each
 * refusal is permanent.
 */
export class CreateUserAccount extends SimulatedHandler {
  static override readonly handlerName = "Microservices::StepHandlers::CreateUserAccountHandler";

  async call(context: StepContext): Promise<JsonObject> {
    const info = context.getInputOr("user_info", {}, "object");
    const email = optionalText(info, "email") ?? "";
    const name = optionalText(info, "name");
    const plan = optionalText(info, "plan") ?? "free";
    if (email.trim().length === 0) {
      throw new PermanentError("Email address is required", { errorCode: "MISSING_EMAIL" });
    }
    if (!isEmail(email)) {
      throw new PermanentError(`Invalid email format: ${email}`, { errorCode: "INVALID_EMAIL" });
    }
    const domain = email.slice(email.lastIndexOf("@") + 1).toLowerCase();
    if (BLOCKED_DOMAINS.includes(domain)) {
      throw new PermanentError(`Disposable email addresses are not allowed: ${domain}`, {
        errorCode: "BLOCKED_EMAIL_DOMAIN",
      });
    }
    await this.latency.wait();
    // Derived from the step's idempotency key, so that a repeated run finds
    // the same account instead of creating a second one.
    const key = uuid5(NAMESPACE_OID, context.idempotencyKey).replaceAll("-", "");
    return {
      user_id: `usr_${key.slice(0, 24)}`,
      email: email.toLowerCase(),
      name,
      plan,
      status: "created",
      email_verified: false,
      verification_token: randomUUID().replaceAll("-", ""),
      created_at: rfc3339Now(),
      language: LANGUAGE,
    };
  }
}

/** `local@domain.tld`, with no spaces and one `@`. */
export function isEmail(email: string): boolean {
  const at = email.indexOf("@");
  if (at < 0) return false;
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const dot = domain.lastIndexOf(".");
  if (dot < 0) return false;
  const clean = (s: string): boolean => s.length > 0 && !/\s/.test(s) && !s.includes("@");
  return clean(local) && clean(domain.slice(0, dot)) && clean(domain.slice(dot + 1));
}

/**
 * `user_info[key]`: a string, or `null` when it is missing or null.
 *
 * @throws PermanentError `invalid_input` when it is something else.
 */
function optionalText(info: JsonObject, key: string): string | null {
  const value: JsonValue | undefined = info[key];
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  throw new PermanentError(`input "user_info" is malformed: field \`${key}\` is not a string`, {
    errorCode: ErrorCode.INVALID_INPUT,
  });
}

/** `update_user_status`: marks the user active in the user service. */
export class UpdateUserStatus extends SimulatedHandler {
  static override readonly handlerName = "Microservices::StepHandlers::UpdateUserStatusHandler";

  async call(context: StepContext): Promise<JsonObject> {
    const account = accountOf(context);
    const welcome = context.getDependencyResult("send_welcome_sequence");
    await this.latency.wait();
    return {
      user_id: account.userId,
      status: "active",
      welcome_sent: at(welcome, "status") === "sent",
      activated_at: rfc3339Now(),
      language: LANGUAGE,
    };
  }
}
