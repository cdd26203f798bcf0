"""Structured logs: a message plus named fields, as readable text by default
and one JSON object per line with ``TASKER_LOG_FORMAT=json``, like the Rust
processes' logs, so one log pipeline reads every service.

Log with :func:`fields`::

    log.info("step completed", extra=fields(task_id=ready.task_id, step=ready.step))

Lines logged inside a traced span carry its ``trace_id`` and ``span_id``,
so a log line leads to its trace.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

_FIELDS = "tasker_fields"

DEFAULT_LEVEL = "INFO"
"""What is logged when ``TASKER_LOG_LEVEL`` is not set."""

QUIET_LIBRARIES = {
    "aio_pika": logging.WARNING,
    "aiormq": logging.WARNING,
    # A lost connection is logged once by the worker, and it is back when
    # the worker says so; aiormq's lines about the same loss, one per
    # attempt to reconnect, would only repeat it.
    "aiormq.connection": logging.CRITICAL,
    "opentelemetry": logging.WARNING,
    "urllib3": logging.WARNING,
    "grpc": logging.WARNING,
}
"""Libraries whose lines below these levels are noise next to the SDK's own."""


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra`` of a log call: named fields that follow the message."""
    return {_FIELDS: values}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    values: dict[str, Any] = dict(getattr(record, _FIELDS, {}))
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        values.setdefault("trace_id", format(context.trace_id, "032x"))
        values.setdefault("span_id", format(context.span_id, "016x"))
    return values


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        pairs = " ".join(f"{k}={_text(v)}" for k, v in _record_fields(record).items())
        line = f"{moment.replace('+00:00', 'Z')} {record.levelname:>5} {record.name}: "
        line += record.getMessage() + (f" {pairs}" if pairs else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp``, ``level``, ``target``,
    ``message`` and the fields, flattened."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
        line: dict[str, Any] = {
            "timestamp": moment.replace("+00:00", "Z"),
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        line.update(_record_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure() -> None:
    """Sends every log line to stderr, formatted as ``TASKER_LOG_FORMAT``
    says (``text`` or ``json``), from the level ``TASKER_LOG_LEVEL`` names
    (default ``INFO``). Replaces the root logger's handlers."""
    handler = logging.StreamHandler(sys.stderr)
    as_json = os.environ.get("TASKER_LOG_FORMAT", "").lower() == "json"
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("TASKER_LOG_LEVEL", DEFAULT_LEVEL).upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else DEFAULT_LEVEL)
    for library, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(library).setLevel(quiet)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text
