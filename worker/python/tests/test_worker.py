"""The worker against a real RabbitMQ: the test publishes step-ready
messages as the coordinator would, and reads what the worker publishes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from conftest import Bus, Running, step_ready

from tasker_worker import PermanentError, RetryableError, StepContext, topology

ECHO = "Tests::Echo"
FAIL = "Tests::Fail"
SLOW = "Tests::Slow"
RAISE = "Tests::Raise"


class Echo:
    """Returns its input, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, context: StepContext) -> Any:
        self.calls += 1
        return {"echo": dict(context.inputs), "attempt": context.attempt}


class Fail:
    """Fails as its input says."""

    async def call(self, context: StepContext) -> Any:
        if context.get_input("retryable", bool):
            raise RetryableError(
                "the gateway answered 503",
                error_code="GATEWAY_UNAVAILABLE",
                retry_after=context.get_input_or("retry_after", None, float),
            )
        raise PermanentError("Invalid email format: x", error_code="INVALID_EMAIL")


class Slow:
    """Sleeps for its input's ``seconds``; counts how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started = asyncio.Event()

    async def call(self, context: StepContext) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.set()
        try:
            await asyncio.sleep(context.get_input("seconds", float))
        finally:
            self.running -= 1
        return {"slept": context.get_input("seconds", float)}


class Raise:
    """A bug: raises something that is not a step error."""

    async def call(self, context: StepContext) -> Any:
        raise KeyError("user_id")


async def test_a_completed_step_echoes_its_message_and_is_acked(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    worker: Running = await start_worker({ECHO: echo})
    results = await bus.results(namespace)
    ready = step_ready(namespace, ECHO, context={"user_info": {"email": "a@b.io"}}, attempt=2)
    await bus.publish_step(ready, namespace, ECHO)

    delivery = await results.next(what="the step result")
    result = json.loads(delivery.body)
    for key in ("task_id", "namespace", "task_name", "task_version", "step", "attempt"):
        assert result[key] == ready[key], key
    assert result["protocol_version"] == 1
    assert result["status"] == "completed"
    assert result["result"] == {"echo": {"user_info": {"email": "a@b.io"}}, "attempt": 2}
    assert result["started_at"].endswith("Z")
    assert result["finished_at"] >= result["started_at"]
    # The properties every Tasker message carries.
    assert delivery.type == topology.MessageType.STEP_RESULT
    assert delivery.content_type == "application/json"
    assert delivery.delivery_mode == 2
    assert uuid.UUID(delivery.message_id or "")
    assert delivery.timestamp is not None
    headers = delivery.headers or {}
    assert headers["x-tasker-protocol-version"] == 1
    assert headers["x-tasker-task-id"] == ready["task_id"]
    assert isinstance(headers["x-tasker-published-at-ms"], int)

    await worker.stop()
    # Acked: nothing goes back to the queue when the worker closes.
    assert await bus.queue_state(worker.queue) == (0, 0)
    assert echo.calls == 1


async def test_step_errors_carry_their_code_and_retry_after(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    await start_worker({FAIL: Fail()})
    results = await bus.results(namespace)

    await bus.publish_step(
        step_ready(namespace, FAIL, context={"retryable": False}), namespace, FAIL
    )
    permanent = await results.next_json()
    assert permanent["status"] == "failed"
    assert permanent["error"] == {
        "retryable": False,
        "code": "INVALID_EMAIL",
        "message": "Invalid email format: x",
    }

    context = {"retryable": True, "retry_after": 5}
    await bus.publish_step(step_ready(namespace, FAIL, context=context), namespace, FAIL)
    retryable = await results.next_json()
    assert retryable["error"] == {
        "retryable": True,
        "code": "GATEWAY_UNAVAILABLE",
        "message": "the gateway answered 503",
        "retry_after_seconds": 5.0,
    }

    await bus.publish_step(
        step_ready(namespace, FAIL, context={"retryable": True}), namespace, FAIL
    )
    without = await results.next_json()
    assert without["error"]["retryable"] is True
    assert "retry_after_seconds" not in without["error"]


async def test_missing_or_malformed_input_is_a_permanent_invalid_input(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    await start_worker({FAIL: Fail(), ECHO: Echo()})
    results = await bus.results(namespace)

    await bus.publish_step(step_ready(namespace, FAIL, context={}), namespace, FAIL)
    missing = (await results.next_json())["error"]
    assert missing == {
        "retryable": False,
        "code": "invalid_input",
        "message": 'the task context has no "retryable"; add it to the task request\'s context',
    }

    await bus.publish_step(
        step_ready(namespace, FAIL, context={"retryable": "yes"}), namespace, FAIL
    )
    malformed = (await results.next_json())["error"]
    assert malformed["code"] == "invalid_input"
    assert malformed["message"] == (
        'input "retryable" is malformed: expected a boolean, found a string'
    )

    await bus.publish_step(step_ready(namespace, ECHO, context=[1, 2]), namespace, ECHO)
    not_object = (await results.next_json())["error"]
    assert (not_object["code"], not_object["retryable"]) == ("invalid_input", False)
    assert not_object["message"] == "the task context is not a JSON object: it is an array"


async def test_a_step_past_its_timeout_fails_retryably_and_is_cancelled(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    slow = Slow()
    await start_worker({SLOW: slow})
    results = await bus.results(namespace)
    ready = step_ready(namespace, SLOW, context={"seconds": 30}, timeout_seconds=0.2)
    await bus.publish_step(ready, namespace, SLOW)

    result = await results.next_json(timeout=10)
    assert result["status"] == "failed"
    assert result["error"] == {
        "retryable": True,
        "code": "timeout",
        "message": "the handler ran past timeout_seconds (0.2 s)",
    }
    assert slow.running == 0, "the handler was cancelled at its deadline"


async def test_an_exception_is_a_handler_panic_and_the_worker_goes_on(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    await start_worker({RAISE: Raise(), ECHO: echo})
    results = await bus.results(namespace)

    await bus.publish_step(step_ready(namespace, RAISE), namespace, RAISE)
    panic = await results.next_json()
    assert panic["error"] == {
        "retryable": False,
        "code": "handler_panic",
        "message": "the handler raised KeyError: 'user_id'",
    }
    await bus.publish_step(step_ready(namespace, ECHO, context={"n": 1}), namespace, ECHO)
    assert (await results.next_json())["status"] == "completed"


async def test_a_callable_without_handler_fails_with_handler_not_found(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    worker = await start_worker({ECHO: Echo()})
    results = await bus.results(namespace)
    # A step of another callable that reached this service's queue anyway,
    # say through a binding left from an older release.
    ready = step_ready(namespace, "Tests::Gone")
    await bus.publish("", worker.queue, ready)
    error = (await results.next_json())["error"]
    assert (error["code"], error["retryable"]) == ("handler_not_found", False)
    assert error["message"] == (
        'this worker has no handler for callable "Tests::Gone"; register one with '
        '.handler("Tests::Gone", ..) (known: Tests::Echo)'
    )


async def test_a_result_that_is_not_json_is_an_invalid_result(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    class NotJson:
        async def call(self, context: StepContext) -> Any:
            return {"when": object()}

    await start_worker({ECHO: NotJson()})
    results = await bus.results(namespace)
    await bus.publish_step(step_ready(namespace, ECHO), namespace, ECHO)
    error = (await results.next_json())["error"]
    assert (error["code"], error["retryable"]) == ("invalid_result", False)
    assert error["message"].startswith("the handler's result is not JSON: ")


async def test_a_redelivered_step_is_answered_from_the_recent_results(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    await start_worker({ECHO: echo})
    results = await bus.results(namespace)
    ready = step_ready(namespace, ECHO, context={"n": 1})

    await bus.publish_step(ready, namespace, ECHO)
    first = await results.next(what="the first result")
    # The same step and attempt again, as after a lost ack.
    await bus.publish_step(ready, namespace, ECHO)
    second = await results.next(what="the remembered result")

    assert echo.calls == 1, "the handler ran once"
    assert second.body == first.body
    assert second.message_id == first.message_id

    # The next attempt of the same step is a new run.
    await bus.publish_step({**ready, "attempt": 2}, namespace, ECHO)
    third = json.loads((await results.next(what="the next attempt's result")).body)
    assert third["attempt"] == 2
    assert echo.calls == 2


async def test_a_result_over_the_size_limit_becomes_result_too_large(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    class Big:
        async def call(self, context: StepContext) -> Any:
            return {"blob": "x" * 5000}

    await start_worker({ECHO: Big()}, max_message_bytes=4096)
    results = await bus.results(namespace)
    await bus.publish_step(step_ready(namespace, ECHO, step="extract"), namespace, ECHO)
    delivery = await results.next()
    assert len(delivery.body) <= 4096
    error = json.loads(delivery.body)["error"]
    assert (error["code"], error["retryable"]) == ("result_too_large", False)
    assert error["message"].startswith("the result of step extract makes a step result of ")
    assert "over the limit of 4096 bytes; return less" in error["message"]
    assert "TASKER_MAX_MESSAGE_BYTES" in error["message"]


async def test_concurrency_is_the_prefetch(bus: Bus, namespace: str, start_worker: Any) -> None:
    slow = Slow()
    await start_worker({SLOW: slow}, concurrency=2)
    results = await bus.results(namespace)
    for _ in range(5):
        await bus.publish_step(
            step_ready(namespace, SLOW, context={"seconds": 0.3}), namespace, SLOW
        )
    for _ in range(5):
        assert (await results.next_json())["status"] == "completed"
    assert slow.most == 2
