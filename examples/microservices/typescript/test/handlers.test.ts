/**
 * The five handlers alone, without a broker: the validation, error codes
 * and results of the Rust handlers (examples/microservices/src/lib.rs),
 * each result naming its language.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { ConfigError, type JsonObject, PermanentError, RetryableError } from "tasker-worker";

import {
  CreateUserAccount,
  handlersOf,
  InitializePreferences,
  isEmail,
  register,
  SERVICES,
  SendWelcomeSequence,
  SetupBillingProfile,
  UpdateUserStatus,
} from "../src/index.js";
import { account, contextOf } from "./steps.js";

/** The error `call` throws, asserting its kind and code. */
async function refusal(
  call: Promise<unknown>,
  kind: typeof PermanentError | typeof RetryableError,
  code: string,
): Promise<Error> {
  try {
    await call;
  } catch (e) {
    assert.ok(e instanceof kind, `expected a ${kind.name}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected a ${kind.name} with code ${code}, but the handler returned`);
}

function isRfc3339Utc(text: unknown): boolean {
  return (
    typeof text === "string" &&
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/.test(text) &&
    !Number.isNaN(Date.parse(text))
  );
}

describe("create_user_account", () => {
  const create = (userInfo: JsonObject | string | null): Promise<JsonObject> =>
    new CreateUserAccount().call(contextOf("create_user_account", { user_info: userInfo }));

  test("creates the account, its id derived from the step's idempotency key as the Rust handler does", async () => {
    const result = await create({ email: "Ada@Example.COM", name: "Ada", plan: "pro" });
    const { verification_token: token, created_at: createdAt, ...rest } = result;
    assert.deepEqual(rest, {
      // uuid5(NAMESPACE_OID, "<task_id>:create_user_account"), its first 24 hex digits.
      user_id: "usr_8ba7fd7fc7ed5283ac6a0602",
      email: "ada@example.com",
      name: "Ada",
      plan: "pro",
      status: "created",
      email_verified: false,
      language: "typescript",
    });
    assert.ok(typeof token === "string" && typeof createdAt === "string");
    assert.match(token, /^[0-9a-f]{32}$/);
    assert.ok(isRfc3339Utc(createdAt), createdAt);
    const again = await create({ email: "ada@example.com" });
    assert.equal(again["user_id"], result["user_id"], "a repeated run finds the same account");
    assert.notEqual(again["verification_token"], token);
  });

  test("the name is null and the plan free when the request leaves them out", async () => {
    const result = await create({ email: "ada@example.com" });
    assert.equal(result["name"], null);
    assert.equal(result["plan"], "free");
    assert.equal(result["language"], "typescript");
  });

  test("an email is required", async () => {
    for (const info of [{}, { email: "" }, { email: "   " }, { email: null }]) {
      const e = await refusal(create(info), PermanentError, "MISSING_EMAIL");
      assert.equal(e.message, "Email address is required");
    }
    await refusal(
      new CreateUserAccount().call(contextOf("create_user_account")),
      PermanentError,
      "MISSING_EMAIL",
    );
    await refusal(create(null), PermanentError, "MISSING_EMAIL");
  });

  test("a malformed email is refused for good", async () => {
    for (const email of [
      "no-at-sign.com",
      "a@nodot",
      "a b@example.com",
      "a@b@example.com",
      "@example.com",
      "a@.com",
      "a@example.",
    ]) {
      const e = await refusal(create({ email }), PermanentError, "INVALID_EMAIL");
      assert.equal(e.message, `Invalid email format: ${email}`);
    }
  });

  test("disposable domains are refused, whatever their case", async () => {
    const e = await refusal(
      create({ email: "someone@MailInator.com" }),
      PermanentError,
      "BLOCKED_EMAIL_DOMAIN",
    );
    assert.equal(e.message, "Disposable email addresses are not allowed: mailinator.com");
    await refusal(create({ email: "x@tempmail.com" }), PermanentError, "BLOCKED_EMAIL_DOMAIN");
    await refusal(create({ email: "x@throwaway.email" }), PermanentError, "BLOCKED_EMAIL_DOMAIN");
  });

  test("user_info of another shape is invalid input", async () => {
    await refusal(create("ada@example.com"), PermanentError, "invalid_input");
    await refusal(create({ email: 42 }), PermanentError, "invalid_input");
    await refusal(
      create({ email: "ada@example.com", plan: ["pro"] }),
      PermanentError,
      "invalid_input",
    );
  });

  test("email shapes", () => {
    assert.ok(isEmail("new.user@example.com"));
    assert.ok(!isEmail("no-at-sign.com"));
    assert.ok(!isEmail("a@nodot"));
    assert.ok(!isEmail("a b@example.com"));
    assert.ok(!isEmail("a@b@example.com"));
  });
});

describe("setup_billing_profile", () => {
  const bill = (plan: string, billingDown = false): Promise<JsonObject> =>
    new SetupBillingProfile(undefined, { billingDown }).call(
      contextOf("setup_billing_profile", {}, { create_user_account: account(plan) }),
    );

  test("paid plans start with a trial", async () => {
    for (const [plan, days, status] of [
      ["free", 0, "active"],
      ["pro", 14, "trialing"],
      ["enterprise", 30, "trialing"],
      ["toString", 0, "active"],
    ] as const) {
      const result = await bill(plan);
      const { created_at: createdAt, ...rest } = result;
      assert.deepEqual(rest, {
        billing_id: "bill_0123456789abcdef01234567",
        user_id: "usr_0123456789abcdef01234567",
        plan,
        trial_days: days,
        billing_status: status,
        language: "typescript",
      });
      assert.ok(isRfc3339Utc(createdAt));
    }
  });

  test("while the billing service is down every attempt fails retryably", async () => {
    const e = await refusal(bill("pro", true), RetryableError, "BILLING_SERVICE_UNAVAILABLE");
    assert.equal(e.message, "the billing service did not answer; the step is retried with backoff");
  });

  test("an account without its fields is invalid input", async () => {
    const { plan: _, ...noPlan } = account();
    const e = await refusal(
      new SetupBillingProfile().call(
        contextOf("setup_billing_profile", {}, { create_user_account: noPlan }),
      ),
      PermanentError,
      "invalid_input",
    );
    assert.match(e.message, /missing field `plan`/);
    await refusal(
      new SetupBillingProfile().call(
        contextOf("setup_billing_profile", {}, { create_user_account: { ...account(), email: 7 } }),
      ),
      PermanentError,
      "invalid_input",
    );
    await refusal(
      new SetupBillingProfile().call(contextOf("setup_billing_profile")),
      PermanentError,
      "invalid_input",
    );
  });
});

describe("initialize_preferences", () => {
  const prefer = (plan: string, preferences?: JsonObject): Promise<JsonObject> =>
    new InitializePreferences().call(
      contextOf("initialize_preferences", preferences === undefined ? {} : { preferences }, {
        create_user_account: account(plan),
      }),
    );

  test("notification channels by plan", async () => {
    const free = await prefer("free");
    const { created_at: createdAt, ...rest } = free;
    assert.deepEqual(rest, {
      user_id: "usr_0123456789abcdef01234567",
      preferences: {
        notifications: { email: true, push: false, sms: false },
        language: "en",
        theme: "light",
      },
      language: "typescript",
    });
    assert.ok(isRfc3339Utc(createdAt));
    assert.deepEqual((await prefer("pro"))["preferences"], {
      notifications: { email: true, push: true, sms: false },
      language: "en",
      theme: "light",
    });
  });

  test("the request overrides channels and the language", async () => {
    const result = await prefer("free", {
      notifications: { sms: true, email: false },
      language: "fr",
    });
    assert.deepEqual(result["preferences"], {
      notifications: { email: false, push: false, sms: true },
      language: "fr",
      theme: "light",
    });
    const odd = await prefer("free", { notifications: "all" });
    assert.deepEqual(odd["preferences"], {
      notifications: { email: true, push: false, sms: false },
      language: "en",
      theme: "light",
    });
  });
});

describe("send_welcome_sequence", () => {
  const send = (
    plan: string,
    trialDays: number,
    push: boolean,
    name: string | null = "Ada Lovelace",
  ): Promise<JsonObject> =>
    new SendWelcomeSequence().call(
      contextOf(
        "send_welcome_sequence",
        {},
        {
          create_user_account: account(plan, name),
          setup_billing_profile: { trial_days: trialDays },
          initialize_preferences: {
            preferences: { notifications: { email: true, push, sms: false } },
          },
        },
      ),
    );

  test("a free plan gets the welcome email only", async () => {
    const result = await send("free", 0, false);
    const { sent_at: sentAt, ...rest } = result;
    assert.deepEqual(rest, {
      user_id: "usr_0123456789abcdef01234567",
      channels_used: ["email"],
      messages_sent: 1,
      messages: [
        {
          channel: "email",
          type: "welcome",
          recipient: "ada@example.com",
          subject: "Welcome to Tasker, Ada Lovelace!",
        },
      ],
      status: "sent",
      language: "typescript",
    });
    assert.ok(isRfc3339Utc(sentAt));
  });

  test("a trial and push notifications add their messages", async () => {
    const result = await send("pro", 14, true, null);
    assert.deepEqual(result["channels_used"], ["email", "push"]);
    assert.equal(result["messages_sent"], 3);
    assert.deepEqual(result["messages"], [
      {
        channel: "email",
        type: "welcome",
        recipient: "ada@example.com",
        subject: "Welcome to Tasker, ada@example.com!",
      },
      {
        channel: "email",
        type: "trial_started",
        recipient: "ada@example.com",
        subject: "Your Pro trial has started",
      },
      { channel: "push", type: "welcome", body: "Your pro account is ready. Let's get started!" },
    ]);
    assert.equal(result["language"], "typescript");
  });

  test("results it cannot read count as no trial and no push", async () => {
    const result = await new SendWelcomeSequence().call(
      contextOf(
        "send_welcome_sequence",
        {},
        {
          create_user_account: account("pro"),
          setup_billing_profile: { trial_days: -3 },
          initialize_preferences: ["not", "an", "object"],
        },
      ),
    );
    assert.equal(result["messages_sent"], 1);
  });

  test("it needs all three results", async () => {
    await refusal(
      new SendWelcomeSequence().call(
        contextOf("send_welcome_sequence", {}, { create_user_account: account() }),
      ),
      PermanentError,
      "invalid_input",
    );
  });
});

describe("update_user_status", () => {
  const update = (welcome: JsonObject): Promise<JsonObject> =>
    new UpdateUserStatus().call(
      contextOf(
        "update_user_status",
        {},
        { create_user_account: account(), send_welcome_sequence: welcome },
      ),
    );

  test("activates the user, saying whether the welcome went out", async () => {
    const result = await update({ status: "sent" });
    const { activated_at: activatedAt, ...rest } = result;
    assert.deepEqual(rest, {
      user_id: "usr_0123456789abcdef01234567",
      status: "active",
      welcome_sent: true,
      language: "typescript",
    });
    assert.ok(isRfc3339Utc(activatedAt));
    assert.equal((await update({ status: "queued" }))["welcome_sent"], false);
    assert.equal((await update({}))["welcome_sent"], false);
  });
});

describe("services", () => {
  test("each callable is the template's, and the usual four services serve each once", () => {
    const template = readFileSync(
      new URL("../../../../../templates/microservices/user_registration.yaml", import.meta.url),
      "utf8",
    );
    const callables = [...template.matchAll(/callable:\s*(\S+)/g)].map((m) => m[1] ?? "").sort();
    const nameOf = (handler: object): string =>
      (handler.constructor as unknown as { handlerName: string }).handlerName;
    const usual = (["user", "billing", "preferences", "notifications"] as const).flatMap((s) =>
      handlersOf(s).map(nameOf),
    );
    assert.deepEqual(usual.sort(), callables);
    assert.deepEqual(
      [...handlersOf("accounts"), ...handlersOf("status")].map(nameOf),
      handlersOf("user").map(nameOf),
      "accounts and status split user",
    );
    assert.deepEqual(SERVICES, [
      "user",
      "accounts",
      "status",
      "billing",
      "preferences",
      "notifications",
    ]);
  });

  test("an unknown service is refused with the known ones", () => {
    assert.throws(
      () => register(undefined as never, "bill"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.includes("pass one of user, accounts, status, billing"),
    );
  });
});
