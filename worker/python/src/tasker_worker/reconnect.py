"""Capped, jittered, exponential delays between attempts to reconnect, so
that many workers that lost the broker together do not come back in step."""

from __future__ import annotations

import logging
import random

from tasker_worker.logs import fields

log = logging.getLogger(__name__)


class Backoff:
    """The delays between reconnection attempts: 0.2 s, 0.4 s, ... up to
    5 s, each scaled by a random factor from 0.5 to 1."""

    FIRST = 0.1
    CAP = 5.0

    def __init__(self) -> None:
        self.attempts = 0
        """Failed attempts since the last success."""

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt."""
        self.attempts += 1
        base = min(self.FIRST * 2.0 ** min(self.attempts, 8), self.CAP)
        return base * random.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        """Records a successful connection."""
        if self.attempts > 0:
            log.info("connected again", extra=fields(after_attempts=self.attempts))
        self.attempts = 0
