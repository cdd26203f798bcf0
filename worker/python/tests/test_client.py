"""The client against a real coordinator (the Rust ``tasker`` binary, with
Redis): tasks asked for from Python, run by a Python worker, and their
outcome on the client's private reply queue."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import AMQP_URL, Bus

from tasker_worker import (
    Client,
    PermanentError,
    ReplyTimeoutError,
    RetryableError,
    StepContext,
    StepReady,
    TaskFinished,
    TaskRejected,
    topology,
)


def template(namespace: str, name: str = "greet") -> str:
    return f"""
name: {name}
namespace_name: {namespace}
version: 1.0.0
steps:
  - name: hello
    handler:
      callable: Tests::Hello
    retry:
      max_attempts: 3
      backoff: fixed
      initial_delay: 30
  - name: shout
    handler:
      callable: Tests::Shout
      initialization:
        times: 2
    dependencies: [hello]
"""


class Hello:
    """Fails its first attempt retryably, asking for a short wait."""

    async def call(self, context: StepContext) -> Any:
        if context.attempt == 1:
            raise RetryableError("warming up", error_code="WARMING_UP", retry_after=0.1)
        return {"greeting": f"hello {context.get_input('name', str)}"}


class Shout:
    async def call(self, context: StepContext) -> Any:
        hello = context.get_dependency_result("hello", dict)
        times = context.get_initialization("times", int) or 1
        return {
            "shout": "!".join([hello["greeting"].upper()] * times),
            "dependencies": context.dependencies,
            "key": context.idempotency_key,
        }


HANDLERS = {"Tests::Hello": Hello(), "Tests::Shout": Shout()}


async def test_a_task_runs_end_to_end_through_the_coordinator(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    await start_worker(HANDLERS)
    async with await Client.connect(AMQP_URL) as client:
        submitted = await client.create_task(namespace, "greet", {"name": "ada"})
        finished = await submitted.wait(timeout=60)

    assert isinstance(finished, TaskFinished), finished
    assert finished.task_id == submitted.task_id
    assert (finished.namespace, finished.name, finished.version) == (namespace, "greet", "1.0.0")
    assert finished.status == "complete"
    hello, shout = finished.step("hello"), finished.step("shout")
    assert (hello.state, hello.attempts) == ("completed", 2)
    # The first attempt's retryable error, with the wait it asked for.
    assert hello.error is not None
    assert hello.error.code == "WARMING_UP"
    assert hello.error.retry_after_seconds == 0.1
    assert hello.result == {"greeting": "hello ada"}
    assert (shout.state, shout.attempts) == ("completed", 1)
    assert shout.result == {
        "shout": "HELLO ADA!HELLO ADA",
        "dependencies": ["hello"],
        "key": f"{finished.task_id}:shout",
    }


async def test_a_client_whose_connection_died_connects_again_for_its_next_request(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    await start_worker(HANDLERS)
    async with await Client.connect(AMQP_URL) as client:
        first = await client.create_task(namespace, "greet", {"name": "ada"})
        assert isinstance(await first.wait(timeout=60), TaskFinished)
        old_queue = client.reply_queue
        # Its connection dies, as it does when its broker node dies.
        await client._broker.connection.close()

        second = await client.create_task(namespace, "greet", {"name": "bob"})
        finished = await second.wait(timeout=60)

    assert isinstance(finished, TaskFinished), finished
    assert (finished.task_id, finished.status) == (second.task_id, "complete")
    assert client.reply_queue != old_queue


async def test_an_idempotency_key_names_one_task(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    await start_worker(HANDLERS)
    async with await Client.connect(AMQP_URL) as client:
        first = await client.create_task(namespace, "greet", {"name": "a"}, idempotency_key="k1")
        second = await client.create_task(namespace, "greet", {"name": "a"}, idempotency_key="k1")
        assert first.task_id == second.task_id
        assert first.request_id != second.request_id
        one, two = await first.wait(60), await second.wait(60)
        assert isinstance(one, TaskFinished)
        assert isinstance(two, TaskFinished)
        assert one.task_id == two.task_id == first.task_id
        assert (one.request_id, two.request_id) == (first.request_id, second.request_id)
        assert two.step("hello").result == {"greeting": "hello a"}
        # The same key with another context names the same task: refused,
        # and the task is left as it was.
        other = await client.create_task(namespace, "greet", {"name": "b"}, idempotency_key="k1")
        refused = await other.wait(60)
    assert isinstance(refused, TaskRejected), refused
    assert refused.code == "idempotency_conflict"
    assert refused.request_id == other.request_id
    assert first.task_id in refused.reason


async def test_a_request_for_an_unknown_template_is_rejected(
    bus: Bus, namespace: str, start_coordinator: Any
) -> None:
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    async with await Client.connect(AMQP_URL) as client:
        outcome = await client.run_task(namespace, "greeet", {}, timeout=30)
    assert isinstance(outcome, TaskRejected), outcome
    assert outcome.code == "unknown_template"
    assert (outcome.namespace, outcome.name) == (namespace, "greeet")
    assert "did you mean" in outcome.reason
    assert "greet" in outcome.reason


async def test_waiting_gives_up_at_its_deadline(
    bus: Bus, namespace: str, start_coordinator: Any
) -> None:
    # No worker serves the template's callables: its first step waits.
    await start_coordinator({"greet.yaml": template(namespace)}, [namespace])
    async with await Client.connect(AMQP_URL) as client:
        submitted = await client.create_task(namespace, "greet", {"name": "x"})
        with pytest.raises(ReplyTimeoutError, match=str(submitted.request_id)):
            await submitted.wait(timeout=0.5)


async def test_the_task_id_follows_from_the_idempotency_key() -> None:
    from tasker_worker.messages import task_id_of

    request = {"namespace": "microservices", "name": "user_registration", "request_id": "r"}
    keyed = {**request, "idempotency_key": "registration:new.user@example.com"}
    # The example of docs/protocol.md, "The task id".
    assert task_id_of(keyed) == "1313b797-4991-51f3-b1c9-e05383177de6"
    assert task_id_of(request) == "r"
    assert uuid.UUID(task_id_of({**request, "idempotency_key": "x"}))
    assert topology.request_queue("ns") == "tasker.requests.ns"


def parent_template(namespace: str) -> str:
    return f"""
