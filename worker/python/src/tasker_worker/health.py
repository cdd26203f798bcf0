"""Whether the worker is connected to what it needs, logged once per change,
and served over HTTP for probes:

- ``GET /healthz``: 200 while the process runs (liveness);
- ``GET /readyz``: 200 when every dependency is connected, 503 otherwise
  (readiness; a worker is not ready while it has no broker connection);
- ``GET /metrics``: :mod:`tasker_worker.metrics` as OpenMetrics text.

Both health bodies are plain text, one ``name: up|down`` line per
dependency. The server is a few lines on asyncio's streams rather than a
web framework: three fixed routes need no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tasker_worker import metrics
from tasker_worker.logs import fields

RABBITMQ = "rabbitmq"

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class Health:
    """The connection state of each dependency; ``None`` until the first
    attempt to connect, so that an outage at start is logged like any
    other."""

    def __init__(self, *dependencies: str) -> None:
        self._state: dict[str, bool | None] = dict.fromkeys(dependencies)

    def up(self, dependency: str) -> None:
        """Records that ``dependency`` works; logs only when it was down."""
        was = self._state.get(dependency)
        self._state[dependency] = True
        if was is False:
            log.info("connected", extra=fields(dependency=dependency))

    def down(self, dependency: str, error: object) -> None:
        """Records that ``dependency`` failed; logs once per outage."""
        was = self._state.get(dependency)
        self._state[dependency] = False
        if was is not False:
            log.warning(
                "lost connection; retrying until it is back",
                extra=fields(dependency=dependency, error=str(error)),
            )

    @property
    def is_ready(self) -> bool:
        """Whether every dependency is up."""
        return all(up is True for up in self._state.values())

    def report(self) -> str:
        """One ``name: up|down`` line per dependency."""
        return "".join(
            f"{name}: {'up' if up else 'down'}\n" for name, up in sorted(self._state.items())
        )


async def serve(host: str, port: int, health: Health) -> asyncio.Server:
    """Starts serving the endpoints on ``host:port``; close the returned
    server to stop.

    :raises OSError: if the address cannot be bound.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, content_type, body = _route(method, path, health)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a probe that hung up or sent garbage gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, host, port)
    bound = ", ".join("{}:{}".format(*s.getsockname()[:2]) for s in server.sockets)
    log.info("health endpoints listening", extra=fields(address=bound))
    return server


def _route(method: str, path: str, health: Health) -> tuple[int, str, bytes]:
    text = "text/plain; charset=utf-8"
    if method not in ("GET", "HEAD"):
        return 405, text, b"use GET\n"
    if path == "/healthz":
        return 200, text, health.report().encode()
    if path == "/readyz":
        return (200 if health.is_ready else 503), text, health.report().encode()
    if path == "/metrics":
        return 200, metrics.CONTENT_TYPE, metrics.METRICS.render()
    return 404, text, b"not found; try /healthz, /readyz or /metrics\n"
