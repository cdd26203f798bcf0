"""Fixtures for tests against the real RabbitMQ (``TASKER_AMQP_URL``) and, for
the client's tests, a real coordinator with Redis (``TASKER_REDIS_URL``,
``TASKER_BIN``). Every test makes up its own namespace, so tests cannot see
each other's messages, and deletes that namespace's queues at the end.

Nothing here sleeps to wait: :func:`eventually` polls a condition until a
deadline, and fails the test with what it last saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from tasker_worker import Worker, WorkerConfig, topology
from tasker_worker.broker import CONNECTION_ERRORS, broker_urls

AMQP_URL = os.environ.get("TASKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
# For the fixtures' own connections: aio_pika takes one URL, so a cluster's first node.
NODE_URL = broker_urls(AMQP_URL)[0]
REDIS_URL = os.environ.get("TASKER_REDIS_URL", "redis://127.0.0.1:6379")
REPO = Path(__file__).resolve().parents[3]
TASKER_BIN = Path(os.environ.get("TASKER_BIN", REPO / "target" / "debug" / "tasker"))
TESTS = Path(__file__).resolve().parent

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other test uses: ``<prefix>_<random>``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 15.0,
    what: str = "the condition",
) -> T:
    """Polls ``probe`` until ``accept`` takes its value, or fails the test
    at the deadline with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s; last seen: {value!r}")
        await asyncio.sleep(0.05)


def step_ready(
    namespace: str,
    callable_: str,
    *,
    step: str = "s1",
    context: Any = None,
    task_id: str | None = None,
    attempt: int = 1,
    max_attempts: int = 3,
    timeout_seconds: float | None = None,
    dependency_results: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A step-ready body, as the coordinator would publish it."""
    body: dict[str, Any] = {
        "protocol_version": 1,
        "task_id": task_id or str(uuid.uuid4()),
        "namespace": namespace,
        "task_name": "task",
        "task_version": "1.0.0",
        "step": step,
        "callable": callable_,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "context": {} if context is None else context,
        "initialization": {},
        "dependencies": sorted(dependency_results or {}),
        "dependency_results": dependency_results or {},
    }
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    return body


@dataclass
class Watch:
    """The messages a private queue receives, in order."""

    received: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)

    async def next(self, timeout: float = 15.0, what: str = "a message") -> AbstractIncomingMessage:
        """The next message, or the test fails at the deadline."""
        try:
            return await asyncio.wait_for(self.received.get(), timeout)
        except TimeoutError:
            pytest.fail(f"no {what} within {timeout} s")

    async def next_json(self, timeout: float = 15.0, what: str = "a message") -> dict[str, Any]:
        """The body of the next message, decoded."""
        body: dict[str, Any] = json.loads((await self.next(timeout, what)).body)
        return body

    async def next_where(
        self,
        accept: Callable[[AbstractIncomingMessage], bool],
        timeout: float = 15.0,
        what: str = "a matching message",
    ) -> AbstractIncomingMessage:
        """The next message that ``accept`` takes, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {what} within {timeout} s")
            delivery = await self.next(left, what)
            if accept(delivery):
                return delivery


class Bus:
    """The test's own view of the broker: publishing as the coordinator
    would, watching what workers publish, and looking at queues."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.created: list[str] = []
        self.exchanges: list[str] = []

    @classmethod
    async def connect(cls) -> Bus:
        connection = await aio_pika.connect(NODE_URL)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.declare_exchange(
            topology.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await channel.declare_exchange(
            topology.STEPS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            topology.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        return cls(connection, channel)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        message_type: str = topology.MessageType.STEP_READY,
    ) -> aio_pika.Message:
        """Publishes ``body`` (mandatory, confirmed) and returns the message."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        message = aio_pika.Message(
            payload,
            content_type="application/json",
            type=message_type,
            message_id=str(uuid.uuid4()),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"x-tasker-protocol-version": 1, **(headers or {})},
        )
        target = await self.channel.get_exchange(exchange, ensure=False)
        await target.publish(message, routing_key, mandatory=True)
        return message

    async def publish_step(
        self, body: bytes | dict[str, Any], namespace: str, callable_: str, **kwargs: Any
    ) -> aio_pika.Message:
        """Publishes a step-ready message to ``tasker.steps``, routed to the
        service that serves ``callable_``."""
        return await self.publish(
            topology.STEPS_EXCHANGE, topology.step_routing_key(namespace, callable_), body, **kwargs
        )

    async def watch(self, exchange: str, routing_key: str = "") -> Watch:
        """A private queue bound to ``exchange`` with ``routing_key``."""
        watch = Watch()
        queue = await self.channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=routing_key)

        async def received(message: AbstractIncomingMessage) -> None:
            await watch.received.put(message)

        await queue.consume(received, no_ack=True)
        return watch

    async def results(self, namespace: str) -> Watch:
        """Every step result of ``namespace``."""
        return await self.watch(
            topology.EVENTS_EXCHANGE, topology.step_result_routing_key(namespace)
        )

    async def queue_state(self, name: str) -> tuple[int, int] | None:
        """``(ready messages, consumers)`` of queue ``name``; ``None`` if it
        does not exist. A passive declare, on a channel of its own, since a
        missing queue closes the channel."""
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            result = queue.declaration_result
            return (result.message_count or 0, result.consumer_count or 0)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()

    async def wait_for_consumers(self, queue: str, count: int = 1) -> None:
        """Until ``queue`` has ``count`` consumers."""
        await eventually(
            lambda: self.queue_state(queue),
            lambda state: state is not None and state[1] >= count,
            what=f"{count} consumer(s) on {queue}",
        )

    def remember(self, *queues: str) -> None:
        """Queues to delete when the test ends."""
        self.created.extend(queues)

    def remember_exchange(self, *exchanges: str) -> None:
        """Exchanges to delete when the test ends."""
        self.exchanges.extend(exchanges)

    async def close(self) -> None:
        """Deletes the test's queues and exchanges, on a connection of its
        own: the test's may have been cut (a test of reconnecting, a broker
        restarted)."""
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.connection.close()
        async with await aio_pika.connect(NODE_URL) as cleanup:
            channel = await cleanup.channel()
            for name in self.created:
                try:
                    await channel.queue_delete(name)
                except aiormq.exceptions.AMQPError:
                    channel = await cleanup.channel()
            for name in self.exchanges:
                try:
                    await channel.exchange_delete(name)
                except aiormq.exceptions.AMQPError:
                    channel = await cleanup.channel()


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = await Bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
def namespace(bus: Bus) -> str:
    """A namespace of this test's own; its queues and its steps exchange are
    deleted at the end."""
    ns = unique("py")
    bus.remember(topology.request_queue(ns), topology.result_queue(ns))
    bus.remember_exchange(topology.namespace_steps_exchange(ns))
    return ns


