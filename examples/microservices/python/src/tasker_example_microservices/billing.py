"""The billing service: sets up the billing profile of a new account. Paid
plans start with a trial. When the billing service is down
(``TASKER_DEMO_BILLING_DOWN``), every attempt fails retryably, as during an
outage, and the step's retries play out."""

from __future__ import annotations

from typing import Any

from tasker_worker import RetryableError, StepContext

from tasker_example_microservices.account import LANGUAGE, Account, rfc3339_now
from tasker_example_microservices.latency import Latency

CALLABLE = "Microservices::StepHandlers::SetupBillingProfileHandler"

TRIAL_DAYS = {"pro": 14, "enterprise": 30}
"""Days of trial by plan; other plans have none."""


class SetupBillingProfile:
    """``setup_billing_profile``: reads the account, answers with the profile."""

    def __init__(self, latency: Latency | None = None, *, billing_down: bool = False) -> None:
        self.latency = latency or Latency.none()
        self.billing_down = billing_down

    async def call(self, context: StepContext) -> Any:
        account = Account.of(context)
        trial_days = TRIAL_DAYS.get(account.plan, 0)
        await self.latency.wait()
        if self.billing_down:
            raise RetryableError(
                "the billing service did not answer; the step is retried with backoff",
                error_code="BILLING_SERVICE_UNAVAILABLE",
            )
        return {
            "billing_id": f"bill_{account.user_id[4:]}",
            "user_id": account.user_id,
            "plan": account.plan,
            "trial_days": trial_days,
            "billing_status": "trialing" if trial_days > 0 else "active",
            "created_at": rfc3339_now(),
            "language": LANGUAGE,
        }
