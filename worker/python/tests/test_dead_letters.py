"""Messages a worker cannot use go to the dead-letter exchange with the
reason in a header, confirmed, and only then are acked; a step delivered
too often goes there too (docs/protocol.md, "Messages a consumer cannot
use")."""

from __future__ import annotations

import json
import re
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from conftest import Bus, eventually, step_ready
from test_worker import ECHO, Echo

from tasker_worker import topology


def from_queue(queue: str) -> Any:
    def accept(delivery: AbstractIncomingMessage) -> bool:
        return (delivery.headers or {}).get("x-tasker-original-queue") == queue

    return accept


async def test_undecodable_steps_are_dead_lettered_with_their_reason_then_acked(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    worker = await start_worker({ECHO: echo}, max_message_bytes=2048)
    dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE)
    good = step_ready(namespace, ECHO)
    missing = {k: v for k, v in good.items() if k != "task_id"}
    cases: list[tuple[bytes, str]] = [
        (b"not json at all", r"^not_json: payload is not JSON: "),
        (
            json.dumps({**good, "protocol_version": 2}).encode(),
            r"^wrong_protocol_version: protocol_version is 2, this process speaks only 1; ",
        ),
        (
            json.dumps(missing).encode(),
            r"^invalid_message: payload does not match the message schema: missing field task_id$",
        ),
        (
            json.dumps({**good, "attempt": "one"}).encode(),
            r"^invalid_message: .*field attempt is a string, expected a non-negative integer$",
        ),
        (
            json.dumps(step_ready(namespace, ECHO, context={"pad": "x" * 3000})).encode(),
            r"^too_large: payload of \d+ bytes is over the limit of 2048 bytes$",
        ),
    ]
    for body, reason in cases:
        sent = await bus.publish_step(body, namespace, ECHO, headers={"x-custom": "kept"})
        delivery = await dead.next_where(from_queue(worker.queue), what=f"a dead letter ({reason})")
        headers = delivery.headers or {}
        assert re.search(reason, str(headers["x-tasker-dead-letter-reason"])), headers
        assert headers["x-tasker-original-exchange"] == topology.STEPS_EXCHANGE
        assert headers["x-tasker-original-routing-key"] == f"{namespace}/{ECHO}"
        assert headers["x-custom"] == "kept", "the original headers go with it"
        assert delivery.body == body
        assert delivery.message_id == sent.message_id
        assert delivery.delivery_mode == 2

    assert echo.calls == 0
    await worker.stop()
    # Every one was acked once dead-lettered: none comes back.
    assert await bus.queue_state(worker.queue) == (0, 0)


async def test_a_step_redelivered_too_often_is_dead_lettered(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    queue_name = topology.service_queue(namespace, "svc")
    bus.remember(queue_name)
    channel = await bus.connection.channel()
    queue = await channel.declare_queue(queue_name, durable=True, arguments=dict(topology.QUORUM))
    ready = step_ready(namespace, ECHO)
    await bus.publish("", queue_name, ready)
    # Delivered and handed back until RabbitMQ counts more than five
    # deliveries, as when a step crashes every worker that takes it.
    seen = 0
    while seen <= 5:
        message = await eventually(
            lambda: queue.get(no_ack=False, fail=False),
            lambda m: m is not None,
            what="the step in its queue",
        )
        assert isinstance(message, aio_pika.IncomingMessage)
        seen = int(str((message.headers or {}).get("x-delivery-count", 0)))
        await message.reject(requeue=True)
    await channel.close()

    echo = Echo()
    dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE)
    await start_worker({ECHO: echo})
    delivery = await dead.next_where(from_queue(queue_name), what="the dead letter")
    reason = str((delivery.headers or {})["x-tasker-dead-letter-reason"])
    assert re.fullmatch(
        r"redelivery_limit: redelivered \d+ times, over the limit of 5; "
        r"the step may crash its worker",
        reason,
    ), reason
    assert json.loads(delivery.body)["task_id"] == ready["task_id"]
    assert echo.calls == 0
