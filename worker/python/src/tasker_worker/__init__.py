"""The Tasker SDK for Python services.

A service registers a handler per template ``callable`` and runs a
:class:`Worker`; a handler is any object with ``async def call(self,
context)``::

    from tasker_worker import PermanentError, StepContext, Worker, WorkerConfig

    class SetupBilling:
        async def call(self, context: StepContext) -> dict[str, object]:
            account = context.get_dependency_result("create_user_account", dict)
            if "user_id" not in account:
                raise PermanentError("no user id", error_code="MISSING_USER")
            return {"billing_id": "bill_" + account["user_id"][4:]}

    await (
        Worker(WorkerConfig.from_env())  # TASKER_SERVICE names the service
        .namespace("microservices")
        .handler("Microservices::StepHandlers::SetupBillingProfileHandler", SetupBilling())
        .run()
    )

The layout, one idea per module:

- :mod:`~tasker_worker.config`: :class:`WorkerConfig`, and reading it from
  the environment;
- :mod:`~tasker_worker.handler`, :mod:`~tasker_worker.context`,
  :mod:`~tasker_worker.errors`: what a handler is, what it reads, and how
  it fails;
- :mod:`~tasker_worker.worker`: the consumer loop: prefetch-bounded
  concurrency, timeouts, exceptions, dead letters, the recent-results
  cache, reconnecting, and acking only after the result is confirmed;
- :mod:`~tasker_worker.announce`: the worker's announcements;
- :mod:`~tasker_worker.client`: asking for tasks and waiting for them;
- :mod:`~tasker_worker.security`: the broker password kept out of the
  URL, and TLS (:class:`Security`);
- :mod:`~tasker_worker.broker`, :mod:`~tasker_worker.topology`,
  :mod:`~tasker_worker.messages`: RabbitMQ, the names, and the JSON on the
  wire (docs/protocol.md);
- :mod:`~tasker_worker.telemetry`, :mod:`~tasker_worker.logs`,
  :mod:`~tasker_worker.health`, :mod:`~tasker_worker.metrics`: traces,
  structured logs, ``/healthz``, ``/readyz`` and ``/metrics``;
- :mod:`~tasker_worker.shutdown`: stopping on SIGTERM or SIGINT;
- :mod:`~tasker_worker.testing`: contexts for handlers' unit tests.
"""

from tasker_worker.client import Client, Reply, Submitted
from tasker_worker.config import WorkerConfig
from tasker_worker.context import StepContext
from tasker_worker.errors import (
    BrokerError,
    ConfigError,
    ErrorCode,
    PermanentError,
    ReplyTimeoutError,
    RetryableError,
    StepError,
    TaskerError,
)
from tasker_worker.handler import StepHandler
from tasker_worker.messages import (
    StepFailure,
    StepReady,
    StepReport,
    TaskFinished,
    TaskRejected,
    WaitingForChild,
)
from tasker_worker.security import Security
from tasker_worker.shutdown import shutdown_on_signal
from tasker_worker.version import SDK_VERSION
from tasker_worker.worker import Worker

__version__ = SDK_VERSION

__all__ = [
    "SDK_VERSION",
    "BrokerError",
    "Client",
    "ConfigError",
    "ErrorCode",
    "PermanentError",
    "Reply",
    "ReplyTimeoutError",
    "RetryableError",
    "Security",
    "StepContext",
    "StepError",
    "StepFailure",
    "StepHandler",
    "StepReady",
    "StepReport",
    "Submitted",
    "TaskFinished",
    "TaskRejected",
    "TaskerError",
    "WaitingForChild",
    "Worker",
    "WorkerConfig",
    "shutdown_on_signal",
]