@dataclass
class Running:
    """A worker running in this process, until :meth:`stop`."""

    worker: Worker
    task: asyncio.Task[None]
    shutdown: asyncio.Event
    queue: str
    queues: list[str]
    """The queues it consumes: ``queue``, or its partition queues."""

    async def stop(self, timeout: float = 30.0) -> None:
        self.shutdown.set()
        await asyncio.wait_for(self.task, timeout)


@pytest.fixture
async def start_worker(
    bus: Bus, namespace: str
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Starts ``Worker`` instances in this process for the test's namespace,
    each ready (consuming each of its queues) when returned; stops them at
    the end."""
    running: list[Running] = []

    async def start(handlers: dict[str, Any], *, service: str = "svc", **config: Any) -> Running:
        settings: dict[str, Any] = {"amqp_url": AMQP_URL, "service": service}
        settings.update(config)
        worker = Worker(WorkerConfig(**settings)).namespace(namespace)
        for callable_, handler in handlers.items():
            worker.handler(callable_, handler)
        queue = topology.service_queue(namespace, service)
        bus.remember(queue)
        queues = [queue]
        partitions = worker.config.partitions
        if partitions > 1:
            queues = [topology.partition_queue(namespace, service, i) for i in range(partitions)]
            bus.remember(*queues)
            bus.remember_exchange(topology.service_exchange(namespace, service))
        shutdown = asyncio.Event()
        task = asyncio.create_task(worker.run(shutdown))
        one = Running(worker, task, shutdown, queue, queues)
        running.append(one)

        async def consumed() -> None:
            for name in queues:
                await bus.wait_for_consumers(name)

        probe = asyncio.ensure_future(consumed())
        await asyncio.wait([probe, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            probe.cancel()
            task.result()  # raises what stopped the worker
            pytest.fail("the worker stopped before it consumed")
        await probe
        return one

    yield start
    for one in running:
        if not one.task.done():
            await one.stop()


@dataclass
class Process:
    """A program this test started; killed at the end if still running."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reading: bool = True

    async def line_containing(self, text: str, timeout: float = 20.0) -> str:
        """Waits for a line of its stdout that contains ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                pytest.fail(f"no line with {text!r} within {timeout} s; got {self.lines!r}")
            if self.popen.poll() is not None and not self.reading:
                pytest.fail(
                    f"the process exited ({self.popen.returncode}) before printing {text!r}"
                )
            await asyncio.sleep(0.05)

    async def wait(self, timeout: float = 30.0) -> int:
        """Its exit status, once it exits."""
        code = await eventually(
            lambda: _returncode(self.popen),
            lambda code: code is not None,
            timeout=timeout,
            what="the process's exit",
        )
        assert code is not None
        return code


async def _returncode(popen: subprocess.Popen[str]) -> int | None:
    return popen.poll()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Process]]:
    """Starts a program with extra environment; reads its stdout lines in
    the background; kills it at the end if it is still running."""
    processes: list[Process] = []

    def start(args: list[str], env: dict[str, str], stderr: Any = None) -> Process:
        environment = {**os.environ, **env}
        popen = subprocess.Popen(
            args,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        process = Process(popen)
        loop = asyncio.get_running_loop()

        def read() -> None:
            assert popen.stdout is not None
            for line in popen.stdout:
                process.lines.append(line.rstrip("\n"))
            process.reading = False

        loop.run_in_executor(None, read)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


@pytest.fixture(scope="session")
def tasker_bin() -> Path:
    """The coordinator's binary; the tests that need it fail, rather than
    skip, without it, since deploy/dev test builds it."""
    if not TASKER_BIN.exists():
        pytest.fail(
            f"{TASKER_BIN} does not exist; build it with `cargo build -p tasker-coordinator "
            "--bin tasker`, or point TASKER_BIN at it"
        )
    return TASKER_BIN


@pytest.fixture
def templates_dir() -> Iterator[Path]:
    """A directory of templates of this test's own."""
    path = Path(tempfile.mkdtemp(prefix="tasker-templates-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


PYTHON = sys.executable


@dataclass
class Coordinator:
    """A Rust coordinator (``tasker coordinator``) this test started."""

    popen: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
async def start_coordinator(
    bus: Bus, tasker_bin: Path, templates_dir: Path, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Coordinator]]]:
    """Starts a coordinator loading the given templates (file name to YAML),
    ready once it consumes the requests of each ``namespace``; stops it at
    the end with SIGTERM."""
    started: list[Coordinator] = []

    async def start(templates: dict[str, str], namespaces: list[str]) -> Coordinator:
        for name, yaml in templates.items():
            (templates_dir / name).write_text(yaml)
        # Only what the coordinator needs: a TASKER_HEALTH_ADDR or size
        # limit meant for a worker must not reach it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKER_", "OTEL_"))}
        env.update(TASKER_AMQP_URL=AMQP_URL, TASKER_REDIS_URL=REDIS_URL, RUST_LOG="info")
        log = tmp_path / f"coordinator-{len(started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(tasker_bin), "coordinator", "--templates", str(templates_dir)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        coordinator = Coordinator(popen, log)
        started.append(coordinator)
        for namespace in namespaces:
            queue = topology.request_queue(namespace)
            state = await eventually(
                lambda q=queue: _coordinator_state(bus, q, popen),  # type: ignore[misc]
                lambda s: s is None or s[1] >= 1,
                timeout=30,
                what=f"the coordinator consuming {queue} (its log: {log})",
            )
            if state is None:
                pytest.fail(f"the coordinator exited ({popen.returncode}): {log.read_text()}")
        return coordinator

    yield start
    for coordinator in started:
        if coordinator.popen.poll() is None:
            coordinator.popen.terminate()
            try:
                coordinator.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                coordinator.popen.kill()
                coordinator.popen.wait()


async def _coordinator_state(
    bus: Bus, queue: str, popen: subprocess.Popen[bytes]
) -> tuple[int, int] | None:
    """The request queue's state, or ``None`` once the coordinator exited."""
    if popen.poll() is not None:
        return None
    return await bus.queue_state(queue) or (0, 0)
