"""A service's steps split over several queues (``TASKER_PARTITIONS``),
against the real RabbitMQ: its consistent-hash exchange spreads the steps
by task id, its workers consume every queue, and a service that was one
queue drains it."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import AMQP_URL, Bus, eventually, step_ready
from test_client import HANDLERS, template
from test_worker import ECHO, SLOW, Echo, Slow

from tasker_worker import BrokerError, Client, ConfigError, TaskFinished, topology
from tasker_worker.broker import Broker
from tasker_worker.topology import Header

SERVICE = "svc"


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = await Broker.connect(AMQP_URL, "test-partitions", heartbeat=5.0)
    yield broker
    await broker.close()


def partitioned(bus: Bus, namespace: str, partitions: int) -> list[str]:
    """The partition queues of the test's service, deleted at the end with
    its exchange and its single queue."""
    queues = [topology.partition_queue(namespace, SERVICE, i) for i in range(partitions)]
    bus.remember(topology.service_queue(namespace, SERVICE), *queues)
    bus.remember_exchange(topology.service_exchange(namespace, SERVICE))
    return queues


async def publish_steps(
    bus: Bus, namespace: str, callable_: str, count: int, **kwargs: Any
) -> set[str]:
    """Publishes ``count`` steps of as many tasks, each with its task id in
    the header the coordinator sets; returns the task ids."""
    task_ids = set()
    for _ in range(count):
        task_id = str(uuid.uuid4())
        ready = step_ready(namespace, callable_, task_id=task_id, **kwargs)
        await bus.publish_step(ready, namespace, callable_, headers={Header.TASK_ID: task_id})
        task_ids.add(task_id)
    return task_ids


async def ready_counts(bus: Bus, queues: list[str]) -> list[int]:
    """The ready messages of each of ``queues`` (-1 for a missing one)."""
    states = [await bus.queue_state(queue) for queue in queues]
    return [-1 if state is None else state[0] for state in states]


async def test_a_partitioned_service_spreads_its_steps_over_its_queues(
    bus: Bus, namespace: str, broker: Broker
) -> None:
    names = partitioned(bus, namespace, 4)
    channel = await broker.channel()
    await broker.declare_namespace(channel, namespace)
    queues = await broker.declare_service(channel, namespace, SERVICE, [ECHO], partitions=4)
    assert [queue.name for queue in queues] == names
    # No single queue: its name is the exchange's.
    assert await bus.queue_state(topology.service_queue(namespace, SERVICE)) is None

    await publish_steps(bus, namespace, ECHO, 40)
    counts = await eventually(
        lambda: ready_counts(bus, names),
        lambda counts: sum(counts) == 40,
        what="40 steps in the partition queues",
    )
    assert sum(1 for count in counts if count > 0) >= 2, counts


async def test_a_partitioned_worker_consumes_every_queue_and_announces_them(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    partitioned(bus, namespace, 4)
    announcements = await bus.watch(topology.EVENTS_EXCHANGE, topology.WORKER_ANNOUNCE_ROUTING_KEY)
    results = await bus.results(namespace)
    worker = await start_worker({ECHO: Echo()}, partitions=4)
    for queue in worker.queues:
        assert await bus.queue_state(queue) == (0, 1), queue

    task_ids = await publish_steps(bus, namespace, ECHO, 24)
    finished = set()
    for _ in task_ids:
        result = await results.next_json(what="a step result")
        assert result["status"] == "completed"
        finished.add(result["task_id"])
    assert finished == task_ids

    def mine(delivery: Any) -> bool:
        return bool(json.loads(delivery.body).get("service") == SERVICE)

    announced = json.loads((await announcements.next_where(mine)).body)
    assert announced["serves"] == [
        {
            "namespace": namespace,
            "queue": topology.service_queue(namespace, SERVICE),
            "callables": [ECHO],
            "partitions": 4,
        }
    ]


async def test_tasks_run_end_to_end_over_partitioned_queues(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    partitioned(bus, namespace, 4)
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    await start_worker(HANDLERS, partitions=4)
    async with await Client.connect(AMQP_URL) as client:
        submitted = [
            await client.create_task(namespace, "greet", {"name": f"user{i}"}) for i in range(8)
        ]
        outcomes = await asyncio.gather(*(one.wait(timeout=60) for one in submitted))

    for i, finished in enumerate(outcomes):
        assert isinstance(finished, TaskFinished), finished
        assert finished.status == "complete"
        assert finished.step("hello").result == {"greeting": f"hello user{i}"}


async def test_a_partitioned_worker_shares_its_concurrency_over_its_queues(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    partitioned(bus, namespace, 2)
    slow = Slow()
    await start_worker({SLOW: slow}, concurrency=2, partitions=2)
    results = await bus.results(namespace)
    task_ids = await publish_steps(bus, namespace, SLOW, 12, context={"seconds": 0.2})
    for _ in task_ids:
        assert (await results.next_json())["status"] == "completed"
    # A prefetch of 2 on each queue's consumer would have run up to 4.
    assert slow.most == 2


async def test_one_partition_refuses_a_service_split_over_several(
    bus: Bus, namespace: str, broker: Broker, start_worker: Any
) -> None:
    partitioned(bus, namespace, 2)
    channel = await broker.channel()
    await broker.declare_service(channel, namespace, SERVICE, [ECHO], partitions=2)

    message = (
        f"the steps of service '{SERVICE}' in namespace '{namespace}' are split over several "
        f"queues (the exchange tasker.steps.{namespace}.{SERVICE} exists): start this worker "
        "with TASKER_PARTITIONS set to the number the service's other workers use"
    )
    with pytest.raises(ConfigError) as raised:
        await broker.declare_service(channel, namespace, SERVICE, [ECHO])
    assert str(raised.value) == message
    assert await bus.queue_state(topology.service_queue(namespace, SERVICE)) is None
    # A worker stops on it rather than trying again forever.
    with pytest.raises(ConfigError, match="TASKER_PARTITIONS"):
        await start_worker({ECHO: Echo()})


async def test_a_former_single_queue_stops_receiving_steps_and_is_drained(
    bus: Bus,
    namespace: str,
    broker: Broker,
    start_worker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = partitioned(bus, namespace, 2)
    former = topology.service_queue(namespace, SERVICE)
    channel = await broker.channel()
    await broker.declare_namespace(channel, namespace)
    assert [q.name for q in await broker.declare_service(channel, namespace, SERVICE, [ECHO])] == [
        former
    ]
    # Bound to tasker.steps too, as earlier versions bound it: a step
    # reaches it once all the same.
    await (await bus.channel.get_queue(former, ensure=False)).bind(
        topology.STEPS_EXCHANGE, routing_key=topology.step_routing_key(namespace, ECHO)
    )
    left = await publish_steps(bus, namespace, ECHO, 1)
    await eventually(lambda: ready_counts(bus, [former]), lambda c: c == [1], what="the old step")

    with caplog.at_level(logging.INFO, logger="tasker_worker.broker"):
        queues = await broker.declare_service(channel, namespace, SERVICE, [ECHO], partitions=2)
    assert [queue.name for queue in queues] == [*names, former]
    assert "draining the service's former single queue" in caplog.text
    new = await publish_steps(bus, namespace, ECHO, 1)
    await eventually(
        lambda: ready_counts(bus, [*names, former]),
        lambda c: sum(c[:2]) == 1 and c[2] == 1,
        what="the new step in a partition queue, the old one where it was",
    )

    results = await bus.results(namespace)
    await start_worker({ECHO: Echo()}, partitions=2)
    finished = {(await results.next_json(what="a step result"))["task_id"] for _ in range(2)}
    assert finished == left | new
    await eventually(
        lambda: bus.queue_state(former), lambda s: s == (0, 1), what="the old queue emptied"
    )


async def test_a_broker_without_the_consistent_hash_exchange_says_to_enable_it(
    bus: Bus, namespace: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    partitioned(bus, namespace, 2)
    # RabbitMQ refuses a type it does not know, as it refuses the
    # consistent-hash one when its plugin is off.
    monkeypatch.setattr(topology, "PARTITIONED_EXCHANGE_TYPE", "x-tasker-test-unknown")
    channel = await broker.channel()
    with pytest.raises(BrokerError) as raised:
        await broker.declare_service(channel, namespace, SERVICE, [ECHO], partitions=2)
    assert not raised.value.retryable
    assert "rabbitmq-plugins enable rabbitmq_consistent_hash_exchange" in str(raised.value)
    assert "x-tasker-test-unknown" in str(raised.value)
