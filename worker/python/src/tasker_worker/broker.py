"""What every Tasker process does with RabbitMQ: connect (with a short
heartbeat), declare the topology, build the properties every message
carries, publish with confirms, and dead-letter what a consumer cannot use,
never dropping it.

Publishing and consuming use separate channels, as in the Rust runtime, so
a slow consumer never holds up a publish, and a publish refused by the
broker never closes the channel steps are consumed on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from yarl import URL

from tasker_worker import telemetry, topology
from tasker_worker.errors import BrokerError, ConfigError, DeadLetterReason
from tasker_worker.logs import fields
from tasker_worker.metrics import METRICS
from tasker_worker.security import TLS_HINT, Security, tls_failure
from tasker_worker.topology import Header

log = logging.getLogger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)
"""What a lost or refused connection raises in aio-pika and the socket layer."""


def broker_urls(urls: str) -> list[str]:
    """The URLs of the nodes that ``urls`` names: one URL, or several
    separated by commas (``amqp://n1:5672/%2f,amqp://n2:5672/%2f``), each the
    URL of a node of one cluster. Spaces around them and empty entries are
    ignored. A comma in a password must be written ``%2C``."""
    return [url for url in (part.strip() for part in urls.split(",")) if url]


def redact(url: str) -> str:
    """``url`` with its password masked, for logs and messages; each of
    them, for several URLs separated by commas."""
    if "," in url:
        return ",".join(redact(one) for one in broker_urls(url))
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<unparseable url>"
    return str(parsed.with_password("***")) if parsed.password else str(parsed)


def connection_url(url: str, heartbeat: float) -> URL:
    """``url`` asking for a heartbeat every ``heartbeat`` seconds, unless it
    asks for its own with ``?heartbeat=``: the URL wins. AMQP counts whole
    seconds; a fraction rounds up, so that a short heartbeat never turns
    into none (zero turns heartbeats off).

    :raises ConfigError: if ``url`` is not an AMQP URL.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{redact(url)} is not an AMQP URL: {e}") from None
    if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
        raise ConfigError(
            f"{redact(url)} is not an AMQP URL; write it like "
            "amqp://user:password@host:5672/%2f (TASKER_AMQP_URL)"
        )
    if "heartbeat" in parsed.query:
        return parsed
    return parsed.update_query(heartbeat=math.ceil(heartbeat) if heartbeat > 0 else 0)


class Broker:
    """A connection to RabbitMQ, and the URL it was made to, for messages."""

    def __init__(self, connection: AbstractConnection, url: str) -> None:
        self.connection = connection
        self.url = redact(url)

    @classmethod
    async def connect(
        cls, url: str, name: str, heartbeat: float, security: Security | None = None
    ) -> Broker:
        """Connects to ``url``; ``name`` shows in the broker's connection list.

        ``url`` may name several nodes of a cluster, separated by commas
        (:func:`broker_urls`). Each connection tries them in turn, starting
        one further along the list than the process's previous connection
        did, so that connections spread over the nodes and a reconnection
        after a node died starts with another one. :attr:`url` is then the
        node reached.

        ``security`` gives the password of every URL, in place of the one in
        it, and the CA and client certificate of ``amqps://`` URLs, whose
        files are read at each connection.

        :raises ConfigError: if no URL is given, one is not an AMQP URL, or a
            TLS file cannot be read.
        :raises BrokerError: not retryable if a broker refuses the login or
            the vhost (the others would too: a cluster shares its users),
            retryable if no broker can be reached, naming every URL tried
            and the last error, which says what to check when it was the
            TLS handshake that failed.
        """
        security = security or Security()
        urls = broker_urls(url)
        if not urls:
            raise ConfigError(
                "no RabbitMQ URL given: set TASKER_AMQP_URL, e.g. "
                "amqp://guest:guest@127.0.0.1:5672/%2f"
            )
        # Every URL is checked before any is tried, so that a mistyped node
        # fails the start rather than a reconnection days later.
        targets = [(one, security.apply_password(connection_url(one, heartbeat))) for one in urls]
        context = (
            security.ssl_context()
            if any(target.scheme == "amqps" for _, target in targets)
            else None
        )
        first = next(_CONNECTIONS) % len(targets)
        unreachable: list[str] = []
        last: BaseException | None = None
        handshake: str | None = None
        for one, target in targets[first:] + targets[:first]:
            secure = target.scheme == "amqps"
            try:
                connection = await aio_pika.connect(
                    target,
                    client_properties={"connection_name": name},
                    timeout=30,
                    ssl_context=context if secure else None,
                )
            except (
                aiormq.exceptions.AuthenticationError,
                aiormq.exceptions.ProbableAuthenticationError,
                aiormq.exceptions.ConnectionNotAllowed,
            ) as e:
                # A refused login or vhost: no URL of the cluster can succeed later.
                raise _refused(one, e) from None
            except CONNECTION_ERRORS as e:
                unreachable.append(redact(one))
                last = e
                reason = tls_failure(e) if secure else None
                handshake = (
                    None
                    if reason is None
                    else f"the TLS handshake with rabbitmq at {redact(one)} failed: {reason}; "
                    f"{TLS_HINT}"
                )
                continue
            return cls(connection, one)
        if handshake is not None and len(unreachable) == 1:
            raise BrokerError(handshake) from last
        raise BrokerError(
            f"rabbitmq at {', '.join(unreachable)} cannot be reached: {handshake or repr(last)}"
        ) from last

    async def channel(self) -> AbstractChannel:
        """Opens a channel for consuming and declaring."""
        try:
            return await self.connection.channel(publisher_confirms=False)
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e

    async def publisher(self) -> Publisher:
        """Opens a channel in confirm mode, for publishing."""
        try:
            channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        return Publisher(channel, self.url)

    async def close(self) -> None:
        """Closes the connection; unacked deliveries go back to their queues."""
        with contextlib.suppress(*CONNECTION_ERRORS):  # already gone: nothing to hand back
            await self.connection.close()

    def error(self, e: BaseException) -> BrokerError:
        """``e`` as a retryable :class:`BrokerError` naming the broker."""
        return BrokerError(f"rabbitmq at {self.url}: {e!r}")

    async def declare_common(self, channel: AbstractChannel) -> None:
        """Declares what every process uses: the events exchange, and the
        dead-letter exchange and queue. Each is shared: a user not allowed to
        declare it goes on without it (:meth:`_shared`). ``channel`` is not
        used: each goes on a channel of its own."""
        await self._shared_exchange(topology.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC)
        await self._shared_exchange(topology.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT)
        await self._shared_queue(topology.DEAD_LETTER_QUEUE, topology.DEAD_LETTER_EXCHANGE, "")

    async def declare_requests_exchange(self, channel: AbstractChannel) -> None:
        """Declares the exchange clients publish requests to, with its
        alternate exchange and the queue that catches requests for a
        namespace no coordinator serves; all shared, as in :meth:`declare_common`."""
        await self._shared_exchange(
            topology.UNROUTED_REQUESTS_EXCHANGE, aio_pika.ExchangeType.FANOUT
        )
        await self._shared_queue(
            topology.UNROUTED_REQUESTS_QUEUE, topology.UNROUTED_REQUESTS_EXCHANGE, ""
        )
        await self._shared_exchange(
            topology.REQUESTS_EXCHANGE,
            aio_pika.ExchangeType.DIRECT,
            arguments={topology.ALTERNATE_EXCHANGE_ARGUMENT: topology.UNROUTED_REQUESTS_EXCHANGE},
        )

    async def declare_namespace(self, channel: AbstractChannel, namespace: str) -> None:
        """Declares the queues every process touching ``namespace`` shares,
        its task requests and its step results, and the steps exchange, so
        that no request or result of it is ever unroutable, whichever
        process starts first; all shared, as in :meth:`declare_common`."""
        await self.declare_requests_exchange(channel)
        await self._shared_queue(
            topology.request_queue(namespace), topology.REQUESTS_EXCHANGE, namespace
        )
        await self._declare_steps_exchange()
        await self._shared_queue(
            topology.result_queue(namespace),
            topology.EVENTS_EXCHANGE,
            topology.step_result_routing_key(namespace),
        )

    async def declare_service(
        self,
        channel: AbstractChannel,
        namespace: str,
        service: str,
        callables: Sequence[str],
        partitions: int = 1,
    ) -> list[AbstractQueue]:
        """Declares where ``service``'s steps of ``namespace`` wait, bound to
        the namespace's steps exchange (:func:`topology.namespace_steps_exchange`)
        with the routing key of each of ``callables``: from then on those
        steps reach it, whether or not a worker of the service runs. Returns
        the queues to consume.

        The namespace's steps exchange and its bindings to the steps
        exchange are shared (:meth:`route_namespace_steps`): a user not
        allowed to make them goes on without them, since the coordinators
        make them. The service's own queues and bindings are not: any
        failure to make them is raised.

        With one partition, that is the service's queue. With more, the
        service's consistent-hash exchange spreads the steps by task id over
        ``partitions`` queues; the service's former single queue, if any, no
        longer receives steps and comes last, for the worker to empty it. It
        is unbound from the namespace's steps exchange and, where its user
        may, from the steps exchange, where earlier versions bound it.

        :raises ConfigError: with one partition, if the service's steps are
            already split over several queues: its other workers' steps
            would never reach this one.
        :raises BrokerError: not retryable if the broker lacks the
            consistent-hash exchange; retryable for any other failure.
        """
        if partitions > 1:
            return await self._declare_partitions(
                channel, namespace, service, callables, partitions
            )
        exchange = topology.service_exchange(namespace, service)
        try:
            if await self._exchange_exists(exchange):
                raise ConfigError(
                    f"the steps of service '{service}' in namespace '{namespace}' are split over "
                    f"several queues (the exchange {exchange} exists): start this worker with "
                    "TASKER_PARTITIONS set to the number the service's other workers use"
                )
            await self.route_namespace_steps(namespace, callables)
            queue = await self._declare_queue(channel, topology.service_queue(namespace, service))
            for callable_ in callables:
                await queue.bind(
                    topology.namespace_steps_exchange(namespace),
                    routing_key=topology.step_routing_key(namespace, callable_),
                )
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        return [queue]

    async def route_namespace_steps(
        self, namespace: str, callables: Sequence[str], *, strict: bool = False
    ) -> None:
        """Declares ``namespace``'s steps exchange
        (:func:`topology.namespace_steps_exchange`) and binds it to the steps
        exchange with the routing key of each of ``callables``, so that
        their steps reach it. A coordinator does so for every callable of
        its templates; a worker for its own callables. Each is shared
        (:meth:`_shared`): a user not allowed to make it (a service's
        least-privilege user has no ``read`` on the steps exchange) goes on
        without it. ``strict`` makes the bindings fail on a refusal too.

        :raises BrokerError: retryable, for any failure but a refusal, or
            for a refused binding when ``strict``.
        """
        await self._declare_steps_exchange()
        name = topology.namespace_steps_exchange(namespace)
        await self._shared_exchange(name, aio_pika.ExchangeType.DIRECT)
        for callable_ in callables:
            key = topology.step_routing_key(namespace, callable_)

            async def bind(own: AbstractChannel, key: str = key) -> None:
                exchange = await own.get_exchange(name, ensure=False)
                await exchange.bind(topology.STEPS_EXCHANGE, routing_key=key)

            await self._shared(
                name,
                bind,
                refused=f"not allowed to bind {name} to {topology.STEPS_EXCHANGE} with {key}; "
                "the coordinators bind it",
                strict=strict,
            )

    async def _declare_partitions(
        self,
        channel: AbstractChannel,
        namespace: str,
        service: str,
        callables: Sequence[str],
        partitions: int,
    ) -> list[AbstractQueue]:
        """:meth:`declare_service` for a service split over ``partitions``
        queues. The queues are bound before the exchange is, so that no step
        reaches an exchange with nowhere to send it."""
        name = topology.service_exchange(namespace, service)
        steps = topology.namespace_steps_exchange(namespace)
        try:
            await self.route_namespace_steps(namespace, callables)
            try:
                exchange = await channel.declare_exchange(
                    name,
                    topology.PARTITIONED_EXCHANGE_TYPE,
                    durable=True,
                    arguments={topology.HASH_HEADER_ARGUMENT: Header.TASK_ID},
                )
            except aiormq.exceptions.ConnectionCommandInvalid as e:
                if "exchange type" not in str(e):
                    raise
                raise BrokerError(
                    f"rabbitmq at {self.url} has no consistent-hash exchange, which splitting a "
                    f"service's steps over several queues (TASKER_PARTITIONS={partitions}) "
                    "needs: enable it on every node with `rabbitmq-plugins enable "
                    f"rabbitmq_consistent_hash_exchange` ({e})",
                    retryable=False,
                ) from None
            queues: list[AbstractQueue] = []
            for index in range(partitions):
                queue = await self._declare_queue(
                    channel, topology.partition_queue(namespace, service, index)
                )
                await queue.bind(exchange, routing_key=topology.PARTITION_WEIGHT)
                queues.append(queue)
            for callable_ in callables:
                await exchange.bind(
                    steps, routing_key=topology.step_routing_key(namespace, callable_)
                )
            former = topology.service_queue(namespace, service)
            if await self._queue_exists(former):
                # New steps stop reaching it; those in it still need a worker.
                queue = await channel.get_queue(former, ensure=False)
                for callable_ in callables:
                    key = topology.step_routing_key(namespace, callable_)
                    await queue.unbind(steps, routing_key=key)

                    # Where earlier versions bound it; a user without
                    # ``read`` on the steps exchange never could have.
                    async def unbind(own: AbstractChannel, key: str = key) -> None:
                        old = await own.get_queue(former, ensure=False)
                        await old.unbind(topology.STEPS_EXCHANGE, routing_key=key)

                    await self._shared(
                        former,
                        unbind,
                        refused=f"not allowed to unbind {former} from "
                        f"{topology.STEPS_EXCHANGE}; its user could not have bound it there",
                    )
                log.info(
                    "draining the service's former single queue; delete it once it is empty",
                    extra=fields(queue=former, partitions=partitions),
                )
                queues.append(queue)
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        return queues

    async def private_queue(
        self, channel: AbstractChannel, binding: tuple[str, str] | None = None
    ) -> AbstractQueue:
        """A server-named, exclusive queue deleted with the connection, bound
        to ``binding`` (exchange, routing key) when given: for replies and
        for watching traffic, never for work, since it dies with the process."""
        try:
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            if binding is not None:
                await queue.bind(binding[0], routing_key=binding[1])
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        return queue

    async def _exchange_exists(self, name: str) -> bool:
        """Whether exchange ``name`` exists."""
        return await self._exists(lambda own: own.get_exchange(name, ensure=True))

    async def _queue_exists(self, name: str) -> bool:
        """Whether queue ``name`` exists."""
        return await self._exists(lambda own: own.declare_queue(name, passive=True))

    async def _exists(self, passive: Callable[[AbstractChannel], Awaitable[object]]) -> bool:
        """Whether what ``passive`` declares passively exists, asked on a
        channel of its own, since a missing one closes the channel."""
        own = await self.connection.channel(publisher_confirms=False)
        try:
            await passive(own)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):  # closed by a 404 already
                await own.close()
        return True

    async def _declare_steps_exchange(self) -> None:
        await self._shared_exchange(topology.STEPS_EXCHANGE, aio_pika.ExchangeType.DIRECT)

    async def _shared_exchange(
        self,
        name: str,
        kind: aio_pika.ExchangeType,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        """Declares the shared, durable exchange ``name`` (:meth:`_shared`)."""

        async def declare(own: AbstractChannel) -> None:
            await own.declare_exchange(name, kind, durable=True, arguments=arguments)

        await self._shared(name, declare)

    async def _shared_queue(self, name: str, exchange: str, routing_key: str) -> None:
        """Declares the shared queue ``name`` (:meth:`_declare_queue`) bound
        to ``exchange`` with ``routing_key`` (:meth:`_shared`)."""

        async def declare(own: AbstractChannel) -> None:
            queue = await self._declare_queue(own, name)
            await queue.bind(exchange, routing_key=routing_key)

        await self._shared(name, declare)

    async def _shared(
        self,
        name: str,
        declare: Callable[[AbstractChannel], Awaitable[None]],
        *,
        refused: str | None = None,
        strict: bool = False,
    ) -> None:
        """Runs ``declare``, of ``name``, which every Tasker process shares,
        on a channel of its own. A user without the right to declare it (an
        ACCESS_REFUSED, as a service's least-privilege user gets) goes on
        without it, logging ``refused`` (by default, that the coordinators
        declare it) at debug level; unless ``strict``, which raises the
        refusal too. The refusal closes the channel, hence its own. Any
        other failure is raised.

        :raises BrokerError: retryable, for any failure but a refusal, and
            for a refusal when ``strict``.
        """
        try:
            own = await self.connection.channel(publisher_confirms=False)
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        try:
            await declare(own)
        except aiormq.exceptions.ChannelAccessRefused as e:
            if strict:
                raise self.error(e) from e
            log.debug(
                refused or f"not allowed to declare {name}; the coordinators declare it",
                extra=fields(name=name, error=str(e)),
            )
        except CONNECTION_ERRORS as e:
            raise self.error(e) from e
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):  # closed by a refusal already
                await own.close()

    async def _declare_queue(self, channel: AbstractChannel, name: str) -> AbstractQueue:
        """Declares a Tasker queue with :data:`topology.QUORUM`'s arguments.
        A queue that an older Tasker declared without the delivery limit
        refuses them: it is used as it is, with a warning. The declaration
        goes on a channel of its own, since a refusal closes the channel it
        came on."""
        own = await self.connection.channel(publisher_confirms=False)
        try:
            await own.declare_queue(name, durable=True, arguments=dict(topology.QUORUM))
        except aiormq.exceptions.ChannelPreconditionFailed as e:
            log.warning(
                "the queue exists with other arguments, likely declared by an older Tasker "
                "without x-delivery-limit; using it as it is. Give it a delivery-limit policy "
                "so RabbitMQ 4 never drops a message before Tasker dead-letters it",
                extra=fields(queue=name, error=str(e)),
            )
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):  # closed by a refusal already
                await own.close()
        return await channel.get_queue(name, ensure=False)


