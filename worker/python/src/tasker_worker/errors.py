"""How a step fails, and what else can go wrong in the SDK.

A handler fails an attempt by raising :class:`PermanentError` (no retry can
fix it) or :class:`RetryableError` (another attempt may succeed). Any other
exception is a bug in the handler: the worker reports it as a permanent
``handler_panic`` and keeps running.

The codes Tasker itself writes (``timeout``, ``invalid_input``...) are in
:class:`ErrorCode`; every SDK spells them alike, so that operators and the
coordinator see one vocabulary whatever language ran the step.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The codes Tasker's processes fail a step with (docs/protocol.md)."""

    TIMEOUT = "timeout"
    HANDLER_NOT_FOUND = "handler_not_found"
    HANDLER_PANIC = "handler_panic"
    INVALID_INPUT = "invalid_input"
    INVALID_RESULT = "invalid_result"
    NO_CHILD_TASK = "no_child_task"
    CHILD_NOT_STARTED = "child_not_started"
    CHILD_TASK_FAILED = "child_task_failed"
    CHILD_TASK_CANCELLED = "child_task_cancelled"
    CHILD_TASK_REJECTED = "child_task_rejected"
    INPUT_TOO_LARGE = "input_too_large"
    RESULT_TOO_LARGE = "result_too_large"


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter queue: the start of its
    ``x-tasker-dead-letter-reason`` header."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    WRONG_PROTOCOL_VERSION = "wrong_protocol_version"
    INVALID_MESSAGE = "invalid_message"
    REDELIVERY_LIMIT = "redelivery_limit"


class StepError(Exception):
    """Why an attempt failed: a short stable ``code`` and a sentence for
    people. Raise one of its two kinds, never this class itself."""

    retryable: bool = False

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = str(error_code)

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before the next attempt; only retryable errors
        carry it."""
        return None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class PermanentError(StepError):
    """Trying again cannot help: bad input, or a business rule says no, as in
    ``raise PermanentError("Invalid email format: x", error_code="INVALID_EMAIL")``."""

    retryable = False


class RetryableError(StepError):
    """Trying again may help: a timeout, a 503, a lock held elsewhere.

    ``retry_after`` (seconds) asks the coordinator to wait that long (at
    most a day) before the next attempt, instead of the step's backoff.
    """

    retryable = True

    def __init__(self, message: str, *, error_code: str, retry_after: float | None = None) -> None:
        super().__init__(message, error_code=error_code)
        if retry_after is not None and retry_after < 0:
            raise ValueError(f"retry_after is {retry_after}; give a number of seconds >= 0")
        self._retry_after = retry_after

    @property
    def retry_after(self) -> float | None:
        return self._retry_after


class TaskerError(Exception):
    """Something went wrong in the SDK itself, not in a step."""


class ConfigError(TaskerError):
    """A configuration value cannot work; the message says how to fix it."""


class BrokerError(TaskerError):
    """RabbitMQ could not be used: the connection, a channel or a publish
    failed. ``retryable`` says whether reconnecting may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ReplyTimeoutError(TaskerError, TimeoutError):
    """No task finished or task rejected came for a request in time."""
