"""The runner's arguments and the services it registers: no servers."""

from __future__ import annotations

import argparse

import pytest
from tasker_worker import Worker, WorkerConfig

from tasker_example_microservices import NAMESPACE, SERVICES, handlers, register
from tasker_example_microservices.__main__ import arguments, boolish
from tasker_example_microservices.billing import CALLABLE as BILLING
from tasker_example_microservices.billing import SetupBillingProfile
from tasker_example_microservices.latency import Latency
from tasker_example_microservices.notifications import CALLABLE as WELCOME
from tasker_example_microservices.preferences import CALLABLE as PREFERENCES
from tasker_example_microservices.user import CREATE_CALLABLE as CREATE
from tasker_example_microservices.user import UPDATE_STATUS_CALLABLE as UPDATE_STATUS


def test_the_runner_takes_a_service_and_the_demo_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKER_DEMO_LATENCY_MS", raising=False)
    monkeypatch.setenv("TASKER_DEMO_BILLING_DOWN", "yes")
    args = arguments(["billing"])
    assert args.service == "billing"
    assert args.namespace == NAMESPACE == "microservices"
    assert args.latency_ms == Latency(40, 120)
    assert args.billing_down is True
    args = arguments(["notifications", "--latency-ms", "0..0", "--billing-down", "off"])
    assert (args.latency_ms, args.billing_down) == (Latency(0, 0), False)
    for service in ("user", "accounts", "status", "preferences"):
        args = arguments([service, "--namespace", "py_tests", "--latency-ms", "5..10"])
        assert (args.service, args.namespace, args.latency_ms) == (
            service,
            "py_tests",
            Latency(5, 10),
        )
    with pytest.raises(SystemExit):
        arguments(["bill"])


def test_booleans_and_ranges_read_as_the_rust_runner_reads_them() -> None:
    assert [boolish(v) for v in ("true", "1", "On", "n", "0", "")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(argparse.ArgumentTypeError, match="write true or false"):
        boolish("maybe")
    with pytest.raises(ValueError, match=r"is not MIN\.\.MAX, for example 40\.\.120"):
        Latency.parse("40-120")
    with pytest.raises(ValueError, match="is not a number of milliseconds"):
        Latency.parse("40..soon")


def test_each_service_registers_its_callables() -> None:
    served = {
        "user": [CREATE, UPDATE_STATUS],
        "accounts": [CREATE],
        "status": [UPDATE_STATUS],
        "billing": [BILLING],
        "preferences": [PREFERENCES],
        "notifications": [WELCOME],
    }
    assert list(served) == list(SERVICES)
    for service, callables in served.items():
        worker = register(Worker(WorkerConfig(service=service)), service, Latency.none())
        assert list(worker._handlers) == callables
    with pytest.raises(
        ValueError,
        match="pass one of user, accounts, status, billing, preferences, notifications",
    ):
        register(Worker(WorkerConfig(service="bill")), "bill", Latency.none())


def test_the_usual_services_serve_each_callable_once() -> None:
    usual = ("user", "billing", "preferences", "notifications")
    callables = [c for s in usual for c in handlers(s, Latency.none())]
    assert sorted(callables) == sorted(set(callables))
    assert len(callables) == 5
    halves = [*handlers("accounts", Latency.none()), *handlers("status", Latency.none())]
    assert halves == list(handlers("user", Latency.none()))


def test_only_billing_takes_the_outage() -> None:
    billing = handlers("billing", Latency(1, 2), billing_down=True)[BILLING]
    assert isinstance(billing, SetupBillingProfile)
    assert (billing.billing_down, billing.latency) == (True, Latency(1, 2))
    assert [*handlers("user", Latency.none(), billing_down=True)] == [CREATE, UPDATE_STATUS]
