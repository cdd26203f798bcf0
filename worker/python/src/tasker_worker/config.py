"""How a worker runs: :class:`WorkerConfig`, and reading it from the
environment as the Rust SDK's ``WorkerConfig::from_env`` does, so that a
service deploys the same way whatever its language.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tasker_worker import topology
from tasker_worker.errors import ConfigError
from tasker_worker.security import Security

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
"""Where RabbitMQ is when ``TASKER_AMQP_URL`` is not set."""

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
"""The size limit of a message, the same on every coordinator and worker."""

DEFAULT_HEARTBEAT = 5.0
"""Seconds between AMQP heartbeats. RabbitMQ closes a connection it has
heard nothing on for about two and a half heartbeats and hands its unacked
steps to another worker: this bounds how long a frozen worker holds them."""

MAX_NAME_LEN = 100
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)$")
_UNITS = {"ms": 0.001, "": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class WorkerConfig:
    """How a worker runs. Every field has a default except ``service``."""

    amqp_url: str = DEFAULT_AMQP_URL
    """The RabbitMQ URL (``amqp://`` or ``amqps://``), or the URLs of a
    cluster's nodes separated by commas."""
    service: str = ""
    """The service this worker is part of, such as ``billing``. The workers
    of one service share its queue of each namespace's steps, so they must
    serve the same callables. Required."""
    announce_every: float = 10.0
    """Seconds between the worker's announcements to the coordinators."""
    heartbeat: float = DEFAULT_HEARTBEAT
    """Seconds between AMQP heartbeats, unless the URL says (``?heartbeat=``)."""
    concurrency: int = 32
    """How many steps run at once: the consumers' prefetch. With several
    queues (``partitions``), each queue's consumer gets a prefetch of
    ``ceil(concurrency / partitions)``, since RabbitMQ applies it per
    consumer."""
    partitions: int = 1
    """How many queues the service's steps of each namespace are split over,
    from 1 to 64, the same on every worker of the service. One, the default,
    is the service's single queue; more spread its steps by task id over
    that many queues, through a consistent-hash exchange (the broker's
    ``rabbitmq_consistent_hash_exchange`` plugin), so that a busy service is
    not held to the one broker node that leads its queue."""
    shutdown_grace: float = 30.0
    """On shutdown, seconds in-flight steps get to finish before they are
    handed back to the queue."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger step-ready messages are dead-lettered, and a result that would
    make a larger step result is reported as ``result_too_large``."""
    max_redeliveries: int = 5
    """A step delivered more often than this is dead-lettered instead of
    run again: it probably crashes its worker."""
    name: str = field(default_factory=lambda: f"tasker-worker-{os.getpid()}")
    """Shown in the broker's connection list and in logs."""
    health_addr: tuple[str, int] | None = None
    """Where to serve ``/healthz``, ``/readyz`` and ``/metrics``, if anywhere."""
    remembered_results: int = 10_000
    """How many recent results the worker remembers, to answer a redelivered
    step it already finished without running it again."""
    amqp_password: str | None = field(default=None, repr=False)
    """The password of every URL of :attr:`amqp_url`, in place of any
    written there, so that the URL, often logged or shown, holds none."""
    tls_ca_file: str | None = None
    """For ``amqps://``: a PEM file of CA certificates trusted on top of the
    system's roots, for a broker with a certificate of a private CA."""
    tls_cert_file: str | None = None
    """For ``amqps://``: the client certificate (PEM), for a broker that asks
    for one (mutual TLS). With :attr:`tls_key_file`, or neither."""
    tls_key_file: str | None = None
    """For ``amqps://``: the private key (PEM) of :attr:`tls_cert_file`."""

    def __repr__(self) -> str:
        """The settings, with any password in ``amqp_url`` masked: a config
        may well end up in a log."""
        from tasker_worker.broker import redact  # here: broker imports this module

        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        shown["amqp_url"] = redact(self.amqp_url)
        return f"WorkerConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> WorkerConfig:
        """The default configuration, with what the environment sets:

        - ``TASKER_AMQP_URL``: the broker, or a cluster's nodes separated by commas;
        - ``TASKER_SERVICE``: the service name;
        - ``TASKER_AMQP_HEARTBEAT``: ``5s``, ``500ms``, or a number of seconds;
        - ``TASKER_MAX_MESSAGE_BYTES``: the message size limit;
        - ``TASKER_HEALTH_ADDR``: e.g. ``127.0.0.1:9104``;
        - ``TASKER_CONCURRENCY``: steps at once;
        - ``TASKER_PARTITIONS``: queues the service's steps are split over;
        - ``TASKER_AMQP_PASSWORD``, or ``TASKER_AMQP_PASSWORD_FILE`` (a file
          holding it): the password of every URL of ``TASKER_AMQP_URL``;
        - ``TASKER_TLS_CA_FILE``, ``TASKER_TLS_CERT_FILE``,
          ``TASKER_TLS_KEY_FILE``: the CA trusted besides the system's, and
          the client certificate and key, of ``amqps://`` connections.

        ``overrides`` (any field) win over the environment.

        :raises ConfigError: when a variable is set but cannot be read, both
            password variables are set, or only one of the client
            certificate and its key is.
        """
        env = os.environ if environ is None else environ
        config = cls()
        if (url := env.get("TASKER_AMQP_URL")) is not None:
            config.amqp_url = url
        if (service := env.get("TASKER_SERVICE")) is not None:
            config.service = service
        if (heartbeat := env.get("TASKER_AMQP_HEARTBEAT")) is not None:
            config.heartbeat = parse_duration(heartbeat, "TASKER_AMQP_HEARTBEAT")
        if (size := env.get("TASKER_MAX_MESSAGE_BYTES")) is not None:
            config.max_message_bytes = _positive_int(size, "TASKER_MAX_MESSAGE_BYTES", "bytes")
        if (addr := env.get("TASKER_HEALTH_ADDR")) is not None:
            config.health_addr = parse_address(addr, "TASKER_HEALTH_ADDR")
        if (concurrency := env.get("TASKER_CONCURRENCY")) is not None:
            config.concurrency = _positive_int(concurrency, "TASKER_CONCURRENCY", "steps")
        if (partitions := env.get("TASKER_PARTITIONS")) is not None:
            config.partitions = parse_partitions(partitions, "TASKER_PARTITIONS")
        security = Security.from_env(env)
        config.amqp_password = security.password
        config.tls_ca_file = security.tls_ca_file
        config.tls_cert_file = security.tls_cert_file
        config.tls_key_file = security.tls_key_file
        return dataclasses.replace(config, **overrides)  # type: ignore[arg-type]

    @property
    def security(self) -> Security:
        """The password and TLS files the worker connects with."""
        return Security(
            password=self.amqp_password,
            tls_ca_file=self.tls_ca_file,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
        )

    def check(self) -> None:
        """Raises :class:`ConfigError` for a configuration that cannot work."""
        problem = name_problem(self.service)
        if problem is not None:
            raise ConfigError(
                f"the worker's service name {self.service!r} {problem}; set "
                "WorkerConfig.service (or TASKER_SERVICE) to the service it is part of, "
                'such as "billing": workers of one service share its queue'
            )
        if not 1 <= self.concurrency <= 65535:
            raise ConfigError(
                f"concurrency is {self.concurrency}; give a number of steps from 1 to 65535"
            )
        if not 1 <= self.partitions <= topology.MAX_PARTITIONS:
            raise ConfigError(
                f"partitions is {self.partitions}; give a number of queues from 1 to "
                f"{topology.MAX_PARTITIONS}"
            )
        if self.max_message_bytes <= 0:
            raise ConfigError(
                f"max_message_bytes is {self.max_message_bytes}; give a positive number of bytes"
            )
        if self.announce_every <= 0:
            raise ConfigError(
                f"announce_every is {self.announce_every}; give a positive number of seconds"
            )
        self.security.check()
        if not 0 <= self.max_redeliveries < topology.DELIVERY_LIMIT:
            raise ConfigError(
                f"max_redeliveries is {self.max_redeliveries}; keep it from 0 to "
                f"{topology.DELIVERY_LIMIT - 1}, below the queues' delivery limit, so the "
                "worker dead-letters a message before the broker drops it"
            )


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be part of a queue name or a routing key, if it
    cannot (the same rule as the Rust ``names::name_problem``)."""
    if not name:
        return "is empty; give it a name"
    if len(name.encode()) > MAX_NAME_LEN:
        return f"is {len(name.encode())} bytes long; shorten it to {MAX_NAME_LEN} bytes or fewer"
    if not _NAME.fullmatch(name):
        bad = next(c for c in name if not (c.isascii() and (c.isalnum() or c in "_-")))
        return f"contains {bad!r}; use only ASCII letters, digits, '_' and '-'"
    return None


def parse_duration(text: str, what: str) -> float:
    """Seconds, from a duration as flags and variables spell it: ``250ms``,
    ``30s``, ``10m``, ``2h``, ``7d``, or a bare number of seconds.

    :raises ConfigError: naming ``what`` and how to write one.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(
            f"{what}={text!r} is not a duration; write it like 250ms, 30s, 10m, 2h or 7d"
        )
    number, unit = match.groups()
    if unit not in _UNITS:
        raise ConfigError(f"{what}={text!r} has the unit {unit!r}; use ms, s, m, h or d")
    return float(number) * _UNITS[unit]


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``(host, port)`` from ``host:port`` (``[::1]:9104`` for IPv6).

    :raises ConfigError: naming ``what`` and an example.
    """
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{what}={text!r} is not an address like 0.0.0.0:8080")
    return host, int(port)


def parse_partitions(text: str, what: str) -> int:
    """How many queues a service's steps are split over, from 1 to
    :data:`topology.MAX_PARTITIONS`.

    :raises ConfigError: naming ``what``, the value and what is allowed.
    """
    digits = text.strip()
    value = int(digits) if digits.isascii() and digits.isdigit() else 0
    if not 1 <= value <= topology.MAX_PARTITIONS:
        raise ConfigError(
            f"{what}={text!r} is not a whole number from 1 to {topology.MAX_PARTITIONS}; give "
            "the number of queues the service's steps are split over (1, the default, is one "
            "queue), the same on every worker of the service"
        )
    return value


def _positive_int(text: str, what: str, unit: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{what}={text!r} is not a number of {unit}") from None
    if value <= 0:
        raise ConfigError(f"{what}={text!r} must be a positive number of {unit}")
    return value
