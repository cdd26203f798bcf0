"""The JSON bodies of Tasker's messages (docs/protocol.md, "Messages"):
decoding what a worker or a client receives, with the same checks and
dead-letter reasons as the Rust ``tasker_protocol::message::decode``, and
encoding what it sends.

Decoding is strict where a wrong shape would mislead a handler (a missing
field, a mistyped one) and lenient where the protocol says so: unknown
fields are ignored, and ``null`` reads as "no value" for optional fields.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasker_worker.errors import DeadLetterReason, StepError
from tasker_worker.topology import PROTOCOL_VERSION

JsonObject = dict[str, Any]

TASK_ID_NAMESPACE = uuid.UUID("6b1f0c52-3e0a-4c8e-9d43-7a521f0eb7c1")
"""The namespace UUID of task ids derived from an idempotency key."""


class DecodeError(Exception):
    """Why a message cannot be used: its dead-letter ``reason`` and a
    detail for people. The header it gets is ``<reason>: <detail>``."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def header(self) -> str:
        """The ``x-tasker-dead-letter-reason`` header of the message."""
        return f"{self.reason}: {self.detail}"


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """An RFC 3339 timestamp in UTC with milliseconds, as Tasker writes them:
    ``2025-03-14T09:26:54.318Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(message: Mapping[str, Any]) -> bytes:
    """A message as compact UTF-8 JSON.

    :raises ValueError: for NaN or infinities, which JSON cannot carry.
    :raises TypeError: for values that are not JSON.
    """
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def decode_object(body: bytes, max_bytes: int) -> JsonObject:
    """A message's JSON object, once its size, its syntax and its protocol
    version are checked.

    :raises DecodeError: ``too_large``, ``not_json``, ``wrong_protocol_version``
        or ``invalid_message``.
    """
    if len(body) > max_bytes:
        raise DecodeError(
            DeadLetterReason.TOO_LARGE,
            f"payload of {len(body)} bytes is over the limit of {max_bytes} bytes",
        )
    try:
        message = json.loads(body, parse_constant=_no_constants)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
        raise DecodeError(DeadLetterReason.NOT_JSON, f"payload is not JSON: {e}") from None
    if not isinstance(message, dict):
        raise DecodeError(
            DeadLetterReason.INVALID_MESSAGE,
            f"payload does not match the message schema: it is {describe(message)}, "
            "not a JSON object",
        )
    version = message.get("protocol_version")
    if version is not None and not (_is_int(version) and version == PROTOCOL_VERSION):
        found = str(version) if _is_int(version) and version >= 0 else "not a number"
        raise DecodeError(
            DeadLetterReason.WRONG_PROTOCOL_VERSION,
            f"protocol_version is {found}, this process speaks only {PROTOCOL_VERSION}; "
            f"resend the message as version {PROTOCOL_VERSION} or upgrade the consumer",
        )
    if version is None:
        raise _invalid("missing field protocol_version")
    return message


@dataclass(frozen=True)
class StepReady:
    """The coordinator asks a worker to run one attempt of one step."""

    task_id: str
    namespace: str
    task_name: str
    task_version: str
    step: str
    callable: str
    attempt: int
    max_attempts: int
    timeout_seconds: float | None
    context: Any
    """The task's context; a JSON object in every message Tasker sends, and
    the handler's context refuses anything else as ``invalid_input``."""
    initialization: JsonObject
    dependencies: list[str]
    dependency_results: JsonObject

    @property
    def idempotency_key(self) -> str:
        """``<task_id>:<step>``: the same for every attempt and delivery."""
        return f"{self.task_id}:{self.step}"

    def result(
        self, started_at: datetime, finished_at: datetime, outcome: Mapping[str, Any]
    ) -> JsonObject:
        """The step result of this attempt: it echoes the task, the template,
        the step and the attempt, as the protocol requires. ``outcome`` is
        :func:`completed` or :func:`failed`."""
        return {
            "protocol_version": PROTOCOL_VERSION,
            "task_id": self.task_id,
            "namespace": self.namespace,
            "task_name": self.task_name,
            "task_version": self.task_version,
            "step": self.step,
            "attempt": self.attempt,
            "started_at": timestamp(started_at),
            "finished_at": timestamp(finished_at),
            **outcome,
        }


