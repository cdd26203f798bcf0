"""The worker conformance kit (tests/conformance/), run against this SDK:
each scenario's messages go to a Python worker's service queue, and what it
publishes or dead-letters is checked as tests/conformance/README.md says."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from conftest import REPO, Bus, Watch

from tasker_worker import PermanentError, RetryableError, StepContext, topology

KIT = json.loads((REPO / "tests" / "conformance" / "scenarios.json").read_text())
SERVICE = "conformance"


class Conformance:
    """The kit's one handler, driven by the step's ``initialization``."""

    def __init__(self) -> None:
        self.runs = 0

    async def call(self, context: StepContext) -> Any:
        self.runs += 1
        init = context.initialization
        match init.get("do", "echo"):
            case "echo":
                input_key, dependency = init.get("input"), init.get("dependency")
                return {
                    "input": None if input_key is None else context.get_input_or(input_key, None),
                    "dependency": None
                    if dependency is None
                    else context.get_dependency_result(dependency),
                    "dependencies": context.dependencies,
                    "attempt": context.attempt,
                    "idempotency_key": context.idempotency_key,
                }
            case "permanent":
                raise PermanentError(init["message"], error_code=init["code"])
            case "retryable":
                raise RetryableError(
                    init["message"], error_code=init["code"], retry_after=init.get("retry_after")
                )
            case "sleep":
                await asyncio.sleep(float(init["seconds"]))
                return {}
            case "crash":
                raise RuntimeError(init.get("message", "crash"))
            case "child":
                return await context.complete_with_child(
                    init["namespace"], init["name"], init["context"]
                )
            case other:
                raise AssertionError(f"the kit names no action {other!r}")


def substitute(value: Any, names: dict[str, str]) -> Any:
    """The kit's substitutions: ``{task_id}``, ``{namespace}`` and
    ``{service_queue}`` in strings, and ``{"$repeat": s, "times": n}``
    objects."""
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        if "$repeat" in value:
            return str(value["$repeat"]) * int(value["times"])
        return {k: substitute(v, names) for k, v in value.items()}
    return value


def is_subset(expected: Any, actual: Any) -> bool:
    """Objects match field by field (a subset), other values exactly."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def base(namespace: str, task_id: str) -> dict[str, Any]:
    return {
        "protocol_version": 1,
        "task_id": task_id,
        "namespace": namespace,
        "task_name": "conformance",
        "task_version": "1.0.0",
        "step": "s",
        "callable": KIT["callable"],
        "attempt": 1,
        "max_attempts": 3,
        "context": {},
        "initialization": {},
        "dependencies": [],
        "dependency_results": {},
    }


async def next_dead_letter(dead: Watch, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    return await dead.next_where(
        lambda m: (m.headers or {}).get(topology.Header.DEAD_LETTER_QUEUE) == queue,
        what=f"a dead letter from {queue}",
    )


@pytest.mark.parametrize("scenario", KIT["scenarios"], ids=lambda s: str(s["name"]))
async def test_conformance(
    scenario: dict[str, Any], bus: Bus, namespace: str, start_worker: Any
) -> None:
    task_id = str(uuid.uuid4())
    queue = topology.service_queue(namespace, SERVICE)
    scenario = substitute(
        scenario, {"task_id": task_id, "namespace": namespace, "service_queue": queue}
    )
    handler = Conformance()
    results = await bus.results(namespace)
    dead = await bus.watch(topology.DEAD_LETTER_EXCHANGE)
    await start_worker({KIT["callable"]: handler}, service=SERVICE, **scenario.get("worker", {}))
    # After the worker, which declares the requests exchange.
    children = await bus.watch(topology.REQUESTS_EXCHANGE, f"{namespace}_child")

    seen: list[dict[str, Any]] = []
    body = b""
    for delivery, expected in zip(scenario["deliveries"], scenario["expect"], strict=True):
        if "raw_body" in delivery:
            body = delivery["raw_body"].encode()
        elif "step_ready" in delivery:
            message = {**base(namespace, task_id), **delivery["step_ready"]}
            for field in delivery.get("remove", []):
                del message[field]
            body = json.dumps(message).encode()
        else:
            assert delivery.get("again"), delivery
        await bus.publish("", queue, body)

        child_task_id = None
        if "child_request" in expected:
            request = await children.next(what="a child task request")
            assert is_subset(expected["child_request"], json.loads(request.body))
            child_task_id = (request.headers or {}).get(topology.Header.TASK_ID)
            assert child_task_id is not None, "the request has no task id header"
        if "result" in expected:
            result = await results.next_json(what=f"the result of delivery {len(seen) + 1}")
            assert is_subset(expected["result"], result), (expected["result"], result)
            if child_task_id is not None:
                assert result["child_task_id"] == child_task_id
            if "same_as" in expected:
                assert result == seen[expected["same_as"]]
            seen.append(result)
        else:
            letter = expected["dead_letter"]
            got = await next_dead_letter(dead, queue)
            reason = str((got.headers or {}).get(topology.Header.DEAD_LETTER_REASON))
            assert reason.startswith(letter["reason_prefix"] + ":"), reason
            assert (got.headers or {}).get(topology.Header.DEAD_LETTER_QUEUE) == letter[
                "original_queue"
            ]
            if "body" in letter:
                assert got.body == letter["body"].encode()

    if scenario.get("no_results"):
        await asyncio.sleep(0.5)
        assert results.received.empty(), "a step result was published"
    if "handler_runs" in scenario:
        assert handler.runs == scenario["handler_runs"]
