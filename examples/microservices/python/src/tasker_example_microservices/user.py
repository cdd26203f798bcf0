"""The user service: creates the account, the first step of the diamond,
and marks it active, the last. Creating it validates the email (required,
well-formed, not from a disposable domain), and each refusal is permanent:
no retry can fix the request. The ``accounts`` and ``status`` services run
one of the two handlers each."""

from __future__ import annotations

import uuid
from typing import Any

from tasker_worker import ErrorCode, PermanentError, StepContext

from tasker_example_microservices.account import LANGUAGE, Account, rfc3339_now
from tasker_example_microservices.latency import Latency

CREATE_CALLABLE = "Microservices::StepHandlers::CreateUserAccountHandler"
UPDATE_STATUS_CALLABLE = "Microservices::StepHandlers::UpdateUserStatusHandler"

BLOCKED_DOMAINS = ("tempmail.com", "throwaway.email", "mailinator.com")
"""Domains of disposable mailboxes, which cannot register."""

# What Rust counts as whitespace (char::is_whitespace, str::trim), which the
# Rust handler's checks use: str.isspace also counts U+001C..U+001F.
_WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)


class CreateUserAccount:
    """``create_user_account``: reads ``user_info`` from the task's context
    (``email``, ``name``, ``plan``, each optional), answers with the account."""

    def __init__(self, latency: Latency | None = None) -> None:
        self.latency = latency or Latency.none()

    async def call(self, context: StepContext) -> Any:
        info = context.get_input_or("user_info", {}, dict)
        # All three are read before any is judged, as the Rust handler
        # decodes user_info whole: a mistyped field is invalid input first.
        email, name, plan = (_field(info, key) for key in ("email", "name", "plan"))
        email = email or ""
        if all(c in _WHITESPACE for c in email):
            raise PermanentError("Email address is required", error_code="MISSING_EMAIL")
        if not is_email(email):
            raise PermanentError(f"Invalid email format: {email}", error_code="INVALID_EMAIL")
        domain = email.rsplit("@", 1)[-1].lower()
        if domain in BLOCKED_DOMAINS:
            raise PermanentError(
                f"Disposable email addresses are not allowed: {domain}",
                error_code="BLOCKED_EMAIL_DOMAIN",
            )
        await self.latency.wait()
        # Derived from the step's idempotency key, so that a repeated run
        # finds the same account instead of creating a second one.
        key = uuid.uuid5(uuid.NAMESPACE_OID, context.idempotency_key)
        return {
            "user_id": f"usr_{key.hex[:24]}",
            "email": email.lower(),
            "name": name,
            "plan": "free" if plan is None else plan,
            "status": "created",
            "email_verified": False,
            "verification_token": uuid.uuid4().hex,
            "created_at": rfc3339_now(),
            "language": LANGUAGE,
        }


class UpdateUserStatus:
    """``update_user_status``: reads the account and the welcome sequence's
    result, answers with the account's new status."""

    def __init__(self, latency: Latency | None = None) -> None:
        self.latency = latency or Latency.none()

    async def call(self, context: StepContext) -> Any:
        account = Account.of(context)
        welcome = context.get_dependency_result("send_welcome_sequence")
        await self.latency.wait()
        return {
            "user_id": account.user_id,
            "status": "active",
            "welcome_sent": isinstance(welcome, dict) and welcome.get("status") == "sent",
            "activated_at": rfc3339_now(),
            "language": LANGUAGE,
        }


def is_email(email: str) -> bool:
    """``local@domain.tld``, with no spaces and one ``@``."""
    local, at, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    return bool(at and dot) and all(_clean(part) for part in (local, host, tld))


def _clean(part: str) -> bool:
    return bool(part) and "@" not in part and not any(c in _WHITESPACE for c in part)


def _field(info: dict[str, Any], key: str) -> str | None:
    """``user_info``'s ``key``: a string, or ``None`` when missing or null.

    :raises PermanentError: ``invalid_input`` if it is something else.
    """
    value = info.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PermanentError(
        f'input "user_info" is malformed: field `{key}` is not a string',
        error_code=ErrorCode.INVALID_INPUT,
    )
