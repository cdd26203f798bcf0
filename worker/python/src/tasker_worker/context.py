"""What a handler can read about the attempt it runs: the task's input, the
results of its ancestors, its template's ``initialization``, and who it is.

Every reader raises a permanent ``invalid_input`` :class:`PermanentError`
when what it asks for is missing or has the wrong shape, worded as the Rust
SDK words it: a bad input is a bug in the request or the template, which no
retry fixes, and the message says where to look.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

from tasker_worker.errors import BrokerError, ErrorCode, PermanentError, RetryableError
from tasker_worker.messages import (
    JsonObject,
    StepReady,
    WaitingForChild,
    describe,
    task_id_of,
    task_request,
)

StartChild = Callable[[JsonObject, str], Awaitable[None]]
"""Publishes a child task request (the request, its task id), confirmed."""

T = TypeVar("T")


class StepContext:
    """One attempt of one step, built from its step-ready message.

    The ``kind`` argument of the readers checks the value's type: ``dict``
    for a JSON object, ``list``, ``str``, ``int``, ``float`` (an integer is
    accepted and converted) or ``bool``. Without it, the value is returned
    as decoded from JSON.
    """

    def __init__(self, ready: StepReady, start_child: StartChild | None = None) -> None:
        """``start_child`` publishes the requests of
        :meth:`complete_with_child`; a worker gives one.

        :raises PermanentError: ``invalid_input`` if the task's context
        is not a JSON object."""
        if not isinstance(ready.context, dict):
            raise PermanentError(
                f"the task context is not a JSON object: it is {describe(ready.context)}",
                error_code=ErrorCode.INVALID_INPUT,
            )
        self._ready = ready
        self._inputs: Mapping[str, Any] = MappingProxyType(ready.context)
        self._start_child = start_child

    async def complete_with_child(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any],
        *,
        version: str | None = None,
    ) -> WaitingForChild:
        """Starts a task of template ``namespace/name`` (of any namespace),
        with ``context`` as its input, and makes its outcome this step's:
        return what this gives from ``call``::

            return await context.complete_with_child("payments", "process_refund", refund)

        The request is confirmed before this returns, and the step holds no
        worker slot while the child runs. When the child completes, the step
        completes with an object of the child's ``task_id``, ``namespace``,
        ``name``, ``version`` and ``results``; when it fails, is cancelled or
        is refused, the step fails permanently with ``child_task_failed``,
        ``child_task_cancelled`` or ``child_task_rejected``. Every attempt
        and delivery of this step asks for the same child (its idempotency
        key is ``child-of:<task_id>:<step>``), so none starts a second one.

        :raises PermanentError: ``invalid_input`` if ``context`` is not an
            object; ``child_not_started`` outside a worker.
        :raises RetryableError: ``child_not_started`` if the request could
            not be published.
        """
        if not isinstance(context, Mapping):
            raise PermanentError(
                f"the context of child task {namespace}/{name} must be a JSON object, "
                f"not {describe(context)}",
                error_code=ErrorCode.INVALID_INPUT,
            )
        ready = self._ready
        request = task_request(
            namespace,
            name,
            context,
            request_id=str(uuid.uuid4()),
            version=version,
            idempotency_key=f"child-of:{ready.task_id}:{ready.step}",
        )
        request["parent"] = {
            "task_id": ready.task_id,
            "namespace": ready.namespace,
            "name": ready.task_name,
            "version": ready.task_version,
            "step": ready.step,
            "attempt": ready.attempt,
        }
        child_task_id = task_id_of(request)
        if self._start_child is None:
            raise PermanentError(
                "this context has no broker to start a child task with; "
                "child tasks start only in a Worker",
                error_code=ErrorCode.CHILD_NOT_STARTED,
            )
        try:
            await self._start_child(request, child_task_id)
        except BrokerError as e:
            raise RetryableError(
                f"the request for child task {namespace}/{name} was not published: {e}",
                error_code=ErrorCode.CHILD_NOT_STARTED,
            ) from e
        return WaitingForChild(child_task_id)

    @property
    def message(self) -> StepReady:
        """The step-ready message this attempt came from."""
        return self._ready

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self._ready.task_id

    @property
    def namespace(self) -> str:
        """The template's namespace."""
        return self._ready.namespace

    @property
    def task_name(self) -> str:
        """The template's name."""
        return self._ready.task_name

    @property
    def task_version(self) -> str:
        """The template's version."""
        return self._ready.task_version

    @property
    def step_name(self) -> str:
        """This step's name."""
        return self._ready.step

    @property
    def attempt(self) -> int:
        """This attempt, counting from 1."""
        return self._ready.attempt

    @property
    def max_attempts(self) -> int:
        """The step's ``max_attempts``: the last attempt is ``attempt == max_attempts``."""
        return self._ready.max_attempts

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt and delivery of this step of this task:
        pass it to the services you call, so that a repeated call has no
        second effect (delivery is at least once)."""
        return self._ready.idempotency_key

    @property
    def dependencies(self) -> list[str]:
        """The step's direct dependencies, by name, as its template lists them."""
        return list(self._ready.dependencies)

    @property
    def inputs(self) -> Mapping[str, Any]:
        """The whole task context, the request's input (read-only)."""
        return self._inputs

    @property
    def initialization(self) -> Mapping[str, Any]:
        """The step's ``handler.initialization`` settings (read-only); see
        :meth:`get_initialization` for a checked read."""
        return MappingProxyType(self._ready.initialization)

    @property
    def dependency_results(self) -> Mapping[str, Any]:
        """The results this step's message carries, by step name: every
        ancestor's, or those its template's ``results_from`` names."""
        return MappingProxyType(self._ready.dependency_results)

    @overload
    def get_input(self, key: str) -> Any: ...
    @overload
    def get_input(self, key: str, kind: type[T]) -> T: ...
    def get_input(self, key: str, kind: type[Any] | None = None) -> Any:
        """The input ``key`` of the task's context.

        :raises PermanentError: ``invalid_input`` if it is missing or is not a ``kind``.
        """
        if key not in self._inputs:
            raise PermanentError(
                f"the task context has no {_quote(key)}; add it to the task request's context",
                error_code=ErrorCode.INVALID_INPUT,
            )
        return _checked(self._inputs[key], kind, lambda e: f"input {_quote(key)} is malformed: {e}")

    @overload
    def get_input_or(self, key: str, default: T) -> Any | T: ...
    @overload
    def get_input_or(self, key: str, default: T, kind: type[T]) -> T: ...
    def get_input_or(self, key: str, default: Any, kind: type[Any] | None = None) -> Any:
        """The input ``key``, or ``default`` when it is missing or null.

        :raises PermanentError: ``invalid_input`` if it is present but not a ``kind``.
        """
        value = self._inputs.get(key)
        if value is None:
            return default
        return _checked(value, kind, lambda e: f"input {_quote(key)} is malformed: {e}")

    @overload
    def get_dependency_result(self, step: str) -> Any: ...
    @overload
    def get_dependency_result(self, step: str, kind: type[T]) -> T: ...
    def get_dependency_result(self, step: str, kind: type[Any] | None = None) -> Any:
        """The result of ``step``, an ancestor of this step (a dependency, or
        a dependency's dependency, and so on).

        :raises PermanentError: ``invalid_input`` if the message does not
            carry that result (it is not an ancestor, or ``results_from``
            leaves it out), or it is not a ``kind``.
        """
        results = self._ready.dependency_results
        if step not in results:
            known = ", ".join(results) or "none"
            raise PermanentError(
                f"step {_quote(self.step_name)} has no result from {_quote(step)}; it can read "
                "only the results its message carries (its ancestors', or those its "
                f"results_from names): {known}",
                error_code=ErrorCode.INVALID_INPUT,
            )
        return _checked(
            results[step],
            kind,
            lambda e: f"the result of {_quote(step)} is not what this handler expects: {e}",
        )

    @overload
    def get_initialization(self, key: str) -> Any | None: ...
    @overload
    def get_initialization(self, key: str, kind: type[T]) -> T | None: ...
    def get_initialization(self, key: str, kind: type[Any] | None = None) -> Any:
        """The ``handler.initialization`` setting ``key``, or ``None`` when the
        template does not set it.

        :raises PermanentError: ``invalid_input`` if it is not a ``kind``.
        """
        if key not in self._ready.initialization:
            return None
        value = self._ready.initialization[key]
        return _checked(value, kind, lambda e: f"handler.initialization.{key} is malformed: {e}")


def _quote(text: str) -> str:
    """``text`` in double quotes, as the Rust SDK's messages quote names."""
    return json.dumps(text, ensure_ascii=False)


def _checked(value: Any, kind: type[Any] | None, problem: Callable[[str], str]) -> Any:
    """``value`` if it is a ``kind`` (an integer read as a float becomes
    one); else an ``invalid_input`` error worded by ``problem``."""
    if kind is None:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    detail = f"expected {_KIND_NAMES.get(kind, f'a {kind.__name__}')}, found {describe(value)}"
    raise PermanentError(problem(detail), error_code=ErrorCode.INVALID_INPUT)


_KIND_NAMES: dict[type[Any], str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}
