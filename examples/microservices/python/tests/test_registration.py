"""The seed's user registration end to end, with the Python services in
processes of their own: ``python -m tasker_example_microservices billing``
and ``... notifications``, beside stand-ins for the ``user`` and
``preferences`` services (Rust in production), with the Rust coordinator.
Unlike the handlers' unit tests, these need RabbitMQ, Redis and the
coordinator binary (``TASKER_BIN``, by default ``target/debug/tasker``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest
from tasker_worker import (
    Client,
    StepContext,
    StepHandler,
    TaskFinished,
    Worker,
    WorkerConfig,
    topology,
)

AMQP_URL = os.environ.get("TASKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
REDIS_URL = os.environ.get("TASKER_REDIS_URL", "redis://127.0.0.1:6379")
REPO = Path(__file__).resolve().parents[4]
TEMPLATE = REPO / "templates" / "microservices" / "user_registration.yaml"
SERVICES = ("user", "billing", "preferences", "notifications")


class CreateUserAccount:
    """A stand-in for the Rust user service's first step."""

    async def call(self, context: StepContext) -> Any:
        info = context.get_input_or("user_info", {}, dict)
        key = uuid.uuid5(uuid.NAMESPACE_OID, context.idempotency_key).hex
        return {
            "user_id": f"usr_{key[:24]}",
            "email": info["email"].lower(),
            "name": info.get("name"),
            "plan": info.get("plan") or "free",
            "status": "created",
        }


class InitializePreferences:
    async def call(self, context: StepContext) -> Any:
        account = context.get_dependency_result("create_user_account", dict)
        push = account["plan"] != "free"
        return {
            "user_id": account["user_id"],
            "preferences": {"notifications": {"email": True, "push": push, "sms": False}},
        }


class UpdateUserStatus:
    async def call(self, context: StepContext) -> Any:
        welcome = context.get_dependency_result("send_welcome_sequence", dict)
        return {"status": "active", "welcome_sent": welcome["status"] == "sent"}


async def eventually(probe: Callable[[], Coroutine[Any, Any, bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within 30 s")
        await asyncio.sleep(0.05)


async def consumers(connection: aio_pika.abc.AbstractConnection, queue: str) -> int:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0
    finally:
        if not channel.is_closed:
            await channel.close()


Stack = Callable[..., Coroutine[Any, Any, str]]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Starts the coordinator, the two Python services as processes and the
    two stand-ins in this process, for a namespace of the test's own;
    stops them and deletes the namespace's queues at the end."""
    binary = Path(os.environ.get("TASKER_BIN", REPO / "target" / "debug" / "tasker"))
    if not binary.exists():
        pytest.fail(f"{binary} does not exist; build it (cargo build -p tasker-coordinator)")
    namespace = f"py_seed_{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(AMQP_URL)
    processes: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    logs: list[Any] = []

    async def start(*service_args: str) -> str:
        yaml = TEMPLATE.read_text().replace(
            "namespace_name: microservices", f"namespace_name: {namespace}"
        )
        (tmp_path / "user_registration.yaml").write_text(
            yaml.replace("initial_delay: 2", "initial_delay: 0.05")
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKER_", "OTEL_"))}
        env.update(TASKER_AMQP_URL=AMQP_URL, TASKER_REDIS_URL=REDIS_URL)
        log = logs[0] if logs else (tmp_path / "processes.log").open("ab")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [str(binary), "coordinator", "--templates", str(tmp_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        for service in ("billing", "notifications"):
            command = [sys.executable, "-m", "tasker_example_microservices", service]
            command += ["--namespace", namespace, "--latency-ms", "0..0", *service_args]
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        stand_ins: dict[str, dict[str, StepHandler]] = {
            "user": {
                "Microservices::StepHandlers::CreateUserAccountHandler": CreateUserAccount(),
                "Microservices::StepHandlers::UpdateUserStatusHandler": UpdateUserStatus(),
            },
            "preferences": {
                "Microservices::StepHandlers::InitializePreferencesHandler": InitializePreferences()
            },
        }
        for service, handlers in stand_ins.items():
            worker = Worker(WorkerConfig(amqp_url=AMQP_URL, service=service)).namespace(namespace)
            for callable_, handler in handlers.items():
                worker.handler(callable_, handler)
            workers.append(asyncio.create_task(worker.run(stop)))
        queues = [topology.request_queue(namespace)]
        queues += [topology.service_queue(namespace, s) for s in SERVICES]
        for queue in queues:

            async def consumed(queue: str = queue) -> bool:
                return await consumers(connection, queue) >= 1

            await eventually(consumed, f"a consumer on {queue} (log: {tmp_path}/processes.log)")
        return namespace

    yield start
    stop.set()
    await asyncio.gather(*workers, return_exceptions=True)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    channel = await connection.channel()
    queues = [topology.request_queue(namespace), topology.result_queue(namespace)]
    for queue in queues + [topology.service_queue(namespace, s) for s in SERVICES]:
        await channel.queue_delete(queue)
    await connection.close()
    for log in logs:
        log.close()


async def test_a_registration_runs_across_the_python_and_stand_in_services(stack: Stack) -> None:
    namespace = await stack()
    context = {"user_info": {"email": "Jane@Example.com", "name": "Jane", "plan": "pro"}}
    async with await Client.connect(AMQP_URL) as client:
        report = await client.run_task(namespace, "user_registration", context, timeout=60)

    assert isinstance(report, TaskFinished), report
    assert report.status == "complete", report
    billing = report.step("setup_billing_profile").result
    assert (billing["trial_days"], billing["billing_status"]) == (14, "trialing")
    account = report.step("create_user_account").result
    assert billing["billing_id"] == f"bill_{account['user_id'][4:]}"
    sent = report.step("send_welcome_sequence").result
    assert [m["type"] for m in sent["messages"]] == ["welcome", "trial_started", "welcome"]
    assert sent["channels_used"] == ["email", "push"]
    assert sent["messages"][0]["recipient"] == "jane@example.com"
    assert sent["messages"][1]["subject"] == "Your Pro trial has started"
    assert report.step("update_user_status").result == {"status": "active", "welcome_sent": True}


async def test_a_billing_outage_blocks_the_join_but_not_preferences(stack: Stack) -> None:
    namespace = await stack("--billing-down")
    context = {"user_info": {"email": "a@b.io", "name": "A", "plan": "pro"}}
    async with await Client.connect(AMQP_URL) as client:
        report = await client.run_task(namespace, "user_registration", context, timeout=60)

    assert isinstance(report, TaskFinished), report
    assert report.status == "failed"
    billing = report.step("setup_billing_profile")
    assert (billing.state, billing.attempts) == ("failed", 3)
    assert billing.error is not None
    assert (billing.error.code, billing.error.retryable) == ("BILLING_SERVICE_UNAVAILABLE", True)
    assert report.step("initialize_preferences").state == "completed"
    for blocked in ("send_welcome_sequence", "update_user_status"):
        assert (report.step(blocked).state, report.step(blocked).attempts) == ("blocked", 0)
