"""The billing handler, called with a context built as the coordinator's
message would make it: no servers."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from tasker_worker import PermanentError, RetryableError
from tasker_worker.testing import step_context

from tasker_example_microservices.billing import SetupBillingProfile
from tasker_example_microservices.latency import Latency


def account(**changes: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "user_id": "usr_5f2b9c1e7a3d4f60b8e2c9a1",
        "email": "new.user@example.com",
        "name": "Jane Developer",
        "plan": "pro",
        "status": "created",
    }
    made.update(changes)
    return {k: v for k, v in made.items() if v is not ...}


def billing_context(**changes: Any) -> Any:
    return step_context(
        step="setup_billing_profile",
        context={"user_info": {"email": "new.user@example.com", "plan": "pro"}},
        dependency_results={"create_user_account": account(**changes)},
    )


@pytest.mark.parametrize(
    ("plan", "trial_days", "status"),
    [("pro", 14, "trialing"), ("enterprise", 30, "trialing"), ("free", 0, "active")],
)
async def test_paid_plans_start_with_a_trial(plan: str, trial_days: int, status: str) -> None:
    result = await SetupBillingProfile().call(billing_context(plan=plan))
    assert result["trial_days"] == trial_days
    assert result["billing_status"] == status
    assert result["plan"] == plan
    assert result["user_id"] == "usr_5f2b9c1e7a3d4f60b8e2c9a1"
    assert result["billing_id"] == "bill_5f2b9c1e7a3d4f60b8e2c9a1"
    assert datetime.fromisoformat(result["created_at"]).utcoffset() is not None
    assert result["language"] == "python"
    assert set(result) == {
        "billing_id",
        "user_id",
        "plan",
        "trial_days",
        "billing_status",
        "created_at",
        "language",
    }


async def test_a_billing_outage_fails_retryably() -> None:
    with pytest.raises(RetryableError) as raised:
        await SetupBillingProfile(billing_down=True).call(billing_context())
    assert raised.value.code == "BILLING_SERVICE_UNAVAILABLE"
    assert raised.value.message == (
        "the billing service did not answer; the step is retried with backoff"
    )
    assert raised.value.retry_after is None


async def test_without_the_account_the_input_is_invalid() -> None:
    context = step_context(step="setup_billing_profile", dependency_results={})
    with pytest.raises(PermanentError) as raised:
        await SetupBillingProfile().call(context)
    assert raised.value.code == "invalid_input"
    assert 'has no result from "create_user_account"' in raised.value.message


@pytest.mark.parametrize(("field", "value"), [("plan", ...), ("user_id", 42), ("email", None)])
async def test_an_account_without_its_fields_is_invalid_input(field: str, value: Any) -> None:
    with pytest.raises(PermanentError) as raised:
        await SetupBillingProfile().call(billing_context(**{field: value}))
    assert raised.value.code == "invalid_input"
    assert raised.value.message.startswith(
        'the result of "create_user_account" is not what this handler expects: '
    )
    assert f"`{field}`" in raised.value.message


async def test_an_account_without_a_name_is_fine() -> None:
    result = await SetupBillingProfile().call(billing_context(name=None))
    assert result["billing_status"] == "trialing"


async def test_latency_is_waited_for() -> None:
    handler = SetupBillingProfile(Latency(30, 31))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await handler.call(billing_context())
    assert loop.time() - started >= 0.03
