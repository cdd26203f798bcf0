"""A Python step joins the task's trace: the worker continues the step-ready
message's ``traceparent`` as the parent of a consumer span ``process
<step>``, exported over OTLP to a real receiver (rotel, from PyPI, as the
Rust tracing test runs it), and passes its own context on in the step
result's headers."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import AMQP_URL, PYTHON, REPO, TESTS, Bus, eventually, step_ready
from test_health import free_port

from tasker_worker import ConfigError, telemetry, topology


@dataclass
class Span:
    """One span as rotel prints it with ``--debug-log-verbosity detailed``."""

    service: str = ""
    trace: str = ""
    parent: str = ""
    id: str = ""
    name: str = ""
    kind: str = ""
    status: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def parse(log: str) -> list[Span]:
    spans: list[Span] = []
    service = ""
    current: Span | None = None
    in_attributes = False
    for line in log.splitlines():
        text = line.strip()
        value = text.partition(":")[2].strip()
        if text.startswith("-> service.name:"):
            service = re.sub(r"^Str\((.*)\)$", r"\1", value)
        elif text.startswith("Span #"):
            current = Span(service=service)
            spans.append(current)
            in_attributes = False
        elif current is None:
            continue
        elif text.startswith("Trace ID"):
            current.trace = value
        elif text.startswith("Parent ID"):
            current.parent = value
        elif text.startswith("ID "):
            current.id = value
        elif text.startswith("Name "):
            current.name = value
        elif text.startswith("Kind "):
            current.kind = value
        elif text.startswith("Status code"):
            current.status = value
        elif text.startswith("Attributes:"):
            in_attributes = True
        elif text.startswith(("Events:", "Links:", "ResourceSpans")):
            in_attributes = False
        elif in_attributes and text.startswith("-> "):
            key, _, raw = text[3:].partition(": ")
            current.attributes[key] = re.sub(r"^\w+\((.*)\)$", r"\1", raw)
    return spans


def rotel_agent() -> str:
    """rotel's agent: ``TASKER_ROTEL_AGENT`` (deploy/dev test installs it and
    names it), else the install under the repository's .dev/."""
    agent = os.environ.get("TASKER_ROTEL_AGENT") or str(REPO / ".dev/rotel/rotel/rotel-agent")
    if not Path(agent).exists():
        pytest.fail(
            f"no rotel-agent at {agent}: run deploy/dev test, which installs it, or set "
            "TASKER_ROTEL_AGENT"
        )
    return agent


async def test_a_step_continues_its_messages_trace(
    bus: Bus, namespace: str, spawn: Any, tmp_path: Path
) -> None:
    http = free_port()
    log = tmp_path / "rotel.log"
    with log.open("w") as out, (tmp_path / "rotel.stderr").open("w") as err:
        receiver = subprocess.Popen(
            [
                rotel_agent(),
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{free_port()}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http}",
            ],
            stdout=out,
            stderr=err,
        )
    try:
        queue = topology.service_queue(namespace, "svc")
        bus.remember(queue)
        worker = spawn(
            [PYTHON, str(TESTS / "worker_process.py")],
            {
                "TASKER_AMQP_URL": AMQP_URL,
                "TASKER_SERVICE": "svc",
                "TEST_NAMESPACE": namespace,
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_SERVICE_NAME": "python-worker",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            },
        )
        await bus.wait_for_consumers(queue)
        results = await bus.results(namespace)
        trace_id, publish_span = secrets.token_hex(16), secrets.token_hex(8)
        ready = step_ready(namespace, "Tests::Echo", step="send_welcome_sequence")
        await bus.publish_step(
            ready,
            namespace,
            "Tests::Echo",
            headers={"traceparent": f"00-{trace_id}-{publish_span}-01", "tracestate": "k=v"},
        )
        result = await results.next()
        headers = result.headers or {}
        _, result_trace, process_span, _ = str(headers["traceparent"]).split("-")
        assert result_trace == trace_id, "the result carries the task's trace on"
        assert process_span != publish_span
        assert headers.get("tracestate") == "k=v"

        # A graceful stop flushes the spans.
        worker.popen.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0

        async def received() -> list[Span]:
            return [s for s in parse(log.read_text()) if s.trace == trace_id]

        spans = await eventually(received, bool, what="rotel receiving the step's span")
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)

    assert len(spans) == 1, spans
    span = spans[0]
    assert span.name == "process send_welcome_sequence"
    assert span.kind == "SPAN_KIND_CONSUMER"
    assert span.parent == publish_span, "a child of the span that published the step"
    assert span.id == process_span, "the result's traceparent names this span"
    assert span.service == "python-worker"
    assert span.status != "STATUS_CODE_ERROR"
    attributes = span.attributes
    assert attributes["tasker.task.id"] == ready["task_id"]
    assert attributes["tasker.step.name"] == "send_welcome_sequence"
    assert attributes["tasker.step.attempt"] == "1"
    assert attributes["tasker.namespace"] == namespace
    assert attributes["tasker.step.outcome"] == "completed"
    assert attributes["messaging.system"] == "rabbitmq"
    assert attributes["messaging.destination.name"] == queue
    assert "messaging.message.id" in attributes


def test_spans_export_over_grpc_or_http_as_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    for protocol, exporter in (("grpc", "grpc"), ("http/protobuf", "http")):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        made = telemetry._exporter()
        assert f".{exporter}." in type(made).__module__
        made.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with pytest.raises(ConfigError, match="use grpc or http/protobuf"):
        telemetry._exporter()
