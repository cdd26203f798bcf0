"""The user service's two handlers, account creation and activation,
called with contexts built as the coordinator's messages would make them:
no servers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from tasker_worker import PermanentError
from tasker_worker.testing import step_context

from tasker_example_microservices.latency import Latency
from tasker_example_microservices.user import CreateUserAccount, UpdateUserStatus, is_email

USER_ID = "usr_5f2b9c1e7a3d4f60b8e2c9a1"


def create_context(user_info: Any = ..., **fields: Any) -> Any:
    context = {} if user_info is ... else {"user_info": user_info}
    return step_context(step="create_user_account", context=context, **fields)


async def test_an_account_is_created_from_the_user_info() -> None:
    info = {"email": "New.User@Example.com", "name": "Jane Developer", "plan": "pro"}
    account = await CreateUserAccount().call(create_context(info, task_id=str(uuid.uuid4())))
    assert account["email"] == "new.user@example.com"
    assert (account["name"], account["plan"]) == ("Jane Developer", "pro")
    assert (account["status"], account["email_verified"]) == ("created", False)
    assert account["language"] == "python"
    assert len(account["verification_token"]) == 32
    int(account["verification_token"], 16)
    assert datetime.fromisoformat(account["created_at"]).utcoffset() is not None
    assert set(account) == {
        "user_id",
        "email",
        "name",
        "plan",
        "status",
        "email_verified",
        "verification_token",
        "created_at",
        "language",
    }


async def test_the_user_id_follows_from_the_idempotency_key() -> None:
    context = create_context({"email": "a@b.io"})
    key = uuid.uuid5(uuid.NAMESPACE_OID, context.idempotency_key).hex
    first = await CreateUserAccount().call(context)
    again = await CreateUserAccount().call(create_context({"email": "a@b.io"}))
    assert first["user_id"] == again["user_id"] == f"usr_{key[:24]}"
    assert first["verification_token"] != again["verification_token"]
    other = await CreateUserAccount().call(
        create_context({"email": "a@b.io"}, task_id=str(uuid.uuid4()))
    )
    assert other["user_id"] != first["user_id"]


@pytest.mark.parametrize(
    ("info", "plan"),
    [({}, "free"), ({"plan": None}, "free"), ({"plan": ""}, ""), ({"plan": "team"}, "team")],
)
async def test_without_a_plan_the_plan_is_free(info: dict[str, Any], plan: str) -> None:
    account = await CreateUserAccount().call(create_context({"email": "a@b.io", **info}))
    assert account["plan"] == plan
    assert account["name"] is None


@pytest.mark.parametrize(
    "user_info", [..., None, {}, {"email": None}, {"email": ""}, {"email": " \t\u3000"}]
)
async def test_an_email_is_required(user_info: Any) -> None:
    with pytest.raises(PermanentError) as raised:
        await CreateUserAccount().call(create_context(user_info))
    assert (raised.value.code, raised.value.message) == (
        "MISSING_EMAIL",
        "Email address is required",
    )


@pytest.mark.parametrize(
    "email",
    ["no-at-sign.com", "a@nodot", "a b@example.com", "a@b@example.com", "@b.io", "a@.io", "a@b."],
)
async def test_a_malformed_email_is_refused(email: str) -> None:
    with pytest.raises(PermanentError) as raised:
        await CreateUserAccount().call(create_context({"email": email}))
    assert (raised.value.code, raised.value.message) == (
        "INVALID_EMAIL",
        f"Invalid email format: {email}",
    )


@pytest.mark.parametrize("domain", ["tempmail.com", "Throwaway.Email", "MAILINATOR.COM"])
async def test_a_disposable_domain_is_refused(domain: str) -> None:
    with pytest.raises(PermanentError) as raised:
        await CreateUserAccount().call(create_context({"email": f"a@{domain}"}))
    assert (raised.value.code, raised.value.message) == (
        "BLOCKED_EMAIL_DOMAIN",
        f"Disposable email addresses are not allowed: {domain.lower()}",
    )


@pytest.mark.parametrize(
    ("user_info", "problem"),
    [
        ("jane@example.com", "expected an object"),
        ({"email": 42}, "field `email` is not a string"),
        # Read before the email is judged, as the Rust handler decodes it whole.
        ({"name": ["Jane"]}, "field `name` is not a string"),
        ({"email": "a@b.io", "plan": True}, "field `plan` is not a string"),
    ],
)
async def test_a_mistyped_user_info_is_invalid_input(user_info: Any, problem: str) -> None:
    with pytest.raises(PermanentError) as raised:
        await CreateUserAccount().call(create_context(user_info))
    assert raised.value.code == "invalid_input"
    assert raised.value.message.startswith('input "user_info" is malformed: ')
    assert problem in raised.value.message


def test_email_shapes_are_the_rust_handlers() -> None:
    assert is_email("new.user@example.com")
    assert not is_email("no-at-sign.com")
    assert not is_email("a@nodot")
    assert not is_email("a b@example.com")
    assert not is_email("a@b@example.com")
    # Rust's whitespace, not str.isspace's: U+001F is not whitespace there.
    assert not is_email("a\u00a0b@example.com")
    assert is_email("a\x1fb@example.com")


async def test_latency_is_waited_for_after_validation() -> None:
    handler = CreateUserAccount(Latency(30, 31))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PermanentError):
        await handler.call(create_context({"email": "nope"}))
    assert loop.time() - started < 0.03
    await handler.call(create_context({"email": "a@b.io"}))
    assert loop.time() - started >= 0.03


def status_context(welcome: Any = ..., **account: Any) -> Any:
    made = {"user_id": USER_ID, "email": "a@b.io", "name": None, "plan": "pro", **account}
    results: dict[str, Any] = {"create_user_account": made}
    if welcome is not ...:
        results["send_welcome_sequence"] = welcome
    return step_context(
        step="update_user_status",
        dependencies=["send_welcome_sequence"],
        dependency_results=results,
    )


async def test_the_account_is_activated() -> None:
    result = await UpdateUserStatus().call(status_context({"status": "sent", "messages_sent": 1}))
    assert (result["user_id"], result["status"]) == (USER_ID, "active")
    assert result["welcome_sent"] is True
    assert result["language"] == "python"
    assert datetime.fromisoformat(result["activated_at"]).utcoffset() is not None
    assert set(result) == {"user_id", "status", "welcome_sent", "activated_at", "language"}


@pytest.mark.parametrize("welcome", [{"status": "queued"}, {}, {"status": None}, "sent", None])
async def test_only_a_sent_welcome_counts_as_sent(welcome: Any) -> None:
    result = await UpdateUserStatus().call(status_context(welcome))
    assert (result["status"], result["welcome_sent"]) == ("active", False)


async def test_activation_needs_the_welcome_sequences_result() -> None:
    with pytest.raises(PermanentError) as raised:
        await UpdateUserStatus().call(status_context())
    assert raised.value.code == "invalid_input"
    assert 'has no result from "send_welcome_sequence"' in raised.value.message


async def test_activation_needs_the_account() -> None:
    context = step_context(
        step="update_user_status", dependency_results={"send_welcome_sequence": {"status": "sent"}}
    )
    with pytest.raises(PermanentError) as raised:
        await UpdateUserStatus().call(context)
    assert raised.value.code == "invalid_input"
    assert 'has no result from "create_user_account"' in raised.value.message
    with pytest.raises(PermanentError) as raised:
        await UpdateUserStatus().call(status_context({"status": "sent"}, user_id=7))
    assert raised.value.code == "invalid_input"
    assert "`user_id` is not a string" in raised.value.message
