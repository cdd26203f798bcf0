/**
 * The notifications service: sends the welcome messages, composed from all
 * three results before it (the diamond's join): a welcome email always, a
 * trial email when billing started a trial, and a push notification when
 * the user's preferences accept them.
 */

import { type JsonObject, type JsonValue, type StepContext } from "tasker-worker";

import { accountOf, at, LANGUAGE, rfc3339Now } from "./account.js";
import { SimulatedHandler } from "./latency.js";

/** `send_welcome_sequence`: reads the account, the billing profile and the preferences; answers with what it sent. */
export class SendWelcomeSequence extends SimulatedHandler {
  static override readonly handlerName = "Microservices::StepHandlers::SendWelcomeSequenceHandler";

  async call(context: StepContext): Promise<JsonObject> {
    const account = accountOf(context);
    const billing = context.getDependencyResult("setup_billing_profile");
    const preferences = context.getDependencyResult("initialize_preferences");
    const name = account.name ?? account.email;
    const messages: (JsonObject & { channel: string })[] = [
      {
        channel: "email",
        type: "welcome",
        recipient: account.email,
        subject: `Welcome to Tasker, ${name}!`,
      },
    ];
    if (count(at(billing, "trial_days")) > 0) {
      messages.push({
        channel: "email",
        type: "trial_started",
        recipient: account.email,
        subject: `Your ${capitalize(account.plan)} trial has started`,
      });
    }
    if (at(preferences, "preferences", "notifications", "push") === true) {
      messages.push({
        channel: "push",
        type: "welcome",
        body: `Your ${account.plan} account is ready. Let's get started!`,
      });
    }
    // Repeats in a row collapse, as Rust's `dedup` does.
    const channels: string[] = [];
    for (const message of messages) {
      const channel = message.channel;
      if (channels.at(-1) !== channel) channels.push(channel);
    }
    await this.latency.wait();
    return {
      user_id: account.userId,
      channels_used: channels,
      messages_sent: messages.length,
      messages,
      status: "sent",
      sent_at: rfc3339Now(),
      language: LANGUAGE,
    };
  }
}

/** A non-negative JSON integer, else 0. */
function count(value: JsonValue): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}

/** The first letter in upper case, the rest as it is. */
function capitalize(text: string): string {
  const first = text.codePointAt(0);
  if (first === undefined) return "";
  const head = String.fromCodePoint(first);
  return head.toUpperCase() + text.slice(head.length);
}
