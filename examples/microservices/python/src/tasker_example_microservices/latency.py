"""The simulated latency of a service call: a number of milliseconds picked
at random from a range, as the Rust example's ``Latency``. Zero for tests
and benchmarks; a little for demos, so that the parallel branches show."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """Milliseconds from ``low`` (included) to ``high`` (excluded); an empty
    range waits not at all."""

    low: int = 0
    high: int = 0

    @classmethod
    def none(cls) -> Latency:
        """No latency."""
        return cls(0, 0)

    @classmethod
    def parse(cls, text: str) -> Latency:
        """From ``MIN..MAX`` milliseconds, as ``TASKER_DEMO_LATENCY_MS`` writes it.

        :raises ValueError: saying how to write it.
        """
        low, sep, high = text.partition("..")
        if not sep:
            raise ValueError(f"{text!r} is not MIN..MAX, for example 40..120")
        bounds = []
        for part in (low, high):
            if not part.strip().isdigit():
                raise ValueError(f"{part!r} in {text!r} is not a number of milliseconds")
            bounds.append(int(part.strip()))
        return cls(bounds[0], bounds[1])

    async def wait(self) -> None:
        """Sleeps as long as one call to the service takes."""
        if self.high <= self.low:
            return
        await asyncio.sleep(random.randrange(self.low, self.high) / 1000)