def decode_step_ready(body: bytes, max_bytes: int) -> StepReady:
    """A step-ready message, checked as the Rust worker checks it.

    :raises DecodeError: when it cannot be used.
    """
    m = decode_object(body, max_bytes)
    task_id = _field(m, "task_id", str, "a UUID string")
    try:
        task_id = str(uuid.UUID(task_id))
    except ValueError:
        raise _invalid(f"field task_id is {task_id!r}, not a UUID") from None
    timeout = m.get("timeout_seconds")
    if timeout is not None and (not _is_number(timeout) or timeout < 0):
        raise _invalid(f"field timeout_seconds is {describe(timeout)}, not a number of seconds")
    if "context" not in m:
        raise _invalid("missing field context")
    dependencies = m.get("dependencies")
    if dependencies is None:
        dependencies = []
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise _invalid("field dependencies must be an array of step names")
    return StepReady(
        task_id=task_id,
        namespace=_field(m, "namespace", str, "a string"),
        task_name=_field(m, "task_name", str, "a string"),
        task_version=_field(m, "task_version", str, "a string"),
        step=_field(m, "step", str, "a string"),
        callable=_field(m, "callable", str, "a string"),
        attempt=_count(m, "attempt"),
        max_attempts=_count(m, "max_attempts"),
        timeout_seconds=None if timeout is None else float(timeout),
        context=m["context"],
        initialization=_field(m, "initialization", dict, "an object"),
        dependencies=dependencies,
        dependency_results=_field(m, "dependency_results", dict, "an object"),
    )


@dataclass(frozen=True)
class WaitingForChild:
    """What :meth:`StepContext.complete_with_child` gives, for the handler
    to return: the step's outcome will be its child task's."""

    child_task_id: str


def waiting_for_child(child_task_id: str) -> JsonObject:
    """The outcome of an attempt that started a child task."""
    return {"status": "waiting_for_child", "child_task_id": child_task_id}


def completed(result: Any) -> JsonObject:
    """The outcome of an attempt that returned ``result``."""
    return {"status": "completed", "result": result}


def failed(error: StepError) -> JsonObject:
    """The outcome of an attempt that failed with ``error``."""
    failure: JsonObject = {
        "retryable": error.retryable,
        "code": error.code,
        "message": error.message,
    }
    if error.retry_after is not None:
        failure["retry_after_seconds"] = float(error.retry_after)
    return {"status": "failed", "error": failure}


def task_request(
    namespace: str,
    name: str,
    context: Mapping[str, Any],
    *,
    request_id: str,
    version: str | None = None,
    idempotency_key: str | None = None,
) -> JsonObject:
    """A task request; optional fields are left out when they have no value."""
    request: JsonObject = {
        "protocol_version": PROTOCOL_VERSION,
        "request_id": request_id,
        "namespace": namespace,
        "name": name,
        "context": dict(context),
    }
    if version is not None:
        request["version"] = version
    if idempotency_key is not None:
        request["idempotency_key"] = idempotency_key
    return request


def task_id_of(request: Mapping[str, Any]) -> str:
    """The id of the task a request asks for, known before any coordinator
    sees it: derived from the idempotency key when there is one, else the
    request id (docs/protocol.md, "The task id")."""
    key = request.get("idempotency_key")
    if key is not None:
        name = f"{request['namespace']}/{request['name']}/{key}"
        return str(uuid.uuid5(TASK_ID_NAMESPACE, name))
    return str(request["request_id"])


@dataclass(frozen=True)
class StepFailure:
    """Why an attempt failed, as a step result or a report carries it."""

    retryable: bool
    code: str
    message: str
    retry_after_seconds: float | None = None

    @classmethod
    def from_json(cls, error: Mapping[str, Any]) -> StepFailure:
        """Reads the ``error`` object of a result or a report."""
        retry_after = error.get("retry_after_seconds")
        return cls(
            retryable=bool(error.get("retryable", False)),
            code=str(error.get("code", "")),
            message=str(error.get("message", "")),
            retry_after_seconds=None if retry_after is None else float(retry_after),
        )