def message(
    body: bytes, message_type: str, task_id: str | None = None, **properties: Any
) -> aio_pika.Message:
    """A Tasker message: persistent, JSON, typed, with a fresh message id,
    the protocol version, the task id and the publish time in headers, and
    the current trace context. ``properties`` (``reply_to``,
    ``correlation_id``, ``message_id``...) are added or win."""
    headers: dict[str, Any] = {
        Header.PROTOCOL_VERSION: topology.PROTOCOL_VERSION,
        Header.PUBLISHED_AT_MS: time.time_ns() // 1_000_000,
    }
    if task_id is not None:
        headers[Header.TASK_ID] = task_id
    telemetry.inject(headers)
    settings: dict[str, Any] = {
        "delivery_mode": aio_pika.DeliveryMode.PERSISTENT,
        "content_type": topology.CONTENT_TYPE,
        "type": message_type,
        "message_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).replace(microsecond=0),
        "headers": headers,
    }
    settings.update(properties)
    return aio_pika.Message(body, **settings)


def delivery_count(headers: Mapping[str, Any] | None) -> int:
    """How many times RabbitMQ says a message was delivered before
    (``x-delivery-count``, set on quorum queues)."""
    value = (headers or {}).get(Header.DELIVERY_COUNT)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def published_at(headers: Mapping[str, Any] | None) -> float | None:
    """When a message was published, in Unix seconds, from its
    ``x-tasker-published-at-ms`` header."""
    value = (headers or {}).get(Header.PUBLISHED_AT_MS)
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1000
    return None


