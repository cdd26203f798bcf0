"""The account that ``create_user_account`` made, as the steps after it read
it: the same fields, and the same refusal of a result without them, as the
Rust handlers' ``Account``. Also what every handler's result carries
besides its own fields: the time it was made and the language that made it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasker_worker import ErrorCode, PermanentError, StepContext

CREATE_USER_ACCOUNT = "create_user_account"

LANGUAGE = "python"
"""The language these handlers are written in, which each result names
(``language``), as the Rust, TypeScript and Ruby versions name theirs, so
that a task served by several languages shows which ran each step."""


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    name: str | None
    plan: str

    @classmethod
    def of(cls, context: StepContext) -> Account:
        """The account in the result of ``create_user_account``.

        :raises PermanentError: ``invalid_input`` if the step's message does
            not carry that result, or it lacks a field or mistypes one.
        """
        result = context.get_dependency_result(CREATE_USER_ACCOUNT, dict)
        return cls(
            user_id=_text(result, "user_id"),
            email=_text(result, "email"),
            name=_text(result, "name", optional=True),
            plan=_text(result, "plan"),
        )


def _text(result: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = result.get(key)
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    problem = f"missing field `{key}`" if value is None else f"field `{key}` is not a string"
    raise PermanentError(
        f'the result of "{CREATE_USER_ACCOUNT}" is not what this handler expects: {problem}',
        error_code=ErrorCode.INVALID_INPUT,
    )


def rfc3339_now() -> str:
    """The current time as the Rust handlers write it (RFC 3339, UTC)."""
    return datetime.now(UTC).isoformat()
