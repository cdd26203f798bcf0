"""TLS, passwords kept out of the URL, and a worker's least-privilege user,
against the servers deploy/dev runs: its TLS listener, which asks for a
client certificate, its certificates (``$TASKER_STATE_DIR/tls``, by default
``.dev/tls``), and the user ``tasker-test-probe``, whose password is in
``$TASKER_STATE_DIR/secrets`` and who may run the service ``probe`` of the
namespaces ``lp_…`` only."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import conftest
import pytest
from conftest import REPO, Bus, eventually, step_ready
from test_worker import ECHO, Echo
from yarl import URL

from tasker_worker import (
    BrokerError,
    Client,
    ConfigError,
    Security,
    TaskFinished,
    Worker,
    WorkerConfig,
    topology,
)
from tasker_worker.broker import Broker, message, redact
from tasker_worker.security import tls_failure
from tasker_worker.topology import MessageType

STATE = Path(os.environ.get("TASKER_STATE_DIR", REPO / ".dev"))
TLS = STATE / "tls"
CA, OTHER_CA = str(TLS / "ca.pem"), str(TLS / "other-ca.pem")
CERT, KEY = str(TLS / "client.pem"), str(TLS / "client.key")
DEV_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
"""The node deploy/dev runs: only it has the TLS listener and the users of
deploy/dev.d/security.sh, also when the other tests run against a cluster
(``deploy/dev cluster test``)."""
TLS_URL = "amqps://guest:guest@127.0.0.1:5671/%2f"
PROBE_USER = "tasker-test-probe"
PROBE_SECRET = STATE / "secrets" / f"rabbitmq-{PROBE_USER}"
# The node the fixtures use, as the probe user, with no password.
PROBE_URL = str(URL(DEV_URL).with_user(PROBE_USER))
PROBE_SERVICE = "probe"
TLS_VARIABLES = (
    "TASKER_AMQP_PASSWORD",
    "TASKER_AMQP_PASSWORD_FILE",
    "TASKER_TLS_CA_FILE",
    "TASKER_TLS_CERT_FILE",
    "TASKER_TLS_KEY_FILE",
)


@pytest.fixture(autouse=True)
def _on_the_dev_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fixture of these tests (the bus, the workers, the coordinator)
    talks to the dev node."""
    monkeypatch.setattr(conftest, "AMQP_URL", DEV_URL)
    monkeypatch.setattr(conftest, "NODE_URL", DEV_URL)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No password or TLS file of the environment the tests run in: each
    test sets what it means to."""
    for variable in TLS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def field_values(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every message and field value logged, as text."""
    texts = []
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.extend(str(v) for v in getattr(record, "tasker_fields", {}).values())
    return texts


# ------------------------------------------------------------ configuration ---


