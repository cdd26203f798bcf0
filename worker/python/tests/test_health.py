"""``/healthz``, ``/readyz`` and ``/metrics``, and reconnecting: the worker
talks to RabbitMQ through a TCP proxy this test can cut, so the broker
itself is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from conftest import NODE_URL, Bus, eventually, step_ready
from test_worker import ECHO, Echo
from yarl import URL

from tasker_worker.config import WorkerConfig, parse_address


class Proxy:
    """Forwards TCP connections to RabbitMQ until told to cut them; while
    ``refusing``, it hangs up on new ones at once, as a broker that is down."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.refusing = False
        self.accepted = 0
        self._pipes: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        self.accepted += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._pipes.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._pipes.discard(writer)

    def cut(self) -> None:
        """Drops every connection, as a broker that went away."""
        for writer in list(self._pipes):
            writer.close()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def http_get(address: tuple[str, int], path: str) -> tuple[int, str]:
    """``(status, body)`` of a plain HTTP GET."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_readyz_follows_the_broker_connection_and_the_worker_reconnects(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    broker = URL(NODE_URL)
    proxy = Proxy(broker.host or "127.0.0.1", broker.port or 5672)
    port = await proxy.start()
    address = ("127.0.0.1", free_port())
    echo = Echo()
    try:
        worker = await start_worker(
            {ECHO: echo},
            amqp_url=str(broker.with_host("127.0.0.1").with_port(port)),
            health_addr=address,
        )
        results = await bus.results(namespace)
        assert await http_get(address, "/readyz") == (200, "rabbitmq: up\n")
        assert await http_get(address, "/healthz") == (200, "rabbitmq: up\n")
        status, _ = await http_get(address, "/nowhere")
        assert status == 404

        proxy.refusing = True
        proxy.cut()
        await eventually(
            lambda: http_get(address, "/readyz"),
            lambda answer: answer == (503, "rabbitmq: down\n"),
            what="readyz saying 503 while the broker is away",
        )
        assert (await http_get(address, "/healthz"))[0] == 200, "alive, though not ready"

        proxy.refusing = False
        await eventually(
            lambda: http_get(address, "/readyz"),
            lambda answer: answer[0] == 200,
            what="readyz saying 200 once reconnected",
        )
        assert proxy.accepted >= 2
        # It consumes again on the new connection.
        published = {"x-tasker-published-at-ms": time.time_ns() // 1_000_000}
        ready = step_ready(namespace, ECHO, context={"n": 2})
        await bus.publish_step(ready, namespace, ECHO, headers=published)
        assert (await results.next_json())["status"] == "completed"

        status, metrics = await http_get(address, "/metrics")
        assert status == 200
        assert f'tasker_step_duration_seconds_count{{namespace="{namespace}"' in metrics
        assert f'tasker_queue_wait_seconds_count{{namespace="{namespace}"' in metrics
        assert metrics.rstrip().endswith("# EOF")
        await worker.stop()
    finally:
        await proxy.close()


def test_the_health_address_reads_from_the_environment() -> None:
    config = WorkerConfig.from_env({"TASKER_HEALTH_ADDR": "127.0.0.1:9104"})
    assert config.health_addr == ("127.0.0.1", 9104)
    assert parse_address("[::1]:80", "X") == ("::1", 80)
    with contextlib.suppress(Exception):
        parse_address("nowhere", "X")
        raise AssertionError("an address without a port is refused")
