"""The running stack the recorder, the fault tests and the soak drive: a Temporal dev server
of its own, the five services' real workers behind a fault injector, and the auth and file
HTTP APIs, all in this process (``running_stack``), with the ``Harness`` the scenarios use.

Settings are embedded everything on temporary databases (``recorder_settings``); payloads are
encrypted with the TEST key ring in ``tests/histories/test-keys.json`` (``load_test_keyring``
refuses any other key), and worker and client identities are fixed, so no host name lands in
a recorded history.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from adx.faults import FaultInjector
from adx.settings import REPO_ROOT, Environment, Settings
from contracts.context import RequestContext, use_context
from contracts.names import SearchAttribute, SignalName, WorkflowType
from contracts.progress import ProgressEvent
from services.auth.activities import components
from services.command import SERVICES, load
from services.common.service import ServiceDefinition, ServiceRuntime, build_app, open_runtime
from workflow_client.codec import KeyRing
from workflow_client.connect import client_interceptors
from workflow_client.converter import build_data_converter
from workflow_client.errors import WorkflowFailed
from workflow_client.operations import WorkflowOperations, new_operation_id
from workflow_client.worker import create_worker

HISTORIES_DIR = REPO_ROOT / "tests" / "histories"
TEST_KEYS_FILE = HISTORIES_DIR / "test-keys.json"
TEST_KEY_PREFIX = "histories-test"
IDENTITY = "adx-histories-recorder"
NAMESPACE = "development"
# The deadline of one scenario (its waits included).
SCENARIO_TIMEOUT = 90.0
# The MFA codes the recorder's auth API accepts per setup (mfa_too_many_codes spends them).
MFA_ATTEMPTS = 2


class TestKeyError(ValueError):
    """The histories' key ring file is unreadable, or holds a key that is not a test key."""


def load_test_keyring(path: Path = TEST_KEYS_FILE) -> KeyRing:
    """The TEST key ring of the recorded histories. Refuses any key whose id does not say it
    is a histories test key, so a real key cannot be used by mistake."""
    try:
        document = json.loads(path.read_text())
        active = document["active_key_id"]
        keys = {
            str(k): base64.b64decode(str(v), validate=True) for k, v in document["keys"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
        raise TestKeyError(f"cannot read the histories test key ring {path}: {error}") from None
    for key_id in keys:
        if not key_id.startswith(TEST_KEY_PREFIX):
            raise TestKeyError(
                f"{path}: key id {key_id!r} is not a histories test key "
                f"(ids start with {TEST_KEY_PREFIX!r}); never record with a real key"
            )
    return KeyRing(active_key_id=str(active), keys=keys)


def service_definitions() -> dict[str, ServiceDefinition]:
    """name -> definition of every service (``adx service NAME``)."""
    return {name: load(name) for name in SERVICES}


@dataclass
class Harness:
    """The running services and what the scenarios use to drive them."""

    settings: Settings
    client: Client
    runtimes: dict[str, ServiceRuntime]
    faults: FaultInjector
    http: dict[str, httpx.AsyncClient]

    @property
    def ops(self) -> WorkflowOperations:
        return self.runtimes["workflow"].operations

    async def start(
        self,
        context: RequestContext,
        workflow_type: WorkflowType,
        input: BaseModel,
        *,
        fail: str | None = None,
        hang: str | None = None,
    ) -> tuple[str, asyncio.Event | None]:
        """Starts an operation; ``fail``/``hang`` name an activity faulted for this run."""
        key = uuid.uuid4().hex
        workflow_id = new_operation_id(workflow_type.value, context, key)
        started = None
        if fail is not None:
            self.faults.fail(workflow_id, fail)
        if hang is not None:
            started = self.faults.hang(workflow_id, hang)
        operation = await self.ops.start(context, workflow_type.value, input, request_key=key)
        assert operation.id == workflow_id
        return workflow_id, started

    async def completes(self, context: RequestContext, workflow_id: str) -> Any:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            return await self.ops.result(context, workflow_id)

    async def fails(self, context: RequestContext, workflow_id: str) -> WorkflowFailed:
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT):
                await self.ops.result(context, workflow_id)
        except WorkflowFailed as failed:
            return failed
        raise AssertionError(f"{workflow_id} completed; the scenario expected a failure")

    async def cancel(
        self, context: RequestContext, workflow_id: str, started: asyncio.Event | None
    ) -> None:
        """Cancels once the hanging activity runs, and waits for the compensated end."""
        assert started is not None, "start the run with hang=<activity>"
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            await started.wait()
        await self.ops.cancel(context, workflow_id, "recording the cancellation path")
        await self.fails(context, workflow_id)
        await self.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)

    async def expect_status(self, workflow_id: str, status: WorkflowExecutionStatus) -> None:
        found = (await self.client.get_workflow_handle(workflow_id).describe()).status
        if found is not status:
            raise AssertionError(f"{workflow_id} ended {found}, expected {status}")

    async def event(
        self,
        context: RequestContext,
        workflow_id: str,
        matches: Callable[[ProgressEvent], bool],
    ) -> ProgressEvent:
        async with asyncio.timeout(SCENARIO_TIMEOUT):
            while True:
                snapshot = await self.ops.progress(context, workflow_id)
                for event in snapshot.report.events:
                    if matches(event):
                        return event
                if snapshot.operation.status.is_terminal:
                    try:
                        await self.ops.result(context, workflow_id)
                    except WorkflowFailed as failed:
                        raise AssertionError(f"{workflow_id} failed: {failed.message}") from None
                    raise AssertionError(f"{workflow_id} ended before the awaited event")
                await asyncio.sleep(0.05)

    async def signal(
        self, context: RequestContext, workflow_id: str, name: SignalName, arg: BaseModel
    ) -> None:
        with use_context(context):
            await self.client.get_workflow_handle(workflow_id).signal(name.value, arg)


