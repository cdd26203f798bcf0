"""The chaos suite's Python worker: a service of its own that serves some of
the chaos namespace's callables, beside the Rust chaos workers, so that the
suite's faults also strike a namespace split into services in two languages.

Each handler waits 5 to 20 ms and returns ``{"step": ..., "nonce": ...}``:
the nonce makes a second run's result differ from the first's, so the suite
sees any result that changes after it was recorded. Unlike the Rust chaos
workers it does not count its runs in Redis: the suite checks its joins in
the tasks' own state.

    python tests/python/chaos_worker.py --namespace NS --service S CALLABLE...
"""

from __future__ import annotations

import argparse
import asyncio
import random

from tasker_worker import StepContext, Worker, WorkerConfig, telemetry


class Chaos:
    async def call(self, context: StepContext) -> dict[str, object]:
        await asyncio.sleep(random.uniform(0.005, 0.020))
        return {"step": context.step_name, "nonce": random.getrandbits(63)}


async def run(namespace: str, service: str, callables: list[str]) -> None:
    config = WorkerConfig.from_env(service=service, concurrency=64, shutdown_grace=5.0)
    worker = Worker(config).namespace(namespace)
    for callable_ in callables:
        worker = worker.handler(callable_, Chaos())
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("callables", nargs="+")
    args = parser.parse_args()
    with telemetry.init(f"chaos-{args.service}"):
        asyncio.run(run(args.namespace, args.service, args.callables))


if __name__ == "__main__":
    main()
