/** The runner's command line: the service, the namespace, the simulation, with defaults from the environment. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConfigError } from "tasker-worker";

import { parseArguments } from "../src/main.js";

describe("runner arguments", () => {
  test("defaults", () => {
    const options = parseArguments(["billing"], {});
    assert.equal(options.service, "billing");
    assert.equal(options.namespace, "microservices");
    assert.deepEqual([options.latency.low, options.latency.high], [40, 120]);
    assert.equal(options.billingDown, false);
    assert.equal(options.shutdownGrace, 30);
  });

  test("flags, in either form, win over the environment", () => {
    const env = { TASKER_DEMO_LATENCY_MS: "5..10", TASKER_DEMO_BILLING_DOWN: "yes" };
    assert.equal(parseArguments(["billing"], env).billingDown, true);
    assert.deepEqual(
      [parseArguments(["billing"], env).latency.low, parseArguments(["billing"], env).latency.high],
      [5, 10],
    );
    const options = parseArguments(
      [
        "--namespace",
        "ns1",
        "user",
        "--latency-ms=0..0",
        "--billing-down=false",
        "--shutdown-grace",
        "2.5",
      ],
      env,
    );
    assert.deepEqual(
      [
        options.service,
        options.namespace,
        options.latency.high,
        options.billingDown,
        options.shutdownGrace,
      ],
      ["user", "ns1", 0, false, 2.5],
    );
    assert.equal(parseArguments(["billing", "--billing-down"], {}).billingDown, true);
  });

  test("mistakes say what to do", () => {
    const refused = (argv: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): void => {
      assert.throws(
        () => parseArguments(argv, env),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
      );
    };
    refused([], /name the service to run/);
    refused(
      ["bill"],
      /"bill" is not a service; pass one of user, accounts, status, billing, preferences, notifications/,
    );
    refused(["user", "billing"], /one service at a time/);
    refused(["user", "--latency-ms", "fast"], /not MIN\.\.MAX/);
    refused(["user", "--latency-ms"], /--latency-ms needs a value/);
    refused(["user", "--billing-down=maybe"], /not true or false/);
    refused(["user", "--shutdown-grace", "soon"], /not a number of seconds/);
    refused(["user", "--verbose"], /unknown option --verbose/);
    refused(["user"], /TASKER_DEMO_BILLING_DOWN="perhaps" is not true or false/, {
      TASKER_DEMO_BILLING_DOWN: "perhaps",
    });
  });
});