class Publisher:
    """A channel in confirm mode: every publish returns only once the broker
    has stored the message."""

    def __init__(self, channel: AbstractChannel, url: str) -> None:
        self.channel = channel
        self.url = url

    async def publish(
        self, exchange: str, routing_key: str, outgoing: aio_pika.Message, *, mandatory: bool
    ) -> None:
        """Publishes ``outgoing`` and waits for its confirm.

        :raises BrokerError: if the broker refused it (a nack), a mandatory
            message reached no queue, or the channel is gone. All are
            retryable: the caller leaves its delivery unacked.
        """
        try:
            target = await self.channel.get_exchange(exchange, ensure=False)
            await target.publish(outgoing, routing_key, mandatory=mandatory)
        except aiormq.exceptions.PublishError:
            raise BrokerError(
                f"no queue is bound to exchange {exchange!r} with routing key {routing_key!r}; "
                "declare the namespace's queues (any Tasker process serving it does)"
            ) from None
        except aiormq.exceptions.DeliveryError:
            raise BrokerError(
                f"rabbitmq refused to store a message for exchange {exchange!r}, routing key "
                f"{routing_key!r}; check the broker's log for the reason (disk or memory alarm, "
                "queue limits)"
            ) from None
        except CONNECTION_ERRORS as e:
            raise BrokerError(f"rabbitmq at {self.url}: {e!r}") from e

    async def dead_letter(
        self,
        delivery: AbstractIncomingMessage,
        queue: str,
        reason: DeadLetterReason,
        detail: str,
    ) -> None:
        """Moves ``delivery`` to the dead-letter queue with ``<reason>:
        <detail>`` in a header, waits for the confirm, then acks it. If the
        publish fails, the delivery stays unacked and comes back: a message
        is never dropped.

        :raises BrokerError: if the publish fails.
        """
        header = f"{reason}: {detail}"
        headers = dict(delivery.headers or {})
        headers.update(
            {
                Header.DEAD_LETTER_REASON: header,
                Header.DEAD_LETTER_QUEUE: queue,
                Header.DEAD_LETTER_EXCHANGE: delivery.exchange or "",
                Header.DEAD_LETTER_ROUTING_KEY: delivery.routing_key or "",
            }
        )
        # The original properties, persistent. Not its expiration, which
        # would let the dead letter vanish, nor its user_id, which RabbitMQ
        # refuses from any other user.
        copy = aio_pika.Message(
            delivery.body,
            headers=headers,
            content_type=delivery.content_type,
            content_encoding=delivery.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=delivery.priority,
            correlation_id=delivery.correlation_id,
            reply_to=delivery.reply_to,
            message_id=delivery.message_id,
            timestamp=delivery.timestamp,
            type=delivery.type,
            app_id=delivery.app_id,
        )
        await self.publish(topology.DEAD_LETTER_EXCHANGE, queue, copy, mandatory=True)
        await ack(delivery)
        log.warning(
            "message moved to the dead-letter queue", extra=fields(queue=queue, reason=header)
        )
        METRICS.dead_letters.labels(queue=queue, reason=str(reason)).inc()


async def ack(delivery: AbstractIncomingMessage) -> None:
    """Acks ``delivery``. If its channel is gone the ack is lost, and the
    broker redelivers the message: the same as not acking."""
    try:
        await delivery.ack()
    except CONNECTION_ERRORS as e:
        log.debug("ack not sent", extra=fields(error=repr(e)))


_CONNECTIONS = itertools.count()
"""Connection attempts so far in this process: where in a list of nodes the
next one starts."""


def _refused(url: str, e: BaseException) -> BrokerError:
    return BrokerError(
        f"rabbitmq at {redact(url)} refused the connection: {e}; check the user name and "
        "password (TASKER_AMQP_URL, TASKER_AMQP_PASSWORD or TASKER_AMQP_PASSWORD_FILE) and "
        "that the user may use the vhost",
        retryable=False,
    )
