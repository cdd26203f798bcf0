"""Building a :class:`StepContext` without a broker, for the unit tests of a
service's handlers: call ``await Handler().call(step_context(...))`` and
check the result, or the :class:`StepError` it raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasker_worker.context import StepContext
from tasker_worker.messages import StepReady

EXAMPLE_TASK_ID = "5b0c7d1e-8f1a-4c2b-9d3e-0a1b2c3d4e5f"


def step_ready(
    *,
    context: Any = None,
    dependency_results: Mapping[str, Any] | None = None,
    initialization: Mapping[str, Any] | None = None,
    dependencies: Sequence[str] | None = None,
    step: str = "step",
    callable_: str = "Handler",
    namespace: str = "tests",
    task_name: str = "task",
    task_version: str = "1.0.0",
    task_id: str = EXAMPLE_TASK_ID,
    attempt: int = 1,
    max_attempts: int = 3,
    timeout_seconds: float | None = None,
) -> StepReady:
    """A step-ready message as the coordinator would send it; every field
    has a default, and ``context`` defaults to ``{}``."""
    results = dict(dependency_results or {})
    return StepReady(
        task_id=task_id,
        namespace=namespace,
        task_name=task_name,
        task_version=task_version,
        step=step,
        callable=callable_,
        attempt=attempt,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        context={} if context is None else context,
        initialization=dict(initialization or {}),
        dependencies=list(results if dependencies is None else dependencies),
        dependency_results=results,
    )


def step_context(**fields: Any) -> StepContext:
    """The context of an attempt of :func:`step_ready` (same arguments).

    :raises PermanentError: ``invalid_input`` if ``context`` is not a dict.
    """
    return StepContext(step_ready(**fields))