@dataclass(frozen=True)
class StepReport:
    """One step of a finished task."""

    name: str
    state: str
    attempts: int
    started_at: str | None = None
    finished_at: str | None = None
    result: Any = None
    """The result of a completed step; ``None`` also when it has none (see
    :attr:`has_result`)."""
    has_result: bool = False
    error: StepFailure | None = None
    child_task_id: str | None = None


@dataclass(frozen=True)
class TaskFinished:
    """A task's final state, once every step has ended."""

    task_id: str
    namespace: str
    name: str
    version: str
    status: str
    """``complete``, ``failed`` or ``cancelled``."""
    created_at: str
    finished_at: str
    steps: list[StepReport]
    results_omitted: bool = False
    request_id: str | None = None
    """In the copy sent to a requester's ``reply_to``: that requester's
    request id. ``None`` in the copy on the events exchange."""
    raw: JsonObject = field(default_factory=dict, repr=False)

    def step(self, name: str) -> StepReport:
        """The report of step ``name``.

        :raises KeyError: naming the steps there are.
        """
        for report in self.steps:
            if report.name == name:
                return report
        known = ", ".join(s.name for s in self.steps) or "none"
        raise KeyError(f"task {self.task_id} has no step {name!r}; its steps: {known}")

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> TaskFinished:
        """Reads a task-finished body.

        :raises DecodeError: ``invalid_message`` when a field is missing.
        """
        try:
            steps = [
                StepReport(
                    name=str(s["name"]),
                    state=str(s["state"]),
                    attempts=int(s["attempts"]),
                    started_at=s.get("started_at"),
                    finished_at=s.get("finished_at"),
                    result=s.get("result"),
                    has_result="result" in s,
                    error=None if s.get("error") is None else StepFailure.from_json(s["error"]),
                    child_task_id=s.get("child_task_id"),
                )
                for s in m["steps"]
            ]
            return cls(
                task_id=str(m["task_id"]),
                namespace=str(m["namespace"]),
                name=str(m["name"]),
                version=str(m["version"]),
                status=str(m["status"]),
                created_at=str(m["created_at"]),
                finished_at=str(m["finished_at"]),
                steps=steps,
                results_omitted=bool(m.get("results_omitted", False)),
                request_id=None if m.get("request_id") is None else str(m["request_id"]),
                raw=dict(m),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise _invalid(f"not a task-finished message: {e!r}") from None


@dataclass(frozen=True)
class TaskRejected:
    """The coordinator refused a request; ``reason`` says what to do."""

    code: str
    reason: str
    request_id: str | None = None
    namespace: str | None = None
    name: str | None = None

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> TaskRejected:
        """Reads a task-rejected body.

        :raises DecodeError: ``invalid_message`` when a field is missing.
        """
        if not isinstance(m.get("code"), str) or not isinstance(m.get("reason"), str):
            raise _invalid("not a task-rejected message: it needs code and reason")
        return cls(
            code=m["code"],
            reason=m["reason"],
            request_id=m.get("request_id"),
            namespace=m.get("namespace"),
            name=m.get("name"),
        )


def describe(value: Any) -> str:
    """What kind of JSON value ``value`` is, for messages: ``a string``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _invalid(detail: str) -> DecodeError:
    return DecodeError(
        DeadLetterReason.INVALID_MESSAGE, f"payload does not match the message schema: {detail}"
    )


def _field(m: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    if name not in m or m[name] is None:
        raise _invalid(f"missing field {name}")
    value = m[name]
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise _invalid(f"field {name} is {describe(value)}, expected {what}")
    return value


def _count(m: Mapping[str, Any], name: str) -> int:
    value = _field(m, name, int, "a non-negative integer")
    if not 0 <= value <= 0xFFFF_FFFF:
        raise _invalid(f"field {name} is {value}, expected a non-negative integer")
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
