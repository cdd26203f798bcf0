"""The ``microservices`` namespace's user registration in Python: the five
handlers of the diamond, with the validation, error codes and results of
the Rust handlers (``examples/microservices/src/lib.rs``)::

    create_user_account ─┬─▶ setup_billing_profile ──┬─▶ send_welcome_sequence ─▶ update_user_status
                         └─▶ initialize_preferences ─┘

Each handler runs in a service, and each service has its own queue, so any
of them can run in Python while the others run in another language, and a
task's steps run in several. ``user`` runs ``create_user_account`` and
``update_user_status``; ``accounts`` and ``status`` run one of the two each;
``billing``, ``preferences`` and ``notifications`` run one handler each.
Every result names its ``language``, ``python``.

Run one with ``python -m tasker_example_microservices user``.
"""

from __future__ import annotations

from tasker_worker import StepHandler, Worker

from tasker_example_microservices import billing, notifications, preferences, user
from tasker_example_microservices.account import LANGUAGE
from tasker_example_microservices.latency import Latency

NAMESPACE = "microservices"
"""The namespace these handlers serve."""

SERVICES = ("user", "accounts", "status", "billing", "preferences", "notifications")
"""The services this package runs. ``user``, ``billing``, ``preferences``
and ``notifications`` together serve each handler once; ``accounts`` and
``status`` split ``user``, to run its two handlers apart."""


def handlers(
    service: str, latency: Latency, *, billing_down: bool = False
) -> dict[str, StepHandler]:
    """``service``'s handlers, by their template ``callable``.

    :raises ValueError: for a service this package does not run.
    """
    served: dict[str, StepHandler] = {}
    if service in ("user", "accounts"):
        served[user.CREATE_CALLABLE] = user.CreateUserAccount(latency)
    if service in ("user", "status"):
        served[user.UPDATE_STATUS_CALLABLE] = user.UpdateUserStatus(latency)
    if service == "billing":
        served[billing.CALLABLE] = billing.SetupBillingProfile(latency, billing_down=billing_down)
    if service == "preferences":
        served[preferences.CALLABLE] = preferences.InitializePreferences(latency)
    if service == "notifications":
        served[notifications.CALLABLE] = notifications.SendWelcomeSequence(latency)
    if not served:
        raise ValueError(f"{service!r} is not a service here; pass one of {', '.join(SERVICES)}")
    return served


def register(
    worker: Worker, service: str, latency: Latency, *, billing_down: bool = False
) -> Worker:
    """Registers ``service``'s handlers, each under its template ``callable``.

    :raises ValueError: for a service this package does not run.
    """
    for callable_, handler in handlers(service, latency, billing_down=billing_down).items():
        worker.handler(callable_, handler)
    return worker


__all__ = ["LANGUAGE", "NAMESPACE", "SERVICES", "Latency", "handlers", "register"]
