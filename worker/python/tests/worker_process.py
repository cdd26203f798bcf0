"""A worker in a process of its own, for the tests that signal it or trace
it. It serves ``TEST_NAMESPACE`` with two handlers, configured from the
environment as any service is (``TASKER_SERVICE``, ``TASKER_AMQP_URL``),
and ``TEST_SHUTDOWN_GRACE`` seconds of grace.

``Tests::Sleep`` prints ``started <task_id>`` when it starts, so that a
test knows the step is in hand, then sleeps for its input's ``seconds``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tasker_worker import StepContext, Worker, WorkerConfig, telemetry


class Sleep:
    async def call(self, context: StepContext) -> Any:
        print(f"started {context.task_id}", flush=True)
        seconds = context.get_input("seconds", float)
        await asyncio.sleep(seconds)
        return {"slept": seconds}


class Echo:
    async def call(self, context: StepContext) -> Any:
        return dict(context.inputs)


async def main() -> None:
    with telemetry.init("python-test-worker"):
        grace = float(os.environ.get("TEST_SHUTDOWN_GRACE", "30"))
        worker = (
            Worker(WorkerConfig.from_env(shutdown_grace=grace))
            .namespace(os.environ["TEST_NAMESPACE"])
            .handler("Tests::Sleep", Sleep())
            .handler("Tests::Echo", Echo())
        )
        await worker.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
