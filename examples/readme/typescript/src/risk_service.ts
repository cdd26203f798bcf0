import {
  initTelemetry,
  PermanentError,
  type StepContext,
  StepHandler,
  Worker,
} from "tasker-worker";

const DISPOSABLE_DOMAINS = new Set(["mailinator.com", "guerrillamail.com"]);

/** Scores a signup from 0 (fine) to 100 (surely fraud). */
class ScoreSignup extends StepHandler {
  static override readonly handlerName = "Risk::ScoreSignupHandler";

  async call(context: StepContext) {
    const email = context.getInput("email", "string"); // the task's input; a missing one fails the step
    const country = context.getInputOr("country", "unknown", "string");
    const domain = /^.+@([^@]+)$/.exec(email)?.[1];
    if (domain === undefined) {
      // No retry can fix this: the step fails and its descendants are blocked.
      throw new PermanentError(`${JSON.stringify(email)} is not an email address`, {
        errorCode: "INVALID_EMAIL",
      });
    }
    const score = DISPOSABLE_DOMAINS.has(domain.toLowerCase()) ? 90 : 10;
    return { email, country, score, review: score >= 50 };
  }
}

const telemetry = initTelemetry("worker-risk"); // spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set
try {
  await new Worker() // TASKER_SERVICE names the service
    .namespace("risk")
    .handler(ScoreSignup)
    .run(); // until SIGTERM or SIGINT
} finally {
  await telemetry.shutdown();
}
