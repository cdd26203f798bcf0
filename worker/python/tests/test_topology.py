"""Tasker's queues carry the broker's delivery limit, and a queue an older
Tasker declared without it still serves."""

from __future__ import annotations

from typing import Any

import aiormq
from conftest import AMQP_URL, Bus

from tasker_worker import topology
from tasker_worker.broker import Broker


async def accepts(bus: Bus, queue: str, arguments: dict[str, Any]) -> bool:
    """Whether declaring ``queue`` with ``arguments`` is accepted, on a
    channel of its own: RabbitMQ refuses arguments other than the queue's."""
    channel = await bus.connection.channel()
    try:
        await channel.declare_queue(queue, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    await channel.close()
    return True


async def test_queues_carry_the_delivery_limit_and_older_ones_are_used_as_they_are(
    bus: Bus, namespace: str
) -> None:
    broker = await Broker.connect(AMQP_URL, "test-topology", heartbeat=5.0)
    try:
        channel = await broker.channel()
        await broker.declare_namespace(channel, namespace)
        requests = topology.request_queue(namespace)
        assert await accepts(bus, requests, dict(topology.QUORUM))
        assert not await accepts(bus, requests, {"x-queue-type": "quorum"})

        # A service queue an older Tasker declared, without the limit.
        older = topology.service_queue(namespace, "older")
        bus.remember(older)
        assert await accepts(bus, older, {"x-queue-type": "quorum"})
        [queue] = await broker.declare_service(channel, namespace, "older", ["work"])
        assert queue.name == older
        # The channel it was given still works.
        await broker.declare_service(channel, namespace, "older", ["more"])
    finally:
        await broker.close()
