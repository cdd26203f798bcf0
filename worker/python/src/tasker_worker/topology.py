"""The names of Tasker's exchanges, queues, routing keys, message types and
headers (docs/protocol.md, "Topology"): the same strings as the Rust
``tasker_protocol::topology``, in one place, with no I/O.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1

REQUESTS_EXCHANGE = "tasker.requests"
UNROUTED_REQUESTS_EXCHANGE = "tasker.requests.unrouted"
UNROUTED_REQUESTS_QUEUE = "tasker.requests.unrouted"
ALTERNATE_EXCHANGE_ARGUMENT = "alternate-exchange"
STEPS_EXCHANGE = "tasker.steps"
EVENTS_EXCHANGE = "tasker.events"
DEAD_LETTER_EXCHANGE = "tasker.dead_letter"
DEAD_LETTER_QUEUE = "tasker.dead_letters"
WORKER_ANNOUNCE_ROUTING_KEY = "worker.announce"
TASK_REJECTED_ROUTING_KEY = "task.rejected"
CONTENT_TYPE = "application/json"
DELIVERY_LIMIT = 100
"""The broker's delivery limit Tasker declares its queues with: a worker
dead-letters a message, with its reason, once delivered more than its
``max_redeliveries`` (5 by default), which must stay below this, so the
broker (RabbitMQ 4 drops a message after 20 deliveries by default) never
drops one first."""
QUORUM: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
"""The arguments of every Tasker queue, a durable quorum queue: it survives a
broker restart, is replicated in a cluster, and counts redeliveries."""


def request_queue(namespace: str) -> str:
    """The queue of ``namespace``'s task requests."""
    return f"tasker.requests.{namespace}"


def result_queue(namespace: str) -> str:
    """The queue of ``namespace``'s step results, which coordinators read."""
    return f"tasker.results.{namespace}"


def service_queue(namespace: str, service: str) -> str:
    """The queue of ``namespace``'s steps that ``service`` runs."""
    return f"tasker.steps.{namespace}.{service}"


def step_routing_key(namespace: str, callable_: str) -> str:
    """The routing key of the steps of ``callable_`` in ``namespace``."""
    return f"{namespace}/{callable_}"


def step_result_routing_key(namespace: str) -> str:
    """The routing key of ``namespace``'s step results."""
    return f"step.result.{namespace}"


def task_finished_routing_key(namespace: str, name: str) -> str:
    """The routing key of a finished task of template ``namespace/name``."""
    return f"task.finished.{namespace}.{name}"


class MessageType:
    """The ``type`` property of each kind of message."""

    TASK_REQUEST = "tasker.task_request"
    STEP_READY = "tasker.step_ready"
    STEP_RESULT = "tasker.step_result"
    TASK_FINISHED = "tasker.task_finished"
    TASK_REJECTED = "tasker.task_rejected"
    TASK_COMMAND = "tasker.task_command"
    COMMAND_REPLY = "tasker.command_reply"
    WORKER_ANNOUNCEMENT = "tasker.worker_announcement"


class Header:
    """The headers Tasker reads and writes."""

    PROTOCOL_VERSION = "x-tasker-protocol-version"
    TASK_ID = "x-tasker-task-id"
    PUBLISHED_AT_MS = "x-tasker-published-at-ms"
    DEAD_LETTER_REASON = "x-tasker-dead-letter-reason"
    DEAD_LETTER_QUEUE = "x-tasker-original-queue"
    DEAD_LETTER_EXCHANGE = "x-tasker-original-exchange"
    DEAD_LETTER_ROUTING_KEY = "x-tasker-original-routing-key"
    TRACEPARENT = "traceparent"
    TRACESTATE = "tracestate"
    DELIVERY_COUNT = "x-delivery-count"
