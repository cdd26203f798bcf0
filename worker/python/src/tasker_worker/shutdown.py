"""Stopping on a signal: the first SIGINT or SIGTERM asks for a graceful
stop (stop consuming, let in-flight steps finish), a second one exits at
once, for when the graceful stop takes too long.

Only a program's ``main`` should listen for signals; :meth:`Worker.run`
calls :func:`shutdown_on_signal` itself when it is given no event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

EXIT_ON_SECOND_SIGNAL = 130


def shutdown_on_signal() -> asyncio.Event:
    """An event set on the first SIGINT or SIGTERM; the second exits the
    process with status 130. Call it from the running event loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(number: int) -> None:
        if not stop.is_set():
            log.info("shutting down; signal again to stop at once")
            stop.set()
            return
        log.warning("second signal: stopping now")
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        # At once: no cleanup may hold the exit up, and the broker hands
        # the unacked steps back when the connection drops.
        os._exit(EXIT_ON_SECOND_SIGNAL)

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    return stop
