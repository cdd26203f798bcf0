"""Logs and traces for a worker's ``main``, and the W3C trace context that
travels in message headers, so that a task is one trace across the
coordinator and every worker, whatever their language.

- :func:`init` sets up logging (:mod:`tasker_worker.logs`) and, when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, span export over OTLP, configured
  by the standard variables: ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc``, or
  ``http/protobuf``, the default), ``OTEL_SERVICE_NAME``,
  ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the batch
  processor's ``OTEL_BSP_*``. With no endpoint nothing is exported, and
  spans cost next to nothing.
- :func:`extract` and :func:`inject` read and write ``traceparent`` and
  ``tracestate`` in AMQP headers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tasker_worker import logs
from tasker_worker.errors import ConfigError

TRACER_NAME = "tasker"
_PROPAGATOR = TraceContextTextMapPropagator()


class Telemetry:
    """Flushes the spans still buffered when the process stops: keep it for
    the life of ``main`` and call :meth:`shutdown` (or use ``with``)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider

    @property
    def exporting(self) -> bool:
        """Whether spans are exported."""
        return self.provider is not None

    def shutdown(self) -> None:
        """Exports the buffered spans and stops the exporter."""
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()


def init(service: str) -> Telemetry:
    """Installs logging, and span export when ``OTEL_EXPORTER_OTLP_ENDPOINT``
    is set. ``service`` names the process's spans unless
    ``OTEL_SERVICE_NAME`` does. Call once, at the start of ``main``.

    :raises ConfigError: for an ``OTEL_EXPORTER_OTLP_PROTOCOL`` it cannot use.
    """
    logs.configure()
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return Telemetry(None)
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter()))
    trace.set_tracer_provider(provider)
    return Telemetry(provider)


def _exporter() -> SpanExporter:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        # Imported only when asked for: gRPC is a heavy import.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use grpc or http/protobuf"
    )


def tracer() -> trace.Tracer:
    """The tracer of Tasker's spans."""
    return trace.get_tracer(TRACER_NAME)


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The trace context that AMQP ``headers`` carry (``traceparent``,
    ``tracestate``); an empty context when they carry none."""
    carrier: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str):
            carrier[key] = value
    return _PROPAGATOR.extract(carrier)


def inject(headers: MutableMapping[str, Any]) -> None:
    """Adds the current trace context to AMQP ``headers``. When spans are
    not exported, the context of the message being handled still passes
    on, so that the trace continues past this process."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    headers.update(carrier)
