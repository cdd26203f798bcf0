"""The preferences handler, one of the diamond's parallel branches, called
with the account and the task's context: no servers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from tasker_worker import PermanentError
from tasker_worker.testing import step_context

from tasker_example_microservices.preferences import InitializePreferences

USER_ID = "usr_5f2b9c1e7a3d4f60b8e2c9a1"


def preferences_context(preferences: Any = ..., *, plan: str = "pro") -> Any:
    account = {"user_id": USER_ID, "email": "a@b.io", "name": "A", "plan": plan}
    return step_context(
        step="initialize_preferences",
        context={} if preferences is ... else {"preferences": preferences},
        dependency_results={"create_user_account": account},
    )


@pytest.mark.parametrize(("plan", "push"), [("pro", True), ("enterprise", True), ("free", False)])
async def test_paid_plans_get_push_notifications(plan: str, push: bool) -> None:
    result = await InitializePreferences().call(preferences_context(plan=plan))
    assert result["user_id"] == USER_ID
    assert result["preferences"] == {
        "notifications": {"email": True, "push": push, "sms": False},
        "language": "en",
        "theme": "light",
    }
    assert result["language"] == "python"
    assert datetime.fromisoformat(result["created_at"]).utcoffset() is not None
    assert set(result) == {"user_id", "preferences", "created_at", "language"}


async def test_the_request_overrides_the_channels_and_the_language() -> None:
    overrides = {"notifications": {"push": False, "sms": True, "fax": "yes"}, "language": "fr"}
    result = await InitializePreferences().call(preferences_context(overrides))
    assert result["preferences"] == {
        "notifications": {"email": True, "push": False, "sms": True, "fax": "yes"},
        "language": "fr",
        "theme": "light",
    }
    assert result["language"] == "python"


async def test_a_language_given_as_null_stays_null() -> None:
    result = await InitializePreferences().call(preferences_context({"language": None}))
    assert result["preferences"]["language"] is None


@pytest.mark.parametrize(
    "overrides", [None, "dark mode", ["push"], 3, {}, {"notifications": ["sms"]}, {"theme": "dark"}]
)
async def test_overrides_that_are_not_objects_change_nothing(overrides: Any) -> None:
    result = await InitializePreferences().call(preferences_context(overrides, plan="free"))
    assert result["preferences"] == {
        "notifications": {"email": True, "push": False, "sms": False},
        "language": "en",
        "theme": "light",
    }


async def test_without_the_account_the_input_is_invalid() -> None:
    context = step_context(step="initialize_preferences", dependency_results={})
    with pytest.raises(PermanentError) as raised:
        await InitializePreferences().call(context)
    assert raised.value.code == "invalid_input"
    assert 'has no result from "create_user_account"' in raised.value.message
