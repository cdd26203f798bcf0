"""The welcome-sequence handler, the diamond's join, called with the three
results before it: no servers. The expectations are the Rust end-to-end
diamond test's (tests/tests/diamond.rs)."""

from __future__ import annotations

from typing import Any

import pytest
from tasker_worker import PermanentError
from tasker_worker.testing import step_context

from tasker_example_microservices.notifications import SendWelcomeSequence

USER_ID = "usr_5f2b9c1e7a3d4f60b8e2c9a1"


def welcome_context(
    *, plan: str = "pro", name: str | None = "Jane", trial_days: Any = 14, push: Any = True
) -> Any:
    return step_context(
        step="send_welcome_sequence",
        dependencies=["setup_billing_profile", "initialize_preferences"],
        dependency_results={
            "create_user_account": {
                "user_id": USER_ID,
                "email": "jane@example.com",
                "name": name,
                "plan": plan,
            },
            "setup_billing_profile": {"billing_id": "bill_1", "trial_days": trial_days},
            "initialize_preferences": {
                "user_id": USER_ID,
                "preferences": {"notifications": {"email": True, "push": push, "sms": False}},
            },
        },
    )


async def test_a_pro_user_gets_a_welcome_a_trial_email_and_a_push() -> None:
    sent = await SendWelcomeSequence().call(welcome_context())
    assert [m["type"] for m in sent["messages"]] == ["welcome", "trial_started", "welcome"]
    assert sent["channels_used"] == ["email", "push"]
    assert sent["messages"][0]["recipient"] == "jane@example.com"
    assert sent["messages"][0]["subject"] == "Welcome to Tasker, Jane!"
    assert sent["messages"][1]["subject"] == "Your Pro trial has started"
    assert sent["messages"][2] == {
        "channel": "push",
        "type": "welcome",
        "body": "Your pro account is ready. Let's get started!",
    }
    assert sent["messages_sent"] == 3
    assert sent["status"] == "sent"
    assert sent["user_id"] == USER_ID
    assert sent["language"] == "python"
    assert set(sent) == {
        "user_id",
        "channels_used",
        "messages_sent",
        "messages",
        "status",
        "sent_at",
        "language",
    }


async def test_a_free_user_without_push_gets_one_email() -> None:
    sent = await SendWelcomeSequence().call(welcome_context(plan="free", trial_days=0, push=False))
    assert [m["type"] for m in sent["messages"]] == ["welcome"]
    assert sent["channels_used"] == ["email"]
    assert sent["messages_sent"] == 1


async def test_without_a_name_the_welcome_uses_the_email() -> None:
    sent = await SendWelcomeSequence().call(welcome_context(name=None))
    assert sent["messages"][0]["subject"] == "Welcome to Tasker, jane@example.com!"


@pytest.mark.parametrize("trial_days", [None, "14", 14.0, -3, True])
async def test_only_a_whole_positive_trial_sends_the_trial_email(trial_days: Any) -> None:
    sent = await SendWelcomeSequence().call(welcome_context(trial_days=trial_days))
    assert [m["type"] for m in sent["messages"]] == ["welcome", "welcome"]


@pytest.mark.parametrize("push", [None, "true", 1])
async def test_only_a_push_preference_of_true_sends_a_push(push: Any) -> None:
    sent = await SendWelcomeSequence().call(welcome_context(push=push))
    assert sent["channels_used"] == ["email"]


@pytest.mark.parametrize("missing", ["setup_billing_profile", "initialize_preferences"])
async def test_a_missing_upstream_result_is_invalid_input(missing: str) -> None:
    context = welcome_context()
    results = dict(context.dependency_results)
    del results[missing]
    with pytest.raises(PermanentError) as raised:
        await SendWelcomeSequence().call(
            step_context(step="send_welcome_sequence", dependency_results=results)
        )
    assert raised.value.code == "invalid_input"
    assert f'has no result from "{missing}"' in raised.value.message
