"""The bare-Temporal baseline: a minimal workflow with one activity, and its worker.

`python -m bench.bare ADDRESS TASK_QUEUE` runs the worker.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="bare_effect")
async def bare_effect(lead: str) -> str:
    return lead


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, lead: str) -> str:
        return await workflow.execute_activity(
            bare_effect, lead, start_to_close_timeout=timedelta(seconds=30)
        )


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    worker = Worker(
        client, task_queue=task_queue, workflows=[BareWorkflow], activities=[bare_effect]
    )
    print("worker on", task_queue, flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
