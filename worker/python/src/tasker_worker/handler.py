"""What a step handler is: an object with ``async def call(self, context)``.

One instance serves every attempt of every task, concurrently, so it holds
only shared, read-mostly state (clients, settings), never an attempt's data.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tasker_worker.context import StepContext


@runtime_checkable
class StepHandler(Protocol):
    """The user's code for one template ``callable``.

    ``call`` returns the step's result, any JSON-able value (``None``
    included), or raises :class:`~tasker_worker.PermanentError` or
    :class:`~tasker_worker.RetryableError`. Delivery is at least once: an
    attempt can run twice after a crash, so pass
    :attr:`StepContext.idempotency_key` to the services you call.
    """

    async def call(self, context: StepContext) -> Any:
        """Runs one attempt and returns its result."""
        ...
