"""The worker: consumes the step-ready messages of its service, runs their
handlers, publishes each result, and acks a step only once its result is
safe with the broker (docs/protocol.md, "What a worker does with a
step-ready message"). It behaves as the Rust SDK's worker does:

- concurrency is the consumer's prefetch: at most that many unacked steps;
  a service split over several queues (``partitions``) consumes them all,
  each with a share of it;
- a step's result is published ``mandatory`` and confirmed, then the step is
  acked; if the worker dies in between, the step is delivered again;
- a step that times out fails retryably with ``timeout``; a handler that
  raises anything but a :class:`StepError` fails it with ``handler_panic``,
  and the worker goes on;
- what cannot be decoded, or was delivered too often, is dead-lettered;
- a step redelivered after its result was confirmed is answered with the
  remembered result rather than run twice;
- a lost connection is replaced, with backoff; on SIGTERM or SIGINT the
  worker stops consuming, lets in-flight steps finish within a grace
  period, and closes, which hands every unacked step back to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tasker_worker import health, telemetry, topology
from tasker_worker.announce import Identity, ServedNamespace
from tasker_worker.broker import (
    CONNECTION_ERRORS,
    Broker,
    Publisher,
    ack,
    delivery_count,
    message,
    published_at,
)
from tasker_worker.config import WorkerConfig, name_problem
from tasker_worker.context import StepContext
from tasker_worker.errors import (
    BrokerError,
    ConfigError,
    DeadLetterReason,
    ErrorCode,
    PermanentError,
    RetryableError,
    StepError,
)
from tasker_worker.handler import StepHandler
from tasker_worker.logs import fields
from tasker_worker.messages import (
    DecodeError,
    JsonObject,
    StepReady,
    WaitingForChild,
    completed,
    decode_step_ready,
    encode,
    failed,
    now,
    waiting_for_child,
)
from tasker_worker.metrics import METRICS
from tasker_worker.reconnect import Backoff
from tasker_worker.shutdown import shutdown_on_signal
from tasker_worker.topology import MessageType

log = logging.getLogger(__name__)

_ResultKey = tuple[str, str, int]


class Worker:
    """The namespaces a worker serves and the handlers it knows::

    await (
        Worker(WorkerConfig.from_env())
        .namespace("microservices")
        .handler("Microservices::StepHandlers::SetupBillingProfileHandler", SetupBilling())
        .run()
    )
    """

    def __init__(self, config: WorkerConfig | None = None) -> None:
        self.config = WorkerConfig.from_env() if config is None else config
        self._namespaces: list[str] = []
        self._handlers: dict[str, StepHandler] = {}

    def namespace(self, namespace: str) -> Worker:
        """Serves ``namespace``'s steps too."""
        problem = name_problem(namespace)
        if problem is not None:
            raise ConfigError(f"the namespace {namespace!r} {problem}")
        if namespace not in self._namespaces:
            self._namespaces.append(namespace)
        return self

    def handler(self, callable_: str, handler: StepHandler) -> Worker:
        """Runs ``handler`` for the steps whose template names ``callable_``.

        :raises ConfigError: if ``handler`` has no ``async def call(self, context)``.
        """
        call = getattr(handler, "call", None)
        if not inspect.iscoroutinefunction(call):
            raise ConfigError(
                f"the handler for {callable_!r} ({type(handler).__name__}) needs a method "
                "'async def call(self, context)'"
            )
        self._handlers[callable_] = handler
        return self

    async def run(self, shutdown: asyncio.Event | None = None) -> None:
        """Consumes until ``shutdown`` is set (by default, until SIGTERM or
        SIGINT; a second signal exits at once), reconnecting when the broker
        goes away. On shutdown it stops consuming, lets in-flight steps
        finish within ``config.shutdown_grace``, and closes the connection,
        which hands every unacked step back to its queue.

        :raises ConfigError: for a configuration that cannot work, or a TLS
            file that cannot be read.
        :raises BrokerError: if the broker refuses the login or the vhost;
            any other broker failure is retried (a failed TLS handshake
            too, logged with what to check).
        """
        self.config.check()
        if not self._namespaces:
            raise ConfigError("a worker needs at least one namespace; call .namespace(..)")
        if not self._handlers:
            raise ConfigError(
                "a worker needs at least one handler; call .handler(callable, handler)"
            )
        if shutdown is None:
            shutdown = shutdown_on_signal()
        state = health.Health(health.RABBITMQ)
        server = None
        if self.config.health_addr is not None:
            host, port = self.config.health_addr
            try:
                server = await health.serve(host, port, state)
            except OSError as e:
                log.error(
                    "cannot serve the health endpoints; pass another address",
                    extra=fields(address=f"{host}:{port}", error=str(e)),
                )
        runner = _Runner(self.config, list(self._namespaces), dict(self._handlers), state)
        try:
            await runner.run(shutdown)
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()