name: delegate
namespace_name: {namespace}
version: 1.0.0
steps:
  - name: delegate
    handler:
      callable: Tests::Delegate
"""


class Delegate:
    """Completes with the outcome of a ``greet`` task of its own namespace."""

    async def call(self, context: StepContext) -> Any:
        name = context.get_input("name", str)
        return await context.complete_with_child(context.namespace, "greet", {"name": name})


async def test_a_step_completes_with_the_outcome_of_its_child_task(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    templates = {"greet.yaml": template(namespace), "delegate.yaml": parent_template(namespace)}
    await start_coordinator(templates, [namespace])
    await start_worker({**HANDLERS, "Tests::Delegate": Delegate()})
    async with await Client.connect(AMQP_URL) as client:
        finished = await client.run_task(namespace, "delegate", {"name": "lin"}, timeout=60)
    assert isinstance(finished, TaskFinished), finished
    assert finished.status == "complete", finished
    step = finished.step("delegate")
    assert step.child_task_id is not None
    assert step.result["task_id"] == step.child_task_id
    assert (step.result["namespace"], step.result["name"]) == (namespace, "greet")
    assert step.result["results"]["hello"] == {"greeting": "hello lin"}
    assert step.result["results"]["shout"]["shout"] == "HELLO LIN!HELLO LIN"


async def test_a_child_task_starts_only_inside_a_worker() -> None:
    ready = StepReady(
        task_id=str(uuid.uuid4()),
        namespace="ns",
        task_name="t",
        task_version="1.0.0",
        step="s",
        callable="c",
        attempt=1,
        max_attempts=1,
        timeout_seconds=None,
        context={},
        initialization={},
        dependencies=[],
        dependency_results={},
    )
    with pytest.raises(PermanentError, match="child tasks start only in a Worker") as raised:
        await StepContext(ready).complete_with_child("ns", "t", {})
    assert raised.value.code == "child_not_started"
    with pytest.raises(PermanentError, match="must be a JSON object") as raised:
        await StepContext(ready).complete_with_child("ns", "t", [])  # type: ignore[arg-type]
    assert raised.value.code == "invalid_input"
