"""Asking for tasks and waiting for their outcome.

A :class:`Client` publishes task requests (confirmed, ``mandatory``) with
``reply_to`` naming a private queue of its own: server-named, exclusive,
deleted with the connection. The coordinator answers there with the task's
task-finished message, or task-rejected if it refuses the request::

    async with await Client.connect() as client:
        submitted = await client.create_task("microservices", "user_registration", context)
        outcome = await submitted.wait(timeout=60)
        if isinstance(outcome, TaskRejected):
            ...

Replies are matched by ``correlation_id`` (the request id, which the
coordinator copies onto its replies) and, failing that, by their body's
``request_id``, which both task-finished and task-rejected carry, as
docs/protocol.md advises; for a coordinator that predates it, by the
``task_id`` of a task finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from tasker_worker import topology
from tasker_worker.broker import Broker, Publisher, message
from tasker_worker.config import DEFAULT_AMQP_URL, DEFAULT_HEARTBEAT, DEFAULT_MAX_MESSAGE_BYTES
from tasker_worker.errors import BrokerError, ReplyTimeoutError
from tasker_worker.logs import fields
from tasker_worker.messages import (
    DecodeError,
    TaskFinished,
    TaskRejected,
    decode_object,
    encode,
    task_id_of,
    task_request,
)
from tasker_worker.security import (
    CA_FILE_VAR,
    CERT_FILE_VAR,
    KEY_FILE_VAR,
    Security,
    password_from_env,
)
from tasker_worker.topology import MessageType

log = logging.getLogger(__name__)

Reply = TaskFinished | TaskRejected
"""How the coordinator answered a request."""


class Submitted:
    """A request that was published and confirmed, to wait on."""

    def __init__(self, client: Client, request_id: str, task_id: str) -> None:
        self.request_id = request_id
        """The request's id; replies carry it as their correlation id."""
        self.task_id = task_id
        """The task's id, as derived from the request."""
        self._client = client

    async def wait(self, timeout: float = 300.0) -> Reply:
        """The task's outcome: :class:`TaskFinished` once it has ended, or
        :class:`TaskRejected` if the coordinator refused the request.

        :raises ReplyTimeoutError: if no reply comes within ``timeout`` seconds.
        """
        reply = self._client._waiter(self.request_id)
        try:
            return await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            raise ReplyTimeoutError(
                f"no reply for task request {self.request_id} (task {self.task_id}) within "
                f"{timeout:g} s; is a coordinator serving that namespace running?"
            ) from None
        finally:
            self._client._forget(self.request_id)