class RecentResults:
    """The results this worker published last, by (task, step, attempt):
    when a step comes back after its result was confirmed but before its ack
    was (a lost connection, a coordinator that republished after a crash),
    the worker sends the result again instead of running the handler twice."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._results: OrderedDict[_ResultKey, aio_pika.Message] = OrderedDict()

    def get(self, key: _ResultKey) -> aio_pika.Message | None:
        """The result published for ``key``, if remembered."""
        return self._results.get(key)

    def insert(self, key: _ResultKey, result: aio_pika.Message) -> None:
        """Remembers ``result``, forgetting the oldest beyond the capacity."""
        if self.capacity <= 0:
            return
        self._results[key] = result
        while len(self._results) > self.capacity:
            self._results.popitem(last=False)


class _Runner:
    """What every connection of one :meth:`Worker.run` shares."""

    def __init__(
        self,
        config: WorkerConfig,
        namespaces: list[str],
        handlers: dict[str, StepHandler],
        state: health.Health,
    ) -> None:
        self.config = config
        self.namespaces = namespaces
        self.handlers = handlers
        self.health = state
        self.recent = RecentResults(config.remembered_results)
        self.identity = Identity(
            worker_id=str(uuid.uuid4()),
            service=config.service,
            concurrency=config.concurrency,
            started_at=now(),
            every=config.announce_every,
        )
        self.backoff = Backoff()
        self.tracer = telemetry.tracer()

    async def run(self, shutdown: asyncio.Event) -> None:
        while not shutdown.is_set():
            try:
                await self.session(shutdown)
                return
            except BrokerError as e:
                if not e.retryable:
                    raise
                self.health.down(health.RABBITMQ, e)
                delay = self.backoff.next_delay()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), timeout=delay)

    async def session(self, shutdown: asyncio.Event) -> None:
        """One connection's life: declare, consume, and on shutdown drain.

        :raises BrokerError: when the connection is lost.
        """
        config = self.config
        broker = await Broker.connect(
            config.amqp_url, config.name, config.heartbeat, config.security
        )
        lost = asyncio.Event()
        in_flight: set[asyncio.Task[None]] = set()
        accepting = True
        announcing: asyncio.Task[None] | None = None
        try:
            broker.connection.close_callbacks.add(lambda *_: lost.set())
            publisher = await broker.publisher()
            channel = await broker.channel()
            for closing in (publisher.channel, channel):
                closing.close_callbacks.add(lambda *_: lost.set())
            underlay = await channel.get_underlay_channel()
            # The broker cancels a consumer whose queue is deleted: consume
            # again on a new connection.
            underlay.on_consumer_cancel_callbacks.add(lambda *_: lost.set())
            await broker.declare_common(channel)
            # RabbitMQ applies the prefetch to each consumer: the queues of a
            # service split over several share the concurrency.
            await channel.set_qos(prefetch_count=math.ceil(config.concurrency / config.partitions))

            def on_delivery(queue: str, delivery: AbstractIncomingMessage) -> None:
                if not accepting:
                    # Delivered as the consumer was being cancelled: left
                    # unacked, it goes back to the queue when we close.
                    return
                task = asyncio.create_task(self.handle(publisher, queue, delivery))
                in_flight.add(task)
                task.add_done_callback(_finished(in_flight))

            callables = sorted(self.handlers)
            serves: list[ServedNamespace] = []
            consumers: list[tuple[AbstractQueue, str]] = []
            for namespace in self.namespaces:
                await broker.declare_namespace(channel, namespace)
                queues = await broker.declare_service(
                    channel, namespace, config.service, callables, config.partitions
                )
                for index, queue in enumerate(queues):

                    async def consume(
                        delivery: AbstractIncomingMessage, queue_name: str = queue.name
                    ) -> None:
                        on_delivery(queue_name, delivery)

                    tag = await queue.consume(
                        consume, consumer_tag=f"{config.name}-{namespace}-{index}"
                    )
                    consumers.append((queue, tag))
                serves.append(
                    ServedNamespace(
                        namespace,
                        topology.service_queue(namespace, config.service),
                        callables,
                        config.partitions,
                    )
                )
            self.backoff.succeeded()
            self.health.up(health.RABBITMQ)
            log.info(
                "worker ready",
                extra=fields(
                    service=config.service,
                    namespaces=",".join(self.namespaces),
                    callables=len(callables),
                    concurrency=config.concurrency,
                    partitions=config.partitions,
                    broker=broker.url,
                ),
            )
            # Announced once it consumes: a coordinator may then release the
            # steps that waited for these callables.
            try:
                await self.identity.announce(publisher, serves, leaving=False)
            except BrokerError as e:
                log.warning(
                    "the worker's announcement was not sent; the next one will be",
                    extra=fields(error=str(e)),
                )
            announcing = asyncio.create_task(self.identity.keep_announcing(publisher, serves))

            await _first_of(shutdown, lost)
            accepting = False
            if lost.is_set():
                raise BrokerError(f"rabbitmq at {broker.url}: the connection or a channel closed")

            # Stop taking new work first, then give in-flight steps their grace.
            for queue, tag in consumers:
                with contextlib.suppress(*_CLOSED):
                    await queue.cancel(tag)
            log.info(
                "stopping: finishing in-flight steps",
                extra=fields(in_flight=len(in_flight), grace=config.shutdown_grace),
            )
            if in_flight:
                _, unfinished = await asyncio.wait(set(in_flight), timeout=config.shutdown_grace)
                if unfinished:
                    log.warning(
                        "grace period over; unfinished steps go back to the queue",
                        extra=fields(unfinished=len(unfinished)),
                    )
            announcing.cancel()
            # Stopping on purpose: the coordinators drop it from the list now.
            with contextlib.suppress(BrokerError):
                await self.identity.announce(publisher, serves, leaving=True)
        finally:
            accepting = False
            if announcing is not None:
                announcing.cancel()
            for task in list(in_flight):
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            await broker.close()

    async def handle(
        self, publisher: Publisher, queue: str, delivery: AbstractIncomingMessage
    ) -> None:
        """Runs one delivery to its end: the result published and confirmed,
        then the step acked; or the message dead-lettered. On a failed
        publish the step stays unacked, and comes back when the connection
        is replaced."""
        parent = telemetry.extract(delivery.headers)
        attributes: dict[str, Any] = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.rabbitmq.destination.routing_key": delivery.routing_key or "",
        }
        if delivery.message_id:
            attributes["messaging.message.id"] = delivery.message_id
        with self.tracer.start_as_current_span(
            "process step", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            try:
                await self._handle(publisher, queue, delivery, span)
            except BrokerError as e:
                log.warning(
                    "step not acknowledged; it comes back when the connection is replaced",
                    extra=fields(queue=queue, error=str(e)),
                )

    async def _handle(
        self,
        publisher: Publisher,
        queue: str,
        delivery: AbstractIncomingMessage,
        span: trace.Span,
    ) -> None:
        config = self.config
        try:
            ready = decode_step_ready(delivery.body, config.max_message_bytes)
        except DecodeError as e:
            await publisher.dead_letter(delivery, queue, e.reason, e.detail)
            return
        span.update_name(f"process {ready.step}")
        span.set_attributes(
            {
                "tasker.task.id": ready.task_id,
                "tasker.namespace": ready.namespace,
                "tasker.task.name": ready.task_name,
                "tasker.task.version": ready.task_version,
                "tasker.step.name": ready.step,
                "tasker.step.attempt": ready.attempt,
            }
        )
        redeliveries = delivery_count(delivery.headers)
        if redeliveries > config.max_redeliveries:
            await publisher.dead_letter(
                delivery,
                queue,
                DeadLetterReason.REDELIVERY_LIMIT,
                f"redelivered {redeliveries} times, over the limit of "
                f"{config.max_redeliveries}; the step may crash its worker",
            )
            return

        key = (ready.task_id, ready.step, ready.attempt)
        remembered = self.recent.get(key)
        ids = {"task_id": ready.task_id, "step": ready.step, "attempt": ready.attempt}
        routing_key = topology.step_result_routing_key(ready.namespace)
        if remembered is not None:
            log.info(
                "step already finished here; sending its result again instead of running it twice",
                extra=fields(**ids),
            )
            await publisher.publish(
                topology.EVENTS_EXCHANGE, routing_key, remembered, mandatory=True
            )
            await ack(delivery)
            return

        labels = {"namespace": ready.namespace, "template": ready.task_name, "step": ready.step}
        started_at = now()
        sent = published_at(delivery.headers)
        if sent is not None:
            METRICS.queue_wait.labels(**labels).observe(max(0.0, time.time() - sent))
        started = time.monotonic()
        outcome = await self.run_handler(ready, publisher)
        METRICS.step_duration.labels(**labels).observe(time.monotonic() - started)
        finished_at = now()
        result = ready.result(started_at, finished_at, outcome)
        try:
            payload = encode(result)
        except (TypeError, ValueError) as e:
            result = ready.result(
                started_at,
                finished_at,
                failed(
                    PermanentError(
                        f"the handler's result is not JSON: {e}",
                        error_code=ErrorCode.INVALID_RESULT,
                    )
                ),
            )
            payload = encode(result)
        limit = config.max_message_bytes
        if len(payload) > limit:
            # Never published: the coordinator would dead-letter it, and the
            # step would wait for its lease. A small failure goes instead.
            result = ready.result(
                started_at,
                finished_at,
                failed(
                    PermanentError(
                        f"the result of step {ready.step} makes a step result of {len(payload)} "
                        f"bytes, over the limit of {limit} bytes; return less (store large data "
                        "elsewhere and return a reference to it), or raise the limit "
                        "(TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker",
                        error_code=ErrorCode.RESULT_TOO_LARGE,
                    )
                ),
            )
            payload = encode(result)
        self._record_outcome(span, result, ids)
        outgoing = message(payload, MessageType.STEP_RESULT, ready.task_id)
        # Remembered before it is published: a redelivery that overtakes the
        # confirm, or that follows a failed publish, sends this result
        # rather than running the handler a second time.
        self.recent.insert(key, outgoing)
        await publisher.publish(topology.EVENTS_EXCHANGE, routing_key, outgoing, mandatory=True)
        await ack(delivery)

    async def run_handler(self, ready: StepReady, publisher: Publisher) -> JsonObject:
        """Runs the step's handler; a timeout or an unexpected exception
        becomes the step's failure instead of taking the worker down. Child
        task requests go out on ``publisher``."""
        handler = self.handlers.get(ready.callable)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            quoted = json.dumps(ready.callable, ensure_ascii=False)
            return failed(
                PermanentError(
                    f"this worker has no handler for callable {quoted}; register one "
                    f"with .handler({quoted}, ..) (known: {known})",
                    error_code=ErrorCode.HANDLER_NOT_FOUND,
                )
            )

        async def start_child(request: JsonObject, child_task_id: str) -> None:
            outgoing = message(encode(request), MessageType.TASK_REQUEST, child_task_id)
            await publisher.publish(
                topology.REQUESTS_EXCHANGE, str(request["namespace"]), outgoing, mandatory=True
            )
            log.info(
                "child task requested",
                extra=fields(
                    task_id=ready.task_id,
                    step=ready.step,
                    child_task_id=child_task_id,
                    child=f"{request['namespace']}/{request['name']}",
                ),
            )

        try:
            context = StepContext(ready, start_child)
        except StepError as e:
            return failed(e)
        limit = ready.timeout_seconds
        try:
            # The handler runs in the delivery's span: what it logs and
            # publishes joins the task's trace. At the deadline its
            # coroutine is cancelled.
            async with asyncio.timeout(limit) as deadline:
                value = await handler.call(context)
        except StepError as e:
            return failed(e)
        except TimeoutError as e:
            if deadline.expired():
                return failed(
                    RetryableError(
                        f"the handler ran past timeout_seconds ({limit:g} s)",
                        error_code=ErrorCode.TIMEOUT,
                    )
                )
            return self._panicked(ready, e)
        except Exception as e:
            return self._panicked(ready, e)
        if isinstance(value, WaitingForChild):
            return waiting_for_child(value.child_task_id)
        return completed(value)

    @staticmethod
    def _panicked(ready: StepReady, error: Exception) -> JsonObject:
        log.error(
            "step handler raised",
            exc_info=error,
            extra=fields(task_id=ready.task_id, step=ready.step, error=repr(error)),
        )
        return failed(
            PermanentError(
                f"the handler raised {type(error).__name__}: {error}",
                error_code=ErrorCode.HANDLER_PANIC,
            )
        )

    @staticmethod
    def _record_outcome(span: trace.Span, result: JsonObject, ids: dict[str, Any]) -> None:
        if result["status"] == "completed":
            span.set_attribute("tasker.step.outcome", "completed")
            log.info("step completed", extra=fields(**ids))
            return
        if result["status"] == "waiting_for_child":
            span.set_attribute("tasker.step.outcome", "waiting_for_child")
            log.info("step waits for its child task", extra=fields(**ids))
            return
        error = result["error"]
        retryable = bool(error["retryable"])
        span.set_attribute(
            "tasker.step.outcome", "failed_retryable" if retryable else "failed_permanent"
        )
        span.set_status(Status(StatusCode.ERROR, error["code"]))
        log.warning(
            "step failed",
            extra=fields(**ids, code=error["code"], retryable=retryable, message=error["message"]),
        )


_CLOSED: tuple[type[BaseException], ...] = (BrokerError, *CONNECTION_ERRORS)


async def _first_of(*events: asyncio.Event) -> None:
    """Waits until any of ``events`` is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _finished(in_flight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    """A done-callback that forgets a delivery's task, and logs a bug that
    escaped it (the delivery stays unacked and comes back)."""

    def done(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "a delivery failed unexpectedly; it stays unacknowledged",
                exc_info=task.exception(),
            )

    return done
