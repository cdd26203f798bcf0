"""The seed's user registration end to end, with every service a Python
process of its own (``python -m tasker_example_microservices <service>``)
and the Rust coordinator: once with the five handlers in five services
(``accounts`` and ``status`` splitting ``user``), and once in the usual four
with billing down. Unlike the handlers' unit tests, these need RabbitMQ,
Redis and the coordinator binary (``TASKER_BIN``, by default
``target/debug/tasker``).
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
from tasker_worker import Client, TaskFinished, topology
from tasker_worker.broker import broker_urls

AMQP_URL = os.environ.get("TASKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
# For the test's own connection: aio_pika takes one URL, so a cluster's first node.
NODE_URL = broker_urls(AMQP_URL)[0]
REDIS_URL = os.environ.get("TASKER_REDIS_URL", "redis://127.0.0.1:6379")
REPO = Path(__file__).resolve().parents[4]
TEMPLATE = REPO / "templates" / "microservices" / "user_registration.yaml"
USUAL = ("user", "billing", "preferences", "notifications")
SPLIT = ("accounts", "status", "billing", "preferences", "notifications")
STEPS = (
    "create_user_account",
    "setup_billing_profile",
    "initialize_preferences",
    "send_welcome_sequence",
    "update_user_status",
)


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
    """Starts the coordinator and the given services as processes, for a
    namespace of the test's own; stops them and deletes the namespace's
    queues at the end."""
    binary = Path(os.environ.get("TASKER_BIN", REPO / "target" / "debug" / "tasker"))
    if not binary.exists():
        pytest.fail(f"{binary} does not exist; build it (cargo build -p tasker-coordinator)")
    namespace = f"py_seed_{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(NODE_URL)
    processes: list[subprocess.Popen[bytes]] = []
    started: list[str] = []
    logs: list[Any] = []

    async def start(services: tuple[str, ...], *service_args: str) -> str:
        yaml = TEMPLATE.read_text().replace(
            "namespace_name: microservices", f"namespace_name: {namespace}"
        )
        (tmp_path / "user_registration.yaml").write_text(
            yaml.replace("initial_delay: 2", "initial_delay: 0.05")
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKER_", "OTEL_"))}
        env.update(TASKER_AMQP_URL=AMQP_URL, TASKER_REDIS_URL=REDIS_URL)
        log = (tmp_path / "processes.log").open("ab")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [str(binary), "coordinator", "--templates", str(tmp_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        for service in services:
            command = [sys.executable, "-m", "tasker_example_microservices", service]
            command += ["--namespace", namespace, "--latency-ms", "0..0", *service_args]
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        started.extend(services)
        queues = [topology.request_queue(namespace)]
        queues += [topology.service_queue(namespace, s) for s in services]
        for queue in queues:

            async def consumed(queue: str = queue) -> bool:
                return await consumers(connection, queue) >= 1

            await eventually(consumed, f"a consumer on {queue} (log: {tmp_path}/processes.log)")
        return namespace

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    channel = await connection.channel()
    queues = [topology.request_queue(namespace), topology.result_queue(namespace)]
    for queue in queues + [topology.service_queue(namespace, s) for s in started]:
        await channel.queue_delete(queue)
    await channel.exchange_delete(topology.namespace_steps_exchange(namespace))
    await connection.close()
    for log in logs:
        log.close()


async def test_a_registration_runs_across_five_python_services(stack: Stack) -> None:
    namespace = await stack(SPLIT)
    context = {"user_info": {"email": "Jane@Example.com", "name": "Jane", "plan": "pro"}}
    async with await Client.connect(AMQP_URL) as client:
        report = await client.run_task(namespace, "user_registration", context, timeout=60)

    assert isinstance(report, TaskFinished), report
    assert report.status == "complete", report
    billing = report.step("setup_billing_profile").result
    assert (billing["trial_days"], billing["billing_status"]) == (14, "trialing")
    account = report.step("create_user_account").result
    assert (account["email"], account["plan"]) == ("jane@example.com", "pro")
    assert billing["billing_id"] == f"bill_{account['user_id'][4:]}"
    sent = report.step("send_welcome_sequence").result
    assert [m["type"] for m in sent["messages"]] == ["welcome", "trial_started", "welcome"]
    assert sent["channels_used"] == ["email", "push"]
    assert sent["messages"][0]["recipient"] == "jane@example.com"
    assert sent["messages"][1]["subject"] == "Your Pro trial has started"
    activated = report.step("update_user_status").result
    assert (activated["user_id"], activated["status"]) == (account["user_id"], "active")
    assert activated["welcome_sent"] is True
    preferences = report.step("initialize_preferences").result["preferences"]
    assert preferences["notifications"] == {"email": True, "push": True, "sms": False}
    assert [report.step(step).result["language"] for step in STEPS] == ["python"] * 5


async def test_a_billing_outage_blocks_the_join_but_not_preferences(stack: Stack) -> None:
    namespace = await stack(USUAL, "--billing-down")
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
