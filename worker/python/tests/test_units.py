"""The parts that need no server: configuration, the heartbeat in the URL,
decoding step-ready messages, and what a handler's context reads."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tasker_worker import ConfigError, PermanentError, RetryableError, WorkerConfig, topology
from tasker_worker.announce import ServedNamespace
from tasker_worker.broker import broker_urls, connection_url, redact
from tasker_worker.config import parse_duration
from tasker_worker.errors import DeadLetterReason
from tasker_worker.messages import DecodeError, decode_step_ready, failed, timestamp
from tasker_worker.testing import step_context


def test_the_configuration_reads_the_environment() -> None:
    config = WorkerConfig.from_env(
        {
            "TASKER_AMQP_URL": "amqp://u:p@rabbit:5672/%2f",
            "TASKER_SERVICE": "billing",
            "TASKER_AMQP_HEARTBEAT": "500ms",
            "TASKER_MAX_MESSAGE_BYTES": "2048",
            "TASKER_HEALTH_ADDR": "0.0.0.0:9104",
            "TASKER_CONCURRENCY": "4",
        },
        shutdown_grace=3.0,
    )
    assert config.amqp_url == "amqp://u:p@rabbit:5672/%2f"
    assert config.service == "billing"
    assert config.heartbeat == 0.5
    assert config.max_message_bytes == 2048
    assert config.health_addr == ("0.0.0.0", 9104)
    assert config.concurrency == 4
    assert config.shutdown_grace == 3.0
    defaults = WorkerConfig.from_env({})
    assert (defaults.heartbeat, defaults.max_message_bytes) == (5.0, 1024 * 1024)
    assert (defaults.concurrency, defaults.max_redeliveries, defaults.announce_every) == (32, 5, 10)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TASKER_AMQP_HEARTBEAT", "soon", "write it like 250ms, 30s"),
        ("TASKER_AMQP_HEARTBEAT", "7 weeks", "use ms, s, m, h or d"),
        ("TASKER_MAX_MESSAGE_BYTES", "1MB", "is not a number of bytes"),
        ("TASKER_HEALTH_ADDR", "localhost", "not an address like 0.0.0.0:8080"),
        ("TASKER_CONCURRENCY", "0", "must be a positive number of steps"),
    ],
)
def test_a_bad_variable_says_how_to_write_it(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        WorkerConfig.from_env({variable: value})
    assert variable in str(raised.value)


def test_durations_read_with_their_units() -> None:
    assert parse_duration("250ms", "X") == 0.25
    assert parse_duration("30", "X") == 30
    assert parse_duration("1.5s", "X") == 1.5
    assert parse_duration("10m", "X") == 600
    assert parse_duration("2h", "X") == 7200
    assert parse_duration("7d", "X") == 7 * 86400


def test_the_service_name_is_required_and_must_fit_a_queue_name() -> None:
    with pytest.raises(ConfigError, match=r"is empty; give it a name.*TASKER_SERVICE"):
        WorkerConfig(service="").check()
    with pytest.raises(ConfigError, match=re.escape("contains '.'")):
        WorkerConfig(service="billing.eu").check()
    WorkerConfig(service="billing-eu_2").check()


def test_the_redelivery_limit_stays_below_the_queues() -> None:
    WorkerConfig(service="billing", max_redeliveries=99).check()
    with pytest.raises(ConfigError, match=r"max_redeliveries is 100; keep it from 0 to 99"):
        WorkerConfig(service="billing", max_redeliveries=100).check()


def test_the_heartbeat_is_five_seconds_unless_the_url_says() -> None:
    assert connection_url("amqp://g:g@h:5672/%2f", 5.0).query["heartbeat"] == "5"
    assert connection_url("amqp://h/?heartbeat=30", 5.0).query["heartbeat"] == "30"
    assert connection_url("amqp://h/", 0.5).query["heartbeat"] == "1", "never rounded to off"
    assert connection_url("amqp://h/", 0).query["heartbeat"] == "0"
    with pytest.raises(ConfigError, match="is not an AMQP URL"):
        connection_url("http://h/", 5.0)
    assert redact("amqp://guest:secret@h:5672/%2f").lower() == "amqp://guest:***@h:5672/%2f"


def test_several_urls_name_a_cluster_s_nodes() -> None:
    assert broker_urls(" amqp://n1:5672/%2f , amqp://n2:5672/%2f,, ") == [
        "amqp://n1:5672/%2f",
        "amqp://n2:5672/%2f",
    ]
    assert broker_urls("amqp://host") == ["amqp://host"]
    assert broker_urls("amqp://u:a%2Cb@host") == ["amqp://u:a%2Cb@host"], "%2C is no separator"
    assert broker_urls(" , ") == []
    both = redact("amqp://u:pw@n1:5672/%2f, amqp://u:pw@n2:5673/%2f")
    assert both.lower() == "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5673/%2f"


def ready_body(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "protocol_version": 1,
        "task_id": "1313b797-4991-51f3-b1c9-e05383177de6",
        "namespace": "microservices",
        "task_name": "user_registration",
        "task_version": "1.0.0",
        "step": "send_welcome_sequence",
        "callable": "Microservices::StepHandlers::SendWelcomeSequenceHandler",
        "attempt": 1,
        "max_attempts": 2,
        "context": {"user_info": {"email": "new.user@example.com"}},
        "initialization": {},
        "dependencies": ["setup_billing_profile", "initialize_preferences"],
        "dependency_results": {"create_user_account": {"user_id": "usr_1"}},
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def test_a_step_ready_message_decodes_as_the_protocol_says() -> None:
    ready = decode_step_ready(ready_body(), 1 << 20)
    assert ready.idempotency_key == "1313b797-4991-51f3-b1c9-e05383177de6:send_welcome_sequence"
    assert ready.dependencies == ["setup_billing_profile", "initialize_preferences"]
    assert ready.timeout_seconds is None
    # An older coordinator leaves out the dependencies; null reads as none.
    assert decode_step_ready(ready_body(dependencies=...), 1 << 20).dependencies == []
    assert decode_step_ready(ready_body(dependencies=None), 1 << 20).dependencies == []
    assert decode_step_ready(ready_body(timeout_seconds=5), 1 << 20).timeout_seconds == 5.0
    assert decode_step_ready(ready_body(unknown_field=1), 1 << 20).step == "send_welcome_sequence"


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (b"\xff\xfe", DeadLetterReason.NOT_JSON, "payload is not JSON"),
        (b"NaN", DeadLetterReason.NOT_JSON, "payload is not JSON"),
        (b"[1]", DeadLetterReason.INVALID_MESSAGE, "it is an array, not a JSON object"),
        (ready_body(protocol_version="1"), DeadLetterReason.WRONG_PROTOCOL_VERSION, "not a number"),
        (ready_body(protocol_version=...), DeadLetterReason.INVALID_MESSAGE, "protocol_version"),
        (ready_body(task_id="nope"), DeadLetterReason.INVALID_MESSAGE, "not a UUID"),
        (ready_body(attempt=-1), DeadLetterReason.INVALID_MESSAGE, "field attempt is -1"),
        (ready_body(attempt=True), DeadLetterReason.INVALID_MESSAGE, "attempt is a boolean"),
        (ready_body(context=...), DeadLetterReason.INVALID_MESSAGE, "missing field context"),
        (ready_body(initialization=[]), DeadLetterReason.INVALID_MESSAGE, "expected an object"),
        (ready_body(timeout_seconds="5"), DeadLetterReason.INVALID_MESSAGE, "timeout_seconds"),
        (ready_body(dependencies=[1]), DeadLetterReason.INVALID_MESSAGE, "array of step names"),
    ],
)
def test_a_message_that_cannot_be_used_says_why(
    body: bytes, reason: DeadLetterReason, detail: str
) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_step_ready(body, 1 << 20)
    assert raised.value.reason == reason
    assert detail in raised.value.header
    assert raised.value.header.startswith(f"{reason}: ")


def test_failures_are_written_as_the_protocol_says() -> None:
    retry = RetryableError("503", error_code="BILLING_UNAVAILABLE", retry_after=5)
    assert failed(retry) == {
        "status": "failed",
        "error": {
            "retryable": True,
            "code": "BILLING_UNAVAILABLE",
            "message": "503",
            "retry_after_seconds": 5.0,
        },
    }
    assert "retry_after_seconds" not in failed(PermanentError("x", error_code="X"))["error"]
    moment = datetime(2025, 3, 14, 9, 26, 54, 318_999, tzinfo=UTC)
    assert timestamp(moment) == "2025-03-14T09:26:54.318Z"


def test_the_context_reads_input_results_and_settings() -> None:
    context = step_context(
        context={"user_info": {"email": "a@b.io"}, "count": 3, "nothing": None},
        dependency_results={"create_user_account": {"user_id": "usr_1"}},
        initialization={"channel": "email"},
        step="send_welcome_sequence",
        attempt=2,
        max_attempts=3,
    )
    assert context.get_input("user_info") == {"email": "a@b.io"}
    assert context.get_input("user_info", dict)["email"] == "a@b.io"
    assert context.get_input("count", float) == 3.0
    assert context.get_input_or("missing", "default") == "default"
    assert context.get_input_or("nothing", 7) == 7, "null reads as missing"
    assert context.get_dependency_result("create_user_account", dict) == {"user_id": "usr_1"}
    assert context.get_initialization("channel", str) == "email"
    assert context.get_initialization("unset") is None
    assert context.dependencies == ["create_user_account"]
    assert (context.attempt, context.max_attempts, context.step_name) == (
        2,
        3,
        "send_welcome_sequence",
    )
    assert context.idempotency_key == f"{context.task_id}:send_welcome_sequence"


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (
            lambda c: c.get_input("email"),
            'the task context has no "email"; add it to the task request\'s context',
        ),
        (
            lambda c: c.get_input("count", str),
            'input "count" is malformed: expected a string, found an integer',
        ),
        (
            lambda c: c.get_input("flag", int),
            'input "flag" is malformed: expected an integer, found a boolean',
        ),
        (
            lambda c: c.get_input_or("count", [], list),
            'input "count" is malformed: expected an array, found an integer',
        ),
        (
            lambda c: c.get_dependency_result("setup_billing_profile"),
            'step "s" has no result from "setup_billing_profile"; it can read only the results '
            "its message carries (its ancestors', or those its results_from names): "
            "create_user_account",
        ),
        (
            lambda c: c.get_dependency_result("create_user_account", list),
            'the result of "create_user_account" is not what this handler expects: '
            "expected an array, found an object",
        ),
        (
            lambda c: c.get_initialization("channel", int),
            "handler.initialization.channel is malformed: expected an integer, found a string",
        ),
    ],
)
def test_a_bad_input_is_a_permanent_invalid_input(read: Any, message: str) -> None:
    context = step_context(
        context={"count": 3, "flag": True},
        dependency_results={"create_user_account": {"user_id": "usr_1"}},
        initialization={"channel": "email"},
        step="s",
    )
    with pytest.raises(PermanentError) as raised:
        read(context)
    assert (raised.value.code, raised.value.retryable) == ("invalid_input", False)
    assert raised.value.message == message


def test_retry_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="retry_after is -1"):
        RetryableError("x", error_code="X", retry_after=-1)


class Handler:
    async def call(self, context: Any) -> Any:
        return None


class SyncHandler:
    def call(self, context: Any) -> Any:
        return None


async def test_a_worker_that_cannot_work_says_what_to_do() -> None:
    from tasker_worker import Worker

    with pytest.raises(ConfigError, match=r"needs a method 'async def call\(self, context\)'"):
        Worker(WorkerConfig(service="svc")).handler("X", SyncHandler())
    with pytest.raises(ConfigError, match=r"at least one namespace; call \.namespace"):
        await Worker(WorkerConfig(service="svc")).handler("X", Handler()).run(asyncio.Event())
    with pytest.raises(ConfigError, match=r"at least one handler; call \.handler"):
        await Worker(WorkerConfig(service="svc")).namespace("ns").run(asyncio.Event())
    with pytest.raises(ConfigError, match="TASKER_SERVICE"):
        await Worker(WorkerConfig()).namespace("ns").handler("X", Handler()).run(asyncio.Event())
    with pytest.raises(ConfigError, match=re.escape("the namespace 'a.b' contains '.'")):
        Worker(WorkerConfig(service="svc")).namespace("a.b")


def test_partitions_read_from_the_environment_from_1_to_64() -> None:
    assert WorkerConfig.from_env({}).partitions == 1
    assert WorkerConfig.from_env({"TASKER_PARTITIONS": "4"}).partitions == 4
    assert WorkerConfig.from_env({"TASKER_PARTITIONS": "64"}).partitions == 64
    for bad in ("0", "65", "x", "-1", "2.5", ""):
        with pytest.raises(ConfigError) as raised:
            WorkerConfig.from_env({"TASKER_PARTITIONS": bad})
        assert str(raised.value).startswith(
            f"TASKER_PARTITIONS={bad!r} is not a whole number from 1 to 64"
        )
    with pytest.raises(ConfigError, match="partitions is 65; give a number of queues from 1 to 64"):
        WorkerConfig(service="billing", partitions=65).check()


def test_a_namespace_has_a_steps_exchange_of_its_own() -> None:
    assert topology.namespace_steps_exchange("ns") == "tasker.steps.ns"
    # Namespaces and services have no dots: it is never a service's queue.
    assert topology.namespace_steps_exchange("ns") not in {
        topology.STEPS_EXCHANGE,
        topology.service_queue("ns", "billing"),
        topology.partition_queue("ns", "billing", 0),
    }


def test_partitioned_names_and_announcement() -> None:
    assert topology.service_exchange("ns", "billing") == "tasker.steps.ns.billing"
    assert topology.partition_queue("ns", "billing", 0) == "tasker.steps.ns.billing.0"
    assert topology.MAX_PARTITIONS == 64
    assert topology.PARTITIONED_EXCHANGE_TYPE == "x-consistent-hash"
    assert (topology.HASH_HEADER_ARGUMENT, topology.PARTITION_WEIGHT) == ("hash-header", "1")
    one = ServedNamespace("ns", "tasker.steps.ns.billing", ["A"])
    assert one.entry() == {
        "namespace": "ns",
        "queue": "tasker.steps.ns.billing",
        "callables": ["A"],
    }
    split = ServedNamespace("ns", "tasker.steps.ns.billing", ["A"], partitions=4)
    assert split.entry()["partitions"] == 4


def test_a_configs_repr_masks_the_password_in_its_url() -> None:
    config = WorkerConfig(service="billing", amqp_url="amqp://tasker:s3cret-pw@broker:5672/%2f")
    shown = repr(config)
    assert "s3cret-pw" not in shown
    assert "amqp://tasker:***@broker:5672/" in shown
    assert "service='billing'" in shown
