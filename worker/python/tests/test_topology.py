"""Tasker's queues carry the broker's delivery limit, and a queue an older
Tasker declared without it still serves; a service's steps reach it through
its namespace's steps exchange."""

from __future__ import annotations

from typing import Any

import aiormq
import pytest
from conftest import AMQP_URL, Bus, step_ready
from test_worker import ECHO, Echo

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


async def test_a_workers_steps_reach_it_through_its_namespaces_exchange_only(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    worker = await start_worker({ECHO: echo})
    results = await bus.results(namespace)
    key = topology.step_routing_key(namespace, ECHO)
    steps = await bus.channel.get_exchange(
        topology.namespace_steps_exchange(namespace), ensure=False
    )
    # Without the namespace's exchange bound to tasker.steps, the step
    # reaches no queue: the worker bound its own to nothing else.
    await steps.unbind(topology.STEPS_EXCHANGE, routing_key=key)
    with pytest.raises(aiormq.exceptions.PublishError):
        await bus.publish_step(step_ready(namespace, ECHO), namespace, ECHO)
    assert await bus.queue_state(worker.queue) == (0, 1)

    await steps.bind(topology.STEPS_EXCHANGE, routing_key=key)
    await bus.publish_step(step_ready(namespace, ECHO), namespace, ECHO)
    assert (await results.next_json(what="a step result"))["status"] == "completed"
    assert echo.calls == 1