SEARCH_ATTRIBUTES = [SearchAttributeKey.for_keyword(name.value) for name in SearchAttribute]


def recorder_settings(data_dir: Path, keyring: KeyRing, base: Settings) -> Settings:
    """Embedded everything, temporary databases, the TEST key ring; nothing from the
    environment that could point at real infrastructure."""
    return Settings(
        environment=Environment.TEST,
        data_dir=data_dir,
        temporal_namespace=NAMESPACE,
        temporal_cli_path=base.temporal_cli(),
        encryption_keys={
            k: SecretStr(base64.b64encode(v).decode()) for k, v in keyring.keys.items()
        },
        encryption_active_key_id=keyring.active_key_id,
        database_url=None,
        redis_url=None,
        smtp_host=None,
        temporal_tls=False,
        temporal_api_key=None,
        worker_build_id=None,
        log_level="ERROR",
        public_url="https://adx.histories.test",
    )


@asynccontextmanager
async def running_stack(
    settings: Settings, keyring: KeyRing, *, workflows: bool = True
) -> AsyncIterator[Harness]:
    """A dev server of its own, the five services' workers (with the fault injector) and the
    auth and file HTTP APIs, in this process. ``workflows=False``: the workers here run the
    activities only, and the workflows run in a process of their own that a test starts (and
    kills)."""
    from services.auth.api import AuthApi
    from services.auth.models import AuthPolicy
    from services.common.http import create_service_app

    extra_args: list[str] = []
    for namespace in settings.temporal_namespaces:
        if namespace != "default":
            extra_args += ["--namespace", namespace]
    env = await WorkflowEnvironment.start_local(
        namespace=NAMESPACE,
        dev_server_existing_path=str(settings.temporal_cli()),
        dev_server_log_level="error",
        dev_server_extra_args=extra_args,
        search_attributes=SEARCH_ATTRIBUTES,
    )
    async with env, AsyncExitStack() as exits:
        target = env.client.service_client.config.target_host
        settings = settings.model_copy(update={"temporal_address": target})
        client = await Client.connect(
            target,
            namespace=NAMESPACE,
            data_converter=build_data_converter(keyring),
            interceptors=client_interceptors(settings),
            identity=IDENTITY,
        )
        faults = FaultInjector()
        runtimes: dict[str, ServiceRuntime] = {}
        for name, definition in service_definitions().items():
            runtime = await open_runtime(definition, settings, client=client)
            exits.push_async_callback(runtime.db.dispose)
            runtimes[name] = runtime
            await exits.enter_async_context(
                create_worker(
                    client,
                    task_queue=definition.task_queue.value,
                    workflows=definition.workflows if workflows else (),
                    activities=definition.activities(runtime),
                    interceptors=[faults],
                    identity=f"{IDENTITY}:{name}",
                    # A hanging fault hears of its cancellation at its next heartbeat.
                    default_heartbeat_throttle_interval=timedelta(milliseconds=200),
                    max_heartbeat_throttle_interval=timedelta(milliseconds=200),
                )
            )
        auth = runtimes["auth"]
        policy = AuthPolicy(mfa_max_attempts=MFA_ATTEMPTS)
        auth_app = create_service_app(
            "auth",
            AuthApi(auth, policy).routes(),
            verifier=auth.verifier,
            readiness={},
            state={"runtime": auth},
        )
        file_app = build_app(service_definitions()["file"], runtimes["file"])
        http = {
            "auth": httpx.AsyncClient(
                transport=httpx.ASGITransport(app=auth_app), base_url="http://auth", timeout=60
            ),
            "file": httpx.AsyncClient(
                transport=httpx.ASGITransport(app=file_app), base_url="http://file", timeout=60
            ),
        }
        for http_client in http.values():
            exits.push_async_callback(http_client.aclose)
        exits.push_async_callback(_close_auth, auth)
        yield Harness(settings=settings, client=client, runtimes=runtimes, faults=faults, http=http)


async def _close_auth(runtime: ServiceRuntime) -> None:
    await components(runtime).close()