class Client:
    """Publishes task requests and receives their replies on a private queue.
    Use :meth:`connect` to make one, and close it (or use ``async with``).

    When its connection dies (its broker node died, say), the next request
    connects again, to the next node of the URL's list, and goes out on the
    new connection. A request waiting for its reply when the connection
    died may not get it: the reply goes to the private queue that died with
    the connection, and :meth:`Submitted.wait` times out."""

    def __init__(self, broker: Broker, publisher: Publisher, reply_queue: str) -> None:
        self._broker = broker
        self._publisher = publisher
        self.reply_queue = reply_queue
        """The name of the private queue replies come to."""
        self._waiters: dict[str, asyncio.Future[Reply]] = {}
        self._tasks: dict[str, str] = {}
        self._connect_args: tuple[str, str, float, Security] | None = None
        self._reconnecting = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        amqp_url: str = DEFAULT_AMQP_URL,
        *,
        name: str = "tasker-client",
        heartbeat: float = DEFAULT_HEARTBEAT,
        amqp_password: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
    ) -> Client:
        """Connects to the broker and opens a private reply queue.
        ``amqp_url`` may list a cluster's nodes, separated by commas, as
        :meth:`Broker.connect` says.

        The password and the TLS files are as a worker's
        (:class:`~tasker_worker.WorkerConfig`): those not given here come
        from the environment (``TASKER_AMQP_PASSWORD`` or
        ``TASKER_AMQP_PASSWORD_FILE``, ``TASKER_TLS_CA_FILE``, and
        ``TASKER_TLS_CERT_FILE`` with ``TASKER_TLS_KEY_FILE``).

        :raises ConfigError: if ``amqp_url`` is not an AMQP URL, or the
            password or the TLS files are set wrong or cannot be read.
        :raises BrokerError: if the broker cannot be reached or refuses us,
            saying what to check when the TLS handshake failed.
        """
        security = _security(amqp_password, tls_ca_file, tls_cert_file, tls_key_file)
        broker, publisher, queue = await _session(amqp_url, name, heartbeat, security)
        try:
            client = cls(broker, publisher, queue.name)
            client._connect_args = (amqp_url, name, heartbeat, security)
            await queue.consume(client._on_reply, no_ack=True)
        except BaseException:
            await broker.close()
            raise
        return client

    async def _reconnect(self, dead: Broker) -> None:
        """Replaces the connection ``dead`` with a new one, unless another
        request did so already."""
        async with self._reconnecting:
            if self._broker is not dead or self._connect_args is None:
                return
            broker, publisher, queue = await _session(*self._connect_args)
            try:
                await queue.consume(self._on_reply, no_ack=True)
            except BaseException:
                await broker.close()
                raise
            self._broker, self._publisher, self.reply_queue = broker, publisher, queue.name
            await dead.close()
            log.info("client connected again", extra=fields(broker=broker.url))

    async def create_task(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any],
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Submitted:
        """Asks for a task of template ``namespace/name`` (its highest
        version unless ``version`` names one) with ``context`` as its input.
        A second request with the same ``idempotency_key`` gets the same
        task.

        :raises BrokerError: if the request was not confirmed by the broker.
        """
        request_id = request_id or str(uuid.uuid4())
        request = task_request(
            namespace,
            name,
            context,
            request_id=request_id,
            version=version,
            idempotency_key=idempotency_key,
        )
        task_id = task_id_of(request)
        # The waiter is registered before the publish, so that no reply can
        # come before it.
        self._waiter(request_id)
        self._tasks[task_id] = request_id
        try:
            await self._publish_request(namespace, encode(request), task_id, request_id)
        except BaseException:
            self._forget(request_id)
            raise
        return Submitted(self, request_id, task_id)

    async def _publish_request(
        self, namespace: str, body: bytes, task_id: str, request_id: str
    ) -> None:
        """Publishes a request with this client's reply queue; on a
        connection that died, connects again and publishes it once more:
        the coordinator knows a request by its id."""
        for attempt in (1, 2):
            broker = self._broker
            outgoing = message(
                body,
                MessageType.TASK_REQUEST,
                task_id,
                message_id=request_id,
                correlation_id=request_id,
                reply_to=self.reply_queue,
            )
            try:
                await self._publisher.publish(
                    topology.REQUESTS_EXCHANGE, namespace, outgoing, mandatory=True
                )
                return
            except BrokerError:
                if attempt == 2 or not broker.connection.is_closed:
                    raise
            await self._reconnect(broker)

    async def run_task(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any],
        *,
        timeout: float = 300.0,
        version: str | None = None,
        idempotency_key: str | None = None,
    ) -> Reply:
        """:meth:`create_task`, then :meth:`Submitted.wait`."""
        submitted = await self.create_task(
            namespace, name, context, version=version, idempotency_key=idempotency_key
        )
        return await submitted.wait(timeout)

    async def close(self) -> None:
        """Closes the connection; the reply queue goes with it."""
        for waiter in self._waiters.values():
            waiter.cancel()
        await self._broker.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _waiter(self, request_id: str) -> asyncio.Future[Reply]:
        waiter = self._waiters.get(request_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[request_id] = waiter
        return waiter

    def _forget(self, request_id: str) -> None:
        self._waiters.pop(request_id, None)
        for task_id in [t for t, r in self._tasks.items() if r == request_id]:
            del self._tasks[task_id]

    async def _on_reply(self, delivery: AbstractIncomingMessage) -> None:
        """Hands a reply to its waiter. Replies are notifications on a
        private queue: one that cannot be read is logged, not dead-lettered."""
        try:
            body = decode_object(delivery.body, DEFAULT_MAX_MESSAGE_BYTES)
            reply: Reply
            if delivery.type == MessageType.TASK_FINISHED:
                reply = TaskFinished.from_json(body)
                by_body = reply.request_id or self._tasks.get(reply.task_id)
            elif delivery.type == MessageType.TASK_REJECTED:
                reply = TaskRejected.from_json(body)
                by_body = reply.request_id
            else:
                return  # a command reply or another kind this client never asks for
        except DecodeError as e:
            log.warning(
                "unreadable reply from the coordinator; ignoring it",
                extra=fields(type=delivery.type, error=str(e)),
            )
            return
        request_id = delivery.correlation_id or by_body
        waiter = self._waiters.get(request_id or "")
        if waiter is None and by_body is not None:
            waiter = self._waiters.get(by_body)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)


def _security(
    password: str | None, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> Security:
    """What :meth:`Client.connect` was given, and the environment's settings
    for the rest. The certificate and its key go together: either both
    come from the arguments, or both from the environment.

    :raises ConfigError: as :meth:`Security.from_env` does.
    """
    env = os.environ
    if password is None:
        password = password_from_env(env)
    if ca_file is None:
        ca_file = env.get(CA_FILE_VAR)
    if cert_file is None and key_file is None:
        cert_file, key_file = env.get(CERT_FILE_VAR), env.get(KEY_FILE_VAR)
    security = Security(password, ca_file, cert_file, key_file)
    security.check()
    return security


async def _session(
    amqp_url: str, name: str, heartbeat: float, security: Security
) -> tuple[Broker, Publisher, AbstractQueue]:
    """A connection, its publisher, and a private reply queue (not yet
    consumed), with the requests exchange declared."""
    broker = await Broker.connect(amqp_url, name, heartbeat, security)
    try:
        publisher = await broker.publisher()
        channel = await broker.channel()
        await broker.declare_requests_exchange(channel)
        queue = await broker.private_queue(channel)
    except BaseException:
        await broker.close()
        raise
    return broker, publisher, queue