def test_the_password_and_tls_variables_are_read(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret/p@ss\n\n")
    config = WorkerConfig.from_env(
        {
            "TASKER_AMQP_PASSWORD_FILE": str(secret),
            "TASKER_TLS_CA_FILE": "/etc/tasker/ca.pem",
            "TASKER_TLS_CERT_FILE": "/etc/tasker/client.pem",
            "TASKER_TLS_KEY_FILE": "/etc/tasker/client.key",
        }
    )
    assert config.amqp_password == "s3cret/p@ss"
    assert config.security == Security(
        "s3cret/p@ss", "/etc/tasker/ca.pem", "/etc/tasker/client.pem", "/etc/tasker/client.key"
    )
    # The password is kept out of what a configuration shows.
    assert "s3cret" not in repr(config)
    assert "s3cret" not in repr(config.security)
    assert WorkerConfig.from_env({"TASKER_AMQP_PASSWORD": "inline"}).amqp_password == "inline"
    defaults = WorkerConfig.from_env({})
    assert defaults.security == Security()
    assert WorkerConfig.from_env({}, tls_ca_file="/ca.pem").tls_ca_file == "/ca.pem"


def test_the_password_comes_from_one_variable_only(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-file")
    with pytest.raises(ConfigError) as raised:
        WorkerConfig.from_env(
            {"TASKER_AMQP_PASSWORD": "inline-secret", "TASKER_AMQP_PASSWORD_FILE": str(secret)}
        )
    text = str(raised.value)
    assert "TASKER_AMQP_PASSWORD and TASKER_AMQP_PASSWORD_FILE" in text, text
    assert "inline-secret" not in text, text
    assert "from-the-file" not in text, text


def test_a_password_file_that_cannot_be_read_is_named_but_never_shown(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as raised:
        WorkerConfig.from_env({"TASKER_AMQP_PASSWORD_FILE": str(missing)})
    assert str(raised.value).startswith(f"TASKER_AMQP_PASSWORD_FILE={missing}: cannot read")
    garbled = tmp_path / "garbled"
    garbled.write_bytes(b"\xffs3cret-bytes\xfe")
    with pytest.raises(ConfigError) as raised:
        WorkerConfig.from_env({"TASKER_AMQP_PASSWORD_FILE": str(garbled)})
    assert str(garbled) in str(raised.value)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    "half", [{"TASKER_TLS_CERT_FILE": "/c.pem"}, {"TASKER_TLS_KEY_FILE": "/c.key"}]
)
def test_the_client_certificate_and_its_key_go_together(half: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as raised:
        WorkerConfig.from_env(half)
    assert "TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE" in str(raised.value)
    config = WorkerConfig(service="svc", tls_cert_file="/c.pem")
    with pytest.raises(ConfigError, match="TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE"):
        config.check()


def test_the_password_goes_into_every_url_encoded() -> None:
    security = Security(password="p@ss/w,rd%:#")
    for url in ("amqp://tasker@n1:5672/%2f", "amqps://tasker:old@n2:5671/%2f?heartbeat=3"):
        with_password = security.apply_password(URL(url))
        assert with_password.password == "p@ss/w,rd%:#"
        assert with_password.raw_password == "p%40ss%2Fw,rd%25%3A%23"
        assert with_password.user == "tasker"
        assert "old" not in str(with_password)
        assert "p%40ss" not in redact(str(with_password))
    assert Security().apply_password(URL("amqp://u:p@n1/%2f")).password == "p"
    with pytest.raises(ConfigError, match="names no user") as raised:
        security.apply_password(URL("amqp://n1:5672/%2f"))
    assert "p@ss" not in str(raised.value)


def test_tls_files_that_cannot_be_used_are_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    cases = [
        (Security(tls_ca_file=missing), f"TASKER_TLS_CA_FILE={missing}: cannot read the file"),
        (Security(tls_ca_file=KEY), f"TASKER_TLS_CA_FILE={KEY}: no CA certificate in PEM"),
        (
            Security(tls_cert_file=CERT, tls_key_file=missing),
            f"TASKER_TLS_KEY_FILE={missing}: cannot read the file",
        ),
        (
            Security(tls_cert_file=missing, tls_key_file=KEY),
            f"TASKER_TLS_CERT_FILE={missing}: cannot read the file",
        ),
        (
            Security(tls_cert_file=CERT, tls_key_file=CA),
            f"TASKER_TLS_CERT_FILE={CERT} and TASKER_TLS_KEY_FILE={CA} are not",
        ),
    ]
    for security, expected in cases:
        with pytest.raises(ConfigError) as raised:
            security.ssl_context()
        assert str(raised.value).startswith(expected), raised.value
    context = Security(tls_ca_file=CA, tls_cert_file=CERT, tls_key_file=KEY).ssl_context()
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_what_counts_as_a_failed_tls_handshake() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    wrapped = aiormq.exceptions.AMQPConnectionError(1, "certificate verify failed")
    wrapped.__cause__ = verify
    assert "self-signed certificate" in (tls_failure(wrapped) or "")
    # Without a client certificate, TLS 1.3 brokers drop the connection
    # after the handshake; aiormq chains its exceptions in a loop.
    reset = ConnectionResetError(104, "Connection reset by peer")
    closed = aiormq.exceptions.AMQPConnectionError(f"Server connection reset: {reset!r}")
    closed.__cause__ = reset
    reset.__context__ = closed
    assert "closed the connection before AMQP began" in (tls_failure(closed) or "")
    assert tls_failure(ConnectionRefusedError(111, "Connection refused")) is None


# ----------------------------------------------------------------------- TLS ---


def template(namespace: str) -> str:
    return f"""
name: echo
namespace_name: {namespace}
version: 1.0.0
steps:
  - name: echo
    handler:
      callable: {ECHO}
"""


async def test_a_task_runs_with_its_worker_and_client_over_mutual_tls(
    bus: Bus, namespace: str, start_worker: Any, start_coordinator: Any
) -> None:
    # The coordinator connects as it does today, without TLS.
    await start_coordinator({"echo.yaml": template(namespace)}, [namespace])
    settings = WorkerConfig.from_env(
        {
            "TASKER_AMQP_URL": TLS_URL,
            "TASKER_TLS_CA_FILE": CA,
            "TASKER_TLS_CERT_FILE": CERT,
            "TASKER_TLS_KEY_FILE": KEY,
        }
    )
    echo = Echo()
    await start_worker(
        {ECHO: echo},
        amqp_url=settings.amqp_url,
        tls_ca_file=settings.tls_ca_file,
        tls_cert_file=settings.tls_cert_file,
        tls_key_file=settings.tls_key_file,
    )
    async with await Client.connect(
        TLS_URL, tls_ca_file=CA, tls_cert_file=CERT, tls_key_file=KEY
    ) as client:
        assert client._broker.url == redact(TLS_URL)
        finished = await client.run_task(namespace, "echo", {"over": "tls"}, timeout=60)

    assert isinstance(finished, TaskFinished), finished
    assert finished.status == "complete", finished
    assert finished.step("echo").result == {"echo": {"over": "tls"}, "attempt": 1}
    assert echo.calls == 1


async def test_a_broker_certificate_of_another_ca_is_refused_and_the_error_says_what_to_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(BrokerError) as raised:
        await Client.connect(TLS_URL, tls_ca_file=OTHER_CA, tls_cert_file=CERT, tls_key_file=KEY)
    text = str(raised.value)
    assert f"the TLS handshake with rabbitmq at {redact(TLS_URL)} failed" in text, text
    assert "certificate" in text, text
    assert "TASKER_TLS_CA_FILE" in text, text
    assert ":guest@" not in text, text

    # A worker retries, and logs the same.
    caplog.set_level(logging.WARNING, logger="tasker_worker.health")
    config = WorkerConfig(
        amqp_url=TLS_URL,
        service="svc",
        tls_ca_file=OTHER_CA,
        tls_cert_file=CERT,
        tls_key_file=KEY,
    )
    shutdown = asyncio.Event()
    running = asyncio.create_task(
        Worker(config).namespace(f"py_{uuid.uuid4().hex[:12]}").handler(ECHO, Echo()).run(shutdown)
    )
    try:
        await eventually(
            lambda: _logged(caplog),
            lambda texts: any("TASKER_TLS_CA_FILE" in t for t in texts),
            what="the worker logging the failed TLS handshake",
        )
    finally:
        shutdown.set()
        await asyncio.wait_for(running, 30)
    assert not any(":guest@" in t for t in field_values(caplog))


async def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return field_values(caplog)


async def test_a_connection_without_a_client_certificate_is_refused() -> None:
    with pytest.raises(BrokerError) as raised:
        await Client.connect(TLS_URL, tls_ca_file=CA)
    text = str(raised.value)
    assert f"the TLS handshake with rabbitmq at {redact(TLS_URL)} failed" in text, text
    assert "TASKER_TLS_CERT_FILE" in text, text


async def test_tls_files_apply_to_amqps_urls_only(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    async with await Client.connect(DEV_URL, tls_ca_file=missing):
        pass
    with pytest.raises(ConfigError, match=f"TASKER_TLS_CA_FILE={missing}: cannot read"):
        await Client.connect(TLS_URL, tls_ca_file=missing, tls_cert_file=CERT, tls_key_file=KEY)


# ----------------------------------------------------------------- passwords ---


async def test_the_password_comes_from_a_file(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TASKER_AMQP_PASSWORD_FILE", str(PROBE_SECRET))
    # Replacing one written in the URL, too.
    for url in (PROBE_URL, str(URL(PROBE_URL).with_password("stale"))):
        monkeypatch.setenv("TASKER_AMQP_URL", url)
        config = WorkerConfig.from_env()
        broker = await Broker.connect(config.amqp_url, "test-security", 5.0, config.security)
        assert broker.url == redact(url)
        await broker.close()
    # The client reads it from the environment too.
    async with await Client.connect(PROBE_URL) as client:
        assert client.reply_queue.startswith("amq.gen-")
    password = PROBE_SECRET.read_text().strip()
    assert not any(password in t for t in field_values(caplog))


async def test_a_wrong_password_is_refused_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{uuid.uuid4().hex}"
    secret = tmp_path / "password"
    secret.write_text(wrong + "\n")
    monkeypatch.setenv("TASKER_AMQP_PASSWORD_FILE", str(secret))
    with pytest.raises(BrokerError) as raised:
        await Client.connect(PROBE_URL)
    assert not raised.value.retryable
    assert "refused the connection" in str(raised.value)
    assert "TASKER_AMQP_PASSWORD_FILE" in str(raised.value)
    assert wrong not in str(raised.value)
    assert not any(wrong in t for t in field_values(caplog))

    monkeypatch.setenv("TASKER_AMQP_PASSWORD", wrong)
    with pytest.raises(ConfigError, match="both TASKER_AMQP_PASSWORD and") as both:
        await Client.connect(PROBE_URL)
    assert wrong not in str(both.value)


# ---------------------------------------------------------- least privilege ---


@pytest.fixture
def lp_namespace(bus: Bus) -> str:
    """A namespace the probe user may serve; its queues and its steps
    exchange are deleted at the end, as guest."""
    ns = f"lp_{uuid.uuid4().hex[:12]}"
    bus.remember(
        topology.request_queue(ns),
        topology.result_queue(ns),
        topology.service_queue(ns, PROBE_SERVICE),
    )
    bus.remember_exchange(topology.namespace_steps_exchange(ns))
    return ns


@pytest.fixture
async def probe_broker() -> AsyncIterator[Broker]:
    """A connection as the probe user, as its worker makes it."""
    config = WorkerConfig.from_env(
        {"TASKER_AMQP_URL": PROBE_URL, "TASKER_AMQP_PASSWORD_FILE": str(PROBE_SECRET)}
    )
    broker = await Broker.connect(config.amqp_url, "test-probe", 5.0, config.security)
    yield broker
    await broker.close()


async def declare_as_coordinator(namespace: str, callables: tuple[str, ...] = (ECHO,)) -> None:
    """The shared objects of ``namespace``, declared as guest, as a
    coordinator would, with its steps exchange bound to ``tasker.steps``
    with the keys of ``callables``."""
    broker = await Broker.connect(DEV_URL, "test-coordinator", 5.0)
    try:
        channel = await broker.channel()
        await broker.declare_common(channel)
        await broker.declare_namespace(channel, namespace)
        await broker.route_namespace_steps(namespace, callables, strict=True)
    finally:
        await broker.close()


async def next_result(bus: Bus, namespace: str) -> dict[str, Any]:
    """The next message of ``namespace``'s result queue, taken as guest."""
    channel = await bus.connection.channel()
    queue = await channel.get_queue(topology.result_queue(namespace), ensure=False)

    async def take() -> aio_pika.abc.AbstractIncomingMessage | None:
        return await queue.get(no_ack=True, fail=False)

    delivery = await eventually(take, lambda d: d is not None, what="a step result")
    assert delivery is not None
    await channel.close()
    body: dict[str, Any] = json.loads(delivery.body)
    return body


async def test_a_least_privilege_worker_runs_its_steps_without_declaring_shared_objects(
    bus: Bus, lp_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    await declare_as_coordinator(lp_namespace)
    caplog.set_level(logging.DEBUG, logger="tasker_worker.broker")
    config = WorkerConfig.from_env(
        {
            "TASKER_AMQP_URL": PROBE_URL,
            "TASKER_AMQP_PASSWORD_FILE": str(PROBE_SECRET),
            "TASKER_SERVICE": PROBE_SERVICE,
        }
    )
    echo = Echo()
    worker = Worker(config).namespace(lp_namespace).handler(ECHO, echo)
    shutdown = asyncio.Event()
    running = asyncio.create_task(worker.run(shutdown))
    try:
        queue = topology.service_queue(lp_namespace, PROBE_SERVICE)
        consuming = asyncio.ensure_future(bus.wait_for_consumers(queue))
        await asyncio.wait([consuming, running], return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            consuming.cancel()
            running.result()
            pytest.fail("the worker stopped before it consumed")
        await consuming

        await bus.publish_step(
            step_ready(lp_namespace, ECHO, context={"least": "privilege"}), lp_namespace, ECHO
        )
        result = await next_result(bus, lp_namespace)
        assert result["status"] == "completed", result
        assert result["result"]["echo"] == {"least": "privilege"}
        assert echo.calls == 1
    finally:
        shutdown.set()
        await asyncio.wait_for(running, 30)

    refused = {
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.DEBUG and record.getMessage().startswith("not allowed")
    }
    for shared in (
        topology.EVENTS_EXCHANGE,
        topology.DEAD_LETTER_EXCHANGE,
        topology.DEAD_LETTER_QUEUE,
        topology.REQUESTS_EXCHANGE,
        topology.UNROUTED_REQUESTS_EXCHANGE,
        topology.UNROUTED_REQUESTS_QUEUE,
        topology.request_queue(lp_namespace),
        topology.result_queue(lp_namespace),
        topology.STEPS_EXCHANGE,
        topology.namespace_steps_exchange(lp_namespace),
    ):
        assert f"not allowed to declare {shared}; the coordinators declare it" in refused, refused
    steps = topology.namespace_steps_exchange(lp_namespace)
    key = topology.step_routing_key(lp_namespace, ECHO)
    assert (
        f"not allowed to bind {steps} to {topology.STEPS_EXCHANGE} with {key}; "
        "the coordinators bind it"
    ) in refused, refused
    # Nothing the worker owns was passed over.
    assert not any(PROBE_SERVICE in line for line in refused), refused


async def test_a_least_privilege_connection_cannot_reach_beyond_its_service(
    bus: Bus, lp_namespace: str, probe_broker: Broker
) -> None:
    await declare_as_coordinator(lp_namespace)

    # Another queue: not consumed.
    channel = await probe_broker.channel()
    results = await channel.get_queue(topology.result_queue(lp_namespace), ensure=False)

    async def ignore(_: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await results.consume(ignore)

    # The events exchange, with a routing key not its own: refused, and the
    # publisher's channel closes with it.
    for routing_key in ("task.finished.x.y", "step.result.other_ns"):
        publisher = await probe_broker.publisher()
        outgoing = message(b"{}", MessageType.STEP_RESULT)
        with pytest.raises(BrokerError, match="ACCESS_REFUSED") as raised:
            await publisher.publish(
                topology.EVENTS_EXCHANGE, routing_key, outgoing, mandatory=False
            )
        assert routing_key in str(raised.value)
    # Its own namespace's results it may publish.
    publisher = await probe_broker.publisher()
    await publisher.publish(
        topology.EVENTS_EXCHANGE,
        topology.step_result_routing_key(lp_namespace),
        message(b"{}", MessageType.STEP_RESULT),
        mandatory=True,
    )
    assert await next_result(bus, lp_namespace) == {}


async def test_a_least_privilege_worker_fails_loudly_on_what_it_owns(
    probe_broker: Broker,
) -> None:
    # A namespace its user may not serve: the refusal of its own queue is an error.
    namespace = f"py_{uuid.uuid4().hex[:12]}"
    channel = await probe_broker.channel()
    with pytest.raises(BrokerError, match="ACCESS_REFUSED") as raised:
        await probe_broker.declare_service(channel, namespace, PROBE_SERVICE, [ECHO])
    assert topology.service_queue(namespace, PROBE_SERVICE) in str(raised.value)


async def test_a_least_privilege_user_cannot_bind_to_another_namespaces_steps(
    bus: Bus, lp_namespace: str, probe_broker: Broker
) -> None:
    await declare_as_coordinator(lp_namespace)
    # Another namespace, outside the probe's: its steps exchange bound to
    # tasker.steps, as a coordinator serving it would, and a queue of its own.
    other = f"other_{uuid.uuid4().hex[:12]}"
    other_steps = topology.namespace_steps_exchange(other)
    other_key = topology.step_routing_key(other, ECHO)
    bus.remember_exchange(other_steps)
    exchange = await bus.channel.declare_exchange(
        other_steps, aio_pika.ExchangeType.DIRECT, durable=True
    )
    await exchange.bind(topology.STEPS_EXCHANGE, routing_key=other_key)
    others = await bus.watch(other_steps, other_key)

    own_steps = topology.namespace_steps_exchange(lp_namespace)
    queue_name = topology.service_queue(lp_namespace, PROBE_SERVICE)
    channel = await probe_broker.channel()
    [queue] = await probe_broker.declare_service(channel, lp_namespace, PROBE_SERVICE, [ECHO])
    assert queue.name == queue_name

    async def bind_queue(own: aio_pika.abc.AbstractChannel, exchange: str) -> None:
        mine = await own.get_queue(queue_name, ensure=False)
        await mine.bind(exchange, routing_key=other_key)

    async def bind_private_queue(own: aio_pika.abc.AbstractChannel) -> None:
        private = await own.declare_queue("", exclusive=True, auto_delete=True)
        await private.bind(topology.STEPS_EXCHANGE, routing_key="any/key")

    async def bind_own_steps(own: aio_pika.abc.AbstractChannel) -> None:
        mine = await own.get_exchange(own_steps, ensure=False)
        await mine.bind(topology.STEPS_EXCHANGE, routing_key=other_key)

    attempts = {
        "its queue to tasker.steps": lambda own: bind_queue(own, topology.STEPS_EXCHANGE),
        "a server-named queue to tasker.steps": bind_private_queue,
        "its queue to another namespace's exchange": lambda own: bind_queue(own, other_steps),
        "its namespace's exchange to tasker.steps": bind_own_steps,
    }
    for what, attempt in attempts.items():
        # A refusal closes the channel: each on a channel of its own.
        try:
            await attempt(await probe_broker.channel())
        except aiormq.exceptions.ChannelAccessRefused:
            continue
        pytest.fail(f"the probe user could bind {what}")
    # Its own namespace's exchange it may read, with any key; steps reach
    # it only with the keys the coordinators bind it to tasker.steps with.
    await bind_queue(await probe_broker.channel(), own_steps)

    await bus.publish_step(step_ready(other, ECHO), other, ECHO)
    assert (await others.next_json(what="the other namespace's step"))["namespace"] == other
    await bus.publish_step(step_ready(lp_namespace, ECHO), lp_namespace, ECHO)
    # Both were confirmed, hence routed: the probe's queue holds its own
    # namespace's step only.
    taken = await bus.channel.get_queue(queue_name, ensure=False)
    first = await taken.get(no_ack=True, fail=False)
    assert first is not None
    assert json.loads(first.body)["namespace"] == lp_namespace
    assert await taken.get(no_ack=True, fail=False) is None


async def test_a_least_privilege_worker_splits_its_service_and_drains_its_former_queue(
    bus: Bus, lp_namespace: str, probe_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    await declare_as_coordinator(lp_namespace)
    former = topology.service_queue(lp_namespace, PROBE_SERVICE)
    names = [topology.partition_queue(lp_namespace, PROBE_SERVICE, i) for i in range(2)]
    bus.remember(*names)
    bus.remember_exchange(topology.service_exchange(lp_namespace, PROBE_SERVICE))
    channel = await probe_broker.channel()
    await probe_broker.declare_service(channel, lp_namespace, PROBE_SERVICE, [ECHO])

    async def publish() -> None:
        task_id = str(uuid.uuid4())
        await bus.publish_step(
            step_ready(lp_namespace, ECHO, task_id=task_id),
            lp_namespace,
            ECHO,
            headers={topology.Header.TASK_ID: task_id},
        )

    async def ready() -> list[int]:
        states = [await bus.queue_state(name) for name in [*names, former]]
        return [-1 if state is None else state[0] for state in states]

    await publish()
    with caplog.at_level(logging.DEBUG, logger="tasker_worker.broker"):
        queues = await probe_broker.declare_service(
            channel, lp_namespace, PROBE_SERVICE, [ECHO], partitions=2
        )
    assert [queue.name for queue in queues] == [*names, former]
    # It may not unbind its former queue from tasker.steps, where it could
    # not have bound it: it goes on without.
    assert (
        f"not allowed to unbind {former} from {topology.STEPS_EXCHANGE}; "
        "its user could not have bound it there"
    ) in caplog.messages, caplog.messages
    await publish()
    await eventually(
        ready,
        lambda counts: sum(counts[:2]) == 1 and counts[2] == 1,
        what="the new step in a partition queue, the old one where it was",
    )
