"""Stopping on a signal, with the worker in a process of its own: the first
SIGTERM stops consuming and lets the step in hand finish; a second one
exits at once; a step still running when the grace period ends goes back to
the queue."""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

from conftest import AMQP_URL, PYTHON, TESTS, Bus, Process, eventually, step_ready

from tasker_worker import topology

SLEEP = "Tests::Sleep"


async def start(spawn: Any, bus: Bus, namespace: str, grace: float = 30) -> tuple[Process, str]:
    queue = topology.service_queue(namespace, "svc")
    bus.remember(queue)
    process: Process = spawn(
        [PYTHON, str(TESTS / "worker_process.py")],
        {
            "TASKER_AMQP_URL": AMQP_URL,
            "TASKER_SERVICE": "svc",
            "TEST_NAMESPACE": namespace,
            "TEST_SHUTDOWN_GRACE": str(grace),
        },
        stderr=subprocess.STDOUT,
    )
    await bus.wait_for_consumers(queue)
    return process, queue


async def stopped_consuming(process: Process) -> None:
    """Until the worker says it cancelled its consumer. (The queue's
    consumer count cannot tell: a quorum queue counts a cancelled consumer
    until its unacked steps are settled.)"""
    await process.line_containing("stopping: finishing in-flight steps")


async def test_sigterm_stops_consuming_and_lets_the_step_in_hand_finish(
    bus: Bus, namespace: str, spawn: Any
) -> None:
    process, queue = await start(spawn, bus, namespace)
    results = await bus.results(namespace)
    announcements = await bus.watch(topology.EVENTS_EXCHANGE, topology.WORKER_ANNOUNCE_ROUTING_KEY)
    in_hand = step_ready(namespace, SLEEP, context={"seconds": 1.5})
    await bus.publish_step(in_hand, namespace, SLEEP)
    await process.line_containing(f"started {in_hand['task_id']}")

    process.popen.send_signal(signal.SIGTERM)
    await stopped_consuming(process)
    # Published after the worker stopped consuming: it must wait for the
    # next worker.
    later = step_ready(namespace, SLEEP, context={"seconds": 0.1})
    await bus.publish_step(later, namespace, SLEEP)

    result = await results.next_json(what="the result of the step in hand")
    assert (result["task_id"], result["status"]) == (in_hand["task_id"], "completed")
    assert await process.wait() == 0
    assert "stopped" in process.lines
    assert await bus.queue_state(queue) == (1, 0), "the later step waits in the queue"
    assert f"started {later['task_id']}" not in process.lines
    leaving = await announcements.next_where(
        lambda d: (
            json.loads(d.body).get("leaving") is True
            and json.loads(d.body)["serves"][0]["queue"] == queue
        ),
        what="the leaving announcement",
    )
    assert json.loads(leaving.body)["pid"] == process.popen.pid


async def test_a_second_signal_exits_at_once_and_the_step_goes_back(
    bus: Bus, namespace: str, spawn: Any
) -> None:
    process, queue = await start(spawn, bus, namespace)
    ready = step_ready(namespace, SLEEP, context={"seconds": 60})
    await bus.publish_step(ready, namespace, SLEEP)
    await process.line_containing(f"started {ready['task_id']}")

    process.popen.send_signal(signal.SIGTERM)
    await stopped_consuming(process)
    process.popen.send_signal(signal.SIGTERM)
    assert await process.wait(timeout=10) == 130
    await eventually(
        lambda: bus.queue_state(queue),
        lambda state: state == (1, 0),
        what="the step back in its queue",
    )


async def test_a_step_past_the_grace_period_goes_back_to_the_queue(
    bus: Bus, namespace: str, spawn: Any
) -> None:
    process, queue = await start(spawn, bus, namespace, grace=0.5)
    results = await bus.results(namespace)
    ready = step_ready(namespace, SLEEP, context={"seconds": 60})
    await bus.publish_step(ready, namespace, SLEEP)
    await process.line_containing(f"started {ready['task_id']}")

    process.popen.send_signal(signal.SIGTERM)
    assert await process.wait(timeout=15) == 0
    assert "stopped" in process.lines
    await eventually(
        lambda: bus.queue_state(queue),
        lambda state: state == (1, 0),
        what="the step back in its queue",
    )
    assert results.received.empty(), "no result for a step that did not finish"
