"""The suite's infrastructure is real: a Temporal workflow with an activity runs on the dev
server, and Redis and PostgreSQL answer over real connections."""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.support.servers import PostgresServer, RedisServer


@activity.defn
async def shout(word: str) -> str:
    return word.upper() + "!"


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, word: str) -> str:
        return await workflow.execute_activity(
            shout, word, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_workflow_with_activity_runs_on_the_dev_server(
    temporal_env: WorkflowEnvironment,
) -> None:
    queue = f"infra-{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[ShoutWorkflow], activities=[shout]
    ):
        handle = await temporal_env.client.start_workflow(
            ShoutWorkflow.run, "hello", id=f"infra-{uuid.uuid4().hex}", task_queue=queue
        )
        assert await handle.result() == "HELLO!"
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED
    history = await handle.fetch_history()
    event_types = {event.event_type for event in history.events}
    # The activity really ran through the server: its completion is in the history.
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in event_types


async def test_redis_is_real(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        key = f"infra:{uuid.uuid4().hex}"
        await client.set(key, "v", ex=60)
        assert await client.get(key) == b"v"
        info = await client.info("server")
        assert info["tcp_port"] == redis_server.port
    finally:
        await client.aclose()


async def test_postgres_is_real(postgres_server: PostgresServer) -> None:
    engine = create_async_engine(postgres_server.dsn())
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS infra_probe (v text)"))
            await conn.execute(text("INSERT INTO infra_probe VALUES ('x')"))
            port = (await conn.execute(text("SHOW port"))).scalar_one()
            count = (await conn.execute(text("SELECT count(*) FROM infra_probe"))).scalar_one()
        assert int(port) == postgres_server.port
        assert count >= 1
    finally:
        await engine.dispose()
