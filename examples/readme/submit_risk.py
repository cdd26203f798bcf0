import asyncio
import os

from tasker_worker import Client, TaskFinished


async def main() -> None:
    url = os.environ.get("TASKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    async with await Client.connect(url) as client:
        submitted = await client.create_task("risk", "score_signup", {"email": "jane@example.com"})
        print("task", submitted.task_id)
        outcome = await submitted.wait(timeout=60)  # TaskFinished, or TaskRejected
        if isinstance(outcome, TaskFinished):
            print(outcome.status, outcome.step("score_signup").result)
        else:
            print(f"rejected ({outcome.code}): {outcome.reason}")


asyncio.run(main())
