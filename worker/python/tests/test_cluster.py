"""A cluster's nodes in one URL setting, against the real RabbitMQ: nodes
that cannot be reached are passed over, and when none can be, the error
names them all without their passwords."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from conftest import AMQP_URL, Bus, step_ready
from test_worker import ECHO, Echo

from tasker_worker import BrokerError, Client, ConfigError
from tasker_worker.broker import Broker, broker_urls, redact

PASSWORD = "n0t-for-logs"

# The node that answers: the first of a cluster's, when TASKER_AMQP_URL lists several.
LIVE = broker_urls(AMQP_URL)[0]


def dead_url() -> str:
    """An AMQP URL at a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"amqp://guest:{PASSWORD}@127.0.0.1:{port}/%2f"


async def test_each_connection_passes_over_the_nodes_that_are_down() -> None:
    nodes = f" {dead_url()} ,{LIVE}, {dead_url()}"
    for attempt in range(3):
        broker = await Broker.connect(nodes, f"test-cluster-{attempt}", heartbeat=5.0)
        try:
            assert broker.url == redact(LIVE), f"attempt {attempt} reached {broker.url}"
            assert not broker.connection.is_closed
        finally:
            await broker.close()
    client = await Client.connect(nodes)
    await client.close()


async def test_connections_start_at_the_next_node() -> None:
    # Two spellings of the one real broker, to see which is reached.
    other = f"{LIVE}?heartbeat=7"
    reached: set[str] = set()
    for attempt in range(2):
        broker = await Broker.connect(f"{LIVE},{other}", f"test-cluster-{attempt}", 5.0)
        reached.add(broker.url)
        await broker.close()
    assert reached == {redact(LIVE), redact(other)}


async def test_when_no_node_answers_the_error_names_each_without_its_password() -> None:
    first, second = dead_url(), dead_url()
    with pytest.raises(BrokerError) as raised:
        await Broker.connect(f"{first},{second}", "test-cluster", heartbeat=5.0)
    message = str(raised.value)
    assert raised.value.retryable
    assert redact(first) in message, message
    assert redact(second) in message, message
    assert PASSWORD not in message, message


async def test_a_refused_login_is_not_tried_on_the_other_nodes() -> None:
    wrong = LIVE.replace("guest:guest@", f"guest:{PASSWORD}@")
    assert wrong != LIVE
    # One of two connections starts at the refusing node: it fails at once,
    # rather than going on to the node that would accept it.
    connected = 0
    refusals: list[BrokerError] = []
    for attempt in range(2):
        try:
            broker = await Broker.connect(f"{wrong},{LIVE}", f"test-cluster-{attempt}", 5.0)
        except BrokerError as e:
            refusals.append(e)
        else:
            await broker.close()
            connected += 1
    assert connected == 1, refusals
    assert len(refusals) == 1
    refusal = refusals[0]
    assert not refusal.retryable, refusal
    assert "refused the connection" in str(refusal), refusal
    assert PASSWORD not in str(refusal), refusal


async def test_an_invalid_node_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="is not an AMQP URL"):
        await Broker.connect(f"{LIVE},http://n2/", "test-cluster", heartbeat=5.0)
    with pytest.raises(ConfigError, match="no RabbitMQ URL given"):
        await Broker.connect(" , ", "test-cluster", heartbeat=5.0)


async def test_a_worker_given_a_cluster_runs_a_step(
    bus: Bus, namespace: str, start_worker: Any
) -> None:
    echo = Echo()
    await start_worker({ECHO: echo}, amqp_url=f"{dead_url()},{LIVE},{dead_url()}")
    results = await bus.results(namespace)
    await bus.publish_step(step_ready(namespace, ECHO, context={"n": 1}), namespace, ECHO)

    delivery = await results.next(what="the step result")
    body = json.loads(delivery.body)
    assert body["status"] == "completed", body
    assert body["result"]["echo"] == {"n": 1}
    assert echo.calls == 1
