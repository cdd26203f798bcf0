"""What a handler can read about the attempt it runs: the task's input, the
results of its ancestors, its template's ``initialization``, and who it is.

Every reader raises a permanent ``invalid_input`` :class:`PermanentError`
when what it asks for is missing or has the wrong shape, worded as the Rust
SDK words it: a bad input is a bug in the request or the template, which no
retry fixes, and the message says where to look.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

from tasker_worker.errors import ErrorCode, PermanentError
from tasker_worker.messages import StepReady, describe

T = TypeVar("T")


class StepContext:
    """One attempt of one step, built from its step-ready message.

    The ``kind`` argument of the readers checks the value's type: ``dict``
    for a JSON object, ``list``, ``str``, ``int``, ``float`` (an integer is
    accepted and converted) or ``bool``. Without it, the value is returned
    as decoded from JSON.
    """

    def __init__(self, ready: StepReady) -> None:
        """:raises PermanentError: ``invalid_input`` if the task's context
        is not a JSON object."""
        if not isinstance(ready.context, dict):
            raise PermanentError(
                f"the task context is not a JSON object: it is {describe(ready.context)}",
                error_code=ErrorCode.INVALID_INPUT,
            )
        self._ready = ready
        self._inputs: Mapping[str, Any] = MappingProxyType(ready.context)

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
