"""Two services of the ``microservices`` namespace in Python: ``billing``
(``SetupBillingProfileHandler``) and ``notifications``
(``SendWelcomeSequenceHandler``), with the validation, error codes and
results of the Rust handlers (``examples/microservices/src/lib.rs``). The
namespace's other services, ``user`` and ``preferences``, stay in Rust; each
service has its own queue, so a task's steps run in both languages.

Run one with ``python -m tasker_example_microservices billing``.
"""

from __future__ import annotations

from tasker_worker import StepHandler, Worker

from tasker_example_microservices import billing, notifications
from tasker_example_microservices.latency import Latency

NAMESPACE = "microservices"
"""The namespace these handlers serve."""

SERVICES = ("billing", "notifications")
"""The services this package runs."""


def register(
    worker: Worker, service: str, latency: Latency, *, billing_down: bool = False
) -> Worker:
    """Registers ``service``'s handlers, each under its template ``callable``.

    :raises ValueError: for a service this package does not run.
    """
    handlers: dict[str, StepHandler]
    if service == "billing":
        handlers = {
            billing.CALLABLE: billing.SetupBillingProfile(latency, billing_down=billing_down)
        }
    elif service == "notifications":
        handlers = {notifications.CALLABLE: notifications.SendWelcomeSequence(latency)}
    else:
        raise ValueError(f"{service!r} is not a service here; pass one of {', '.join(SERVICES)}")
    for callable_, handler in handlers.items():
        worker.handler(callable_, handler)
    return worker


__all__ = ["NAMESPACE", "SERVICES", "Latency", "register"]
