"""The worker's announcements: once it has declared its queues and consumes,
every ``announce_every`` seconds after, and once more with ``leaving`` when
it stops on purpose. Coordinators keep them as the list of live workers that
``tasker workers`` shows, and count a worker gone after three silent
intervals.

Announcements are not mandatory: a coordinator that is not there yet hears
the next one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasker_worker import topology
from tasker_worker.broker import Publisher, message
from tasker_worker.errors import BrokerError
from tasker_worker.logs import fields
from tasker_worker.messages import JsonObject, encode, now, timestamp
from tasker_worker.topology import MessageType
from tasker_worker.version import SDK_VERSION

log = logging.getLogger(__name__)

LANGUAGE = "python"


@dataclass(frozen=True)
class ServedNamespace:
    """One namespace a worker serves: its service queue and its callables.
    ``queue`` stays the service's queue name when its steps are split over
    ``partitions`` queues (the name of its exchange then)."""

    namespace: str
    queue: str
    callables: list[str]
    partitions: int = 1

    def entry(self) -> JsonObject:
        """Its entry of an announcement's ``serves``; ``partitions`` only
        when the steps are split, as the Rust worker writes it."""
        entry: JsonObject = {
            "namespace": self.namespace,
            "queue": self.queue,
            "callables": list(self.callables),
        }
        if self.partitions > 1:
            entry["partitions"] = self.partitions
        return entry


@dataclass(frozen=True)
class Identity:
    """Who this worker process is, for its announcements."""

    worker_id: str
    service: str
    concurrency: int
    started_at: datetime
    every: float

    def announcement(self, serves: list[ServedNamespace], leaving: bool) -> JsonObject:
        """The announcement of a worker serving ``serves``."""
        body: dict[str, Any] = {
            "protocol_version": topology.PROTOCOL_VERSION,
            "worker_id": self.worker_id,
            "service": self.service,
            "serves": [s.entry() for s in serves],
            "language": LANGUAGE,
            "sdk_version": SDK_VERSION,
            "host": socket.gethostname() or "unknown",
            "pid": os.getpid(),
            "concurrency": self.concurrency,
            "started_at": timestamp(self.started_at),
            "sent_at": timestamp(now()),
            "every_seconds": float(self.every),
        }
        if leaving:
            body["leaving"] = True
        return body

    async def announce(
        self, publisher: Publisher, serves: list[ServedNamespace], *, leaving: bool
    ) -> None:
        """Publishes one announcement and waits for its confirm.

        :raises BrokerError: if it was not sent.
        """
        body = encode(self.announcement(serves, leaving))
        await publisher.publish(
            topology.EVENTS_EXCHANGE,
            topology.WORKER_ANNOUNCE_ROUTING_KEY,
            message(body, MessageType.WORKER_ANNOUNCEMENT),
            mandatory=False,
        )

    async def keep_announcing(self, publisher: Publisher, serves: list[ServedNamespace]) -> None:
        """Announces the worker every :attr:`every` seconds until cancelled.
        A failed announcement is tried again at the next one: the session
        notices a lost connection by itself."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.announce(publisher, serves, leaving=False)
            except BrokerError as e:
                log.debug("announcement not sent; the next one will be", extra=fields(error=str(e)))
