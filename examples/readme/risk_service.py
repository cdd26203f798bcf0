import asyncio

from tasker_worker import PermanentError, StepContext, Worker, WorkerConfig, telemetry

DISPOSABLE_DOMAINS = {"mailinator.com", "guerrillamail.com"}


class ScoreSignup:
    """Scores a signup from 0 (fine) to 100 (surely fraud)."""

    async def call(self, context: StepContext) -> dict[str, object]:
        email = context.get_input("email", str)  # the task's input; a missing one fails the step
        country = context.get_input_or("country", "unknown", str)
        user, _, domain = email.rpartition("@")
        if not user or not domain:
            # No retry can fix this: the step fails and its descendants are blocked.
            raise PermanentError(f"{email!r} is not an email address", error_code="INVALID_EMAIL")
        score = 90 if domain.lower() in DISPOSABLE_DOMAINS else 10
        return {"email": email, "country": country, "score": score, "review": score >= 50}


async def main() -> None:
    with telemetry.init("worker-risk"):  # logs; spans too when OTEL_EXPORTER_OTLP_ENDPOINT is set
        await (
            Worker(WorkerConfig.from_env())  # TASKER_SERVICE names the service
            .namespace("risk")
            .handler("Risk::ScoreSignupHandler", ScoreSignup())
            .run()  # until SIGTERM or SIGINT; a second signal exits at once
        )


if __name__ == "__main__":
    asyncio.run(main())
