"""The runner's arguments and the services it registers: no servers."""

from __future__ import annotations

import argparse

import pytest
from tasker_worker import Worker, WorkerConfig

from tasker_example_microservices import NAMESPACE, register
from tasker_example_microservices.__main__ import arguments, boolish
from tasker_example_microservices.billing import CALLABLE as BILLING
from tasker_example_microservices.latency import Latency
from tasker_example_microservices.notifications import CALLABLE as WELCOME


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
    with pytest.raises(SystemExit):
        arguments(["user"])


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


def test_each_service_registers_its_callable() -> None:
    for service, callable_ in (("billing", BILLING), ("notifications", WELCOME)):
        worker = register(Worker(WorkerConfig(service=service)), service, Latency.none())
        assert list(worker._handlers) == [callable_]
    with pytest.raises(ValueError, match="pass one of billing, notifications"):
        register(Worker(WorkerConfig(service="user")), "user", Latency.none())
