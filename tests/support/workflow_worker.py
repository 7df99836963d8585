"""A worker process that runs every service's workflows and no activity: the process a test
kills with SIGKILL while a workflow's step is in flight (its activity runs in the test
process), then starts again. ``python -m tests.support.workflow_worker``, configured through
``ADX_*`` settings like any worker; prints ``ready`` once it polls."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path

from adx.settings import REPO_ROOT, Settings
from tests.support.worker_process import WorkerProcess, worker_env

__all__ = ["READY", "WorkflowWorker", "main", "worker_env", "workflow_worker"]

READY = "ready"
# A killed worker's sticky queue is abandoned quickly, so the next workflow task goes to
# the new worker in a second instead of the default ten.
STICKY_TIMEOUT = timedelta(seconds=1)


async def main() -> None:
    from adx.histories import service_definitions
    from workflow_client.connect import connect
    from workflow_client.worker import create_worker

    settings = Settings()
    client = await connect(settings)
    async with AsyncExitStack() as workers:
        for definition in service_definitions().values():
            await workers.enter_async_context(
                create_worker(
                    client,
                    task_queue=definition.task_queue.value,
                    workflows=definition.workflows,
                    sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
                )
            )
        print(READY, flush=True)
        await asyncio.Event().wait()


class WorkflowWorker(WorkerProcess):
    """The workflow worker process of a test: started, killed, started again."""

    def __init__(self, settings: Settings, log: Path) -> None:
        argv = [sys.executable, "-m", "tests.support.workflow_worker"]
        super().__init__(argv, worker_env(settings), log, ready=READY, cwd=REPO_ROOT)

    async def kill(self) -> int:
        status = await super().kill()
        assert status == -signal.SIGKILL
        return status


@asynccontextmanager
async def workflow_worker(settings: Settings, log: Path) -> AsyncIterator[WorkflowWorker]:
    async with WorkflowWorker(settings, log) as worker:
        yield worker


if __name__ == "__main__":
    asyncio.run(main())
