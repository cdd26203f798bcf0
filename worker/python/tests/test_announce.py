"""The worker's announcements: at start, every interval, and ``leaving``
when it stops (docs/protocol.md, "Worker announcement")."""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from conftest import Bus, unique
from test_worker import ECHO, FAIL, Echo, Fail

from tasker_worker import SDK_VERSION, topology


async def test_the_worker_announces_itself_then_every_interval_then_leaving(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    service = unique("svc")
    announcements = await bus.watch(topology.EVENTS_EXCHANGE, topology.WORKER_ANNOUNCE_ROUTING_KEY)

    def mine(delivery: AbstractIncomingMessage) -> bool:
        return bool(json.loads(delivery.body).get("service") == service)

    worker = await start_worker(
        {FAIL: Fail(), ECHO: Echo()}, service=service, concurrency=7, announce_every=0.2
    )
    delivery = await announcements.next_where(mine, what="the first announcement")
    assert delivery.type == "tasker.worker_announcement"
    assert delivery.content_type == "application/json"
    first = json.loads(delivery.body)
    assert first["protocol_version"] == 1
    assert uuid.UUID(first["worker_id"])
    assert first["serves"] == [
        {
            "namespace": namespace,
            "queue": f"tasker.steps.{namespace}.{service}",
            "callables": [ECHO, FAIL],
        }
    ]
    assert first["language"] == "python"
    assert first["sdk_version"] == SDK_VERSION != "0.0.0"
    assert first["host"] == socket.gethostname()
    assert first["pid"] == os.getpid()
    assert first["concurrency"] == 7
    assert first["every_seconds"] == 0.2
    assert first["started_at"].endswith("Z")
    assert first["sent_at"] >= first["started_at"]
    assert "leaving" not in first

    again = json.loads((await announcements.next_where(mine, what="the next announcement")).body)
    assert again["worker_id"] == first["worker_id"]
    assert again["started_at"] == first["started_at"]
    assert again["sent_at"] > first["sent_at"]
    assert "leaving" not in again

    await worker.stop()
    while True:
        last = json.loads((await announcements.next_where(mine, what="the leaving one")).body)
        if last.get("leaving"):
            break
    assert last["leaving"] is True
    assert last["worker_id"] == first["worker_id"]


async def test_the_default_interval_is_ten_seconds(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    service = unique("svc")
    announcements = await bus.watch(topology.EVENTS_EXCHANGE, topology.WORKER_ANNOUNCE_ROUTING_KEY)
    await start_worker({ECHO: Echo()}, service=service)
    delivery = await announcements.next_where(
        lambda d: bool(json.loads(d.body).get("service") == service)
    )
    assert json.loads(delivery.body)["every_seconds"] == 10.0
