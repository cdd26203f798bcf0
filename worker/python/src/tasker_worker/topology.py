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


def namespace_steps_exchange(namespace: str) -> str:
    """The direct exchange of ``namespace``'s steps. The coordinators bind
    it to :data:`STEPS_EXCHANGE` with the routing key of every callable of
    the namespace's templates; services bind their queues here, not to
    :data:`STEPS_EXCHANGE`, so a worker's user needs ``read`` on its own
    namespace's exchange only, and cannot bind to another namespace's steps.
    Namespaces have no dots, so it cannot be a service's queue or exchange."""
    return f"tasker.steps.{namespace}"


def service_queue(namespace: str, service: str) -> str:
    """The queue of ``namespace``'s steps that ``service`` runs."""
    return f"tasker.steps.{namespace}.{service}"


MAX_PARTITIONS = 64
"""How many queues a service's steps of one namespace can be split over.
One, the default, is the service's queue, :func:`service_queue`."""
PARTITIONED_EXCHANGE_TYPE = "x-consistent-hash"
"""The type of a :func:`service_exchange`: RabbitMQ's consistent-hash
exchange, from the ``rabbitmq_consistent_hash_exchange`` plugin that ships
with RabbitMQ. Only a service split over several queues needs it."""
HASH_HEADER_ARGUMENT = "hash-header"
"""The argument of a :func:`service_exchange` that makes it hash a header,
the task id (:attr:`Header.TASK_ID`), rather than the routing key: every
step of a task lands in the same queue, and tasks spread over the queues."""
PARTITION_WEIGHT = "1"
"""The routing key each :func:`partition_queue` is bound to its
:func:`service_exchange` with: for a consistent-hash exchange, the queue's
weight. Every queue weighs the same."""


def service_exchange(namespace: str, service: str) -> str:
    """The exchange of a service whose steps of ``namespace`` are split over
    several queues: bound to :func:`namespace_steps_exchange` with the
    routing key of each callable the service serves, it spreads the steps
    over its :func:`partition_queue` queues by task id. The same name as the
    service's single queue; AMQP keeps exchanges and queues apart."""
    return service_queue(namespace, service)


def partition_queue(namespace: str, service: str, index: int) -> str:
    """Queue ``index`` (from 0) of a service whose steps are split over
    several queues. Names have no dots, so it cannot be another service's
    queue."""
    return f"tasker.steps.{namespace}.{service}.{index}"


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
