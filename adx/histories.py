"""``adx histories record``: runs every workflow type through its representative paths and
saves the histories the replay tests check (``tests/histories/<workflow_type>/<path>.json``).

The recorder starts its own Temporal dev server (the venv's CLI), runs the five services'
real workers in this process on temporary SQLite databases, and drives each workflow the way
production does: through the service's HTTP API where a person starts it (registration,
password reset, MFA, uploads), through ``WorkflowOperations`` otherwise. Failure and
cancellation paths use a fault injector in front of the real activities (the same effect as
a stand-in activity registered under the real name): a named activity of one workflow fails
for good, or hangs until cancelled. Nothing else is faked.

Payloads are encrypted with the TEST key ring in ``tests/histories/test-keys.json`` (never a
dev or production key), so the histories can be committed. Worker and client identities are
fixed, so no host name lands in them.

Files whose name contains ``-before-`` are histories of older code (a patched workflow's
history from before the patch): no scenario produces them, the recorder never overwrites or
removes them, and they keep replaying until the patch is removed (CONTRIBUTING.md).

This module also holds what the replay tests share with the recorder: the key ring loader,
the replayer (same data converter, interceptors and sandbox as production workers) and the
history file reader.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import io
import json
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import temporalio.worker
import temporalio.workflow
from pydantic import BaseModel, SecretStr
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from adx.settings import REPO_ROOT, Environment, Settings
from contracts.context import RequestContext, use_context
from contracts.names import SearchAttribute, SignalName, WorkflowType
from contracts.progress import EventKind, ProgressEvent
from services.auth.activities import AuthComponents, components
from services.command import SERVICES, load
from services.common.service import ServiceDefinition, ServiceRuntime, build_app, open_runtime
from workflow_client.codec import KeyRing
from workflow_client.connect import client_interceptors
from workflow_client.converter import build_data_converter
from workflow_client.errors import WorkflowFailed
from workflow_client.operations import WorkflowOperations, new_operation_id
from workflow_client.worker import create_worker, sandbox_runner

HELP = "record the workflow histories the replay tests check (tests/histories)"

HISTORIES_DIR = REPO_ROOT / "tests" / "histories"
TEST_KEYS_FILE = HISTORIES_DIR / "test-keys.json"
FROZEN_MARK = "-before-"
TEST_KEY_PREFIX = "histories-test"
IDENTITY = "adx-histories-recorder"
NAMESPACE = "development"
# The deadline of one scenario (its waits included).
SCENARIO_TIMEOUT = 90.0

T = TypeVar("T")


# Shared with the replay tests -------------------------------------------------------------


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


def all_workflows() -> list[type]:
    """Every workflow class of every service."""
    return [wf for definition in service_definitions().values() for wf in definition.workflows]


def workflow_type_of(cls: type) -> str:
    name = temporalio.workflow._Definition.must_from_class(cls).name
    assert name is not None
    return name


def replay_settings(keyring: KeyRing) -> Settings:
    """Settings whose only job is to describe the replayer's converter and interceptors."""
    return Settings(
        environment=Environment.TEST,
        encryption_keys={
            k: SecretStr(base64.b64encode(v).decode()) for k, v in keyring.keys.items()
        },
        encryption_active_key_id=keyring.active_key_id,
    )


def build_replayer(
    keyring: KeyRing, workflows: Sequence[type] | None = None, settings: Settings | None = None
) -> Replayer:
    """A replayer configured like a production worker: the project's data converter, the
    client interceptors (context propagation, tracing) and the same sandbox."""
    settings = settings or replay_settings(keyring)
    interceptors = [
        interceptor
        for interceptor in client_interceptors(settings)
        if isinstance(interceptor, temporalio.worker.Interceptor)
    ]
    return Replayer(
        workflows=list(workflows if workflows is not None else all_workflows()),
        data_converter=build_data_converter(keyring),
        interceptors=interceptors,
        workflow_runner=sandbox_runner(),
        namespace=NAMESPACE,
    )


def history_files(root: Path = HISTORIES_DIR) -> list[Path]:
    """Every committed history: ``<root>/<workflow_type>/<path>.json``."""
    return sorted(path for path in root.glob("*/*.json") if path.is_file())


def load_history(path: Path) -> WorkflowHistory:
    """A history file as written by the recorder (``WorkflowHistory.to_json``) or by
    ``temporal workflow show --output json``. The workflow id comes from the started event
    (child workflow ids derive from it, so replay needs the real one)."""
    document = json.loads(path.read_text())
    history = WorkflowHistory.from_json("unknown", document)
    started = history.events[0].workflow_execution_started_event_attributes
    workflow_id = started.workflow_id or path.stem
    return WorkflowHistory(workflow_id, history.events)


async def replay_all(replayer: Replayer, paths: Sequence[Path]) -> dict[Path, BaseException | None]:
    """Replays every file with one replayer worker (one sandbox validation of every
    workflow class, not one per file); each file's failure, or None."""
    histories = {path: load_history(path) for path in paths}
    by_run: dict[str, Path] = {}
    for path, history in histories.items():
        if history.run_id in by_run:
            raise ValueError(f"{path} and {by_run[history.run_id]} are the same run")
        by_run[history.run_id] = path

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories.values():
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures: dict[Path, BaseException | None] = dict.fromkeys(paths)
    for run_id, error in results.replay_failures.items():
        failures[by_run[run_id]] = error
    return failures


def history_workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The ids of the ``workflow.patched`` markers recorded in a history."""
    found: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name != "core_patch":
            continue
        for details in attributes.details.values():  # "patch-data": {"id": ..., ...}
            for payload in details.payloads:
                patch_id = json.loads(payload.data).get("id")
                if isinstance(patch_id, str):
                    found.append(patch_id)
    return found


# The core's message inside the SDK's error text: message: "[TMPRL1100] Nondeterminism ..."
_MISMATCH = re.compile(r'(Nondeterminism error: (?:[^"\\\n]|\\.)*)')


def describe_replay_failure(workflow_type: str, path: Path, error: BaseException) -> str:
    """What a failing replay prints: the workflow, the file and the first mismatch."""
    text = str(error) or type(error).__name__
    found = _MISMATCH.search(text)
    mismatch = found.group(1).strip() if found else text.strip().splitlines()[0]
    try:
        shown: Path | str = path.relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    return (
        f"workflow {workflow_type!r} no longer replays its recorded history {shown}: "
        f"first mismatch: {mismatch}\n"
        "An incompatible change to running workflows: guard it with workflow.patched(...) "
        "(CONTRIBUTING.md, 'Changing a workflow safely')."
    )


# Fault injection --------------------------------------------------------------------------


@dataclass
class Fault:
    hang: bool
    started: asyncio.Event = field(default_factory=asyncio.Event)


class FaultInjector(temporalio.worker.Interceptor):
    """Stands in front of the real activities: for one workflow (and its children) a named
    activity fails for good (``fail``) or hangs, heartbeating, until cancelled (``hang``)."""

    def __init__(self) -> None:
        self._faults: dict[tuple[str, str], Fault] = {}

    def fail(self, workflow_id: str, activity_name: str) -> None:
        self._faults[(workflow_id, str(activity_name))] = Fault(hang=False)

    def hang(self, workflow_id: str, activity_name: str) -> asyncio.Event:
        """The returned event is set once the hanging activity has started."""
        fault = Fault(hang=True)
        self._faults[(workflow_id, str(activity_name))] = fault
        return fault.started

    def find(self, workflow_id: str | None, activity_name: str) -> Fault | None:
        if workflow_id is None:
            return None
        for (owner, name), fault in self._faults.items():
            if name == activity_name and (
                workflow_id == owner or workflow_id.startswith(f"{owner}-")
            ):
                return fault
        return None

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _FaultyActivity(next, self)


class _FaultyActivity(temporalio.worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporalio.worker.ActivityInboundInterceptor, faults: FaultInjector
    ) -> None:
        super().__init__(next)
        self._injector = faults

    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        fault = self._injector.find(info.workflow_id, info.activity_type)
        if fault is None:
            return await super().execute_activity(input)
        fault.started.set()
        if not fault.hang:
            raise ApplicationError(
                "injected failure", type="ExternalServiceError", non_retryable=True
            )
        while True:  # until the cancellation arrives (with a heartbeat response)
            activity.heartbeat()
            await asyncio.sleep(0.1)


# The recording harness --------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    workflow_type: str
    path: str
    workflow_id: str


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


Scenario = Callable[[Harness], Awaitable[list[Recorded]]]


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    workflow_types: tuple[WorkflowType, ...]
    run: Scenario


SCENARIOS: list[ScenarioSpec] = []


def scenario(*workflow_types: WorkflowType) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS.append(ScenarioSpec(fn.__name__, workflow_types, fn))
        return fn

    return register


def recorded(workflow_type: WorkflowType, path: str, workflow_id: str) -> list[Recorded]:
    return [Recorded(workflow_type.value, path, workflow_id)]


def _compensated(failed: WorkflowFailed, first_step: str) -> None:
    """The run took its compensation path: completed steps undone, newest first, down to
    the first one."""
    if not failed.compensations or failed.compensations[-1] != first_step:
        raise AssertionError(
            f"{failed.operation_id}: expected compensations ending with {first_step!r}, "
            f"got {failed.compensations} ({failed.message})"
        )


# Identities and fixtures the scenarios share -------------------------------------------------

OWNER = ("owner", "admin", "member")
PASSWORD = "histories-password-123"  # noqa: S105 (a password of throwaway test accounts)


def _alice() -> tuple[str, RequestContext]:
    from services.common.dev_seed import USERS

    alice = USERS[0]
    return alice.id, RequestContext(
        user_id=alice.id, tenant_id="acme", roles=OWNER, correlation_id="histories"
    )


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _anonymous(user_id: str) -> RequestContext:
    from contracts.auth import ANONYMOUS_TENANT

    return RequestContext(user_id=user_id, tenant_id=ANONYMOUS_TENANT)


async def _new_tenant(h: Harness, *, members: dict[str, tuple[str, ...]]) -> str:
    """A fresh free-plan tenant with ``members`` in the tenant store and their auth grants."""
    from contracts.tenant import Plan
    from services.tenant.billing import terms
    from services.tenant.store import TenantStore

    tenant_id = _unique("t")
    await TenantStore(h.runtimes["tenant"].db).seed(
        tenant_id,
        tenant_id.title(),
        Plan.FREE,
        terms(Plan.FREE).quotas,
        {user_id: list(roles) for user_id, roles in members.items()},
    )
    auth = _auth_parts(h).store
    now = datetime.now(UTC)
    for user_id, roles in members.items():
        await auth.seed_user(user_id, f"{user_id}@histories.test", "x", now)
        await auth.seed_grant(user_id, tenant_id, roles, now)
    return tenant_id


async def _new_member(h: Harness, tenant_id: str = "acme") -> str:
    """A fresh user: a profile and membership in the user service, an account in auth."""
    from services.common.dev_seed import seed_user_id
    from services.user.store import UserStore

    email = f"{_unique('member')}@histories.test"
    user_id = seed_user_id(email)
    await UserStore(h.runtimes["user"].db).seed_member(
        user_id, email, "History Member", tenant_id, ["member"]
    )
    auth = _auth_parts(h).store
    now = datetime.now(UTC)
    await auth.seed_user(user_id, email, "x", now)
    await auth.seed_grant(user_id, tenant_id, ["member"], now)
    return user_id


def _auth_parts(h: Harness) -> AuthComponents:
    return components(h.runtimes["auth"])


def _bearer(h: Harness, context: RequestContext) -> dict[str, str]:
    from adx.identity import SigningKeys, TokenType

    token, _claims = SigningKeys.from_settings(h.settings).issue(
        h.settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


def _checked(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise AssertionError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def _link_token(h: Harness, email: str) -> str:
    """The token of the newest link emailed to ``email`` (no SMTP: the outbox keeps it)."""
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        while True:
            for entry in await _auth_parts(h).outbox.recent(to=email):
                found = re.search(r"token=([A-Za-z0-9_\-]+)", entry.body)
                if found:
                    return found.group(1)
            await asyncio.sleep(0.05)


async def _active_user(h: Harness) -> tuple[str, str]:
    from services.auth.security import hash_password

    email = f"{_unique('account')}@histories.test"
    user_id = str(uuid.uuid4())
    await _auth_parts(h).store.seed_user(
        user_id, email, await hash_password(PASSWORD), datetime.now(UTC)
    )
    return user_id, email


# Auth ---------------------------------------------------------------------------------------


@scenario(WorkflowType.USER_REGISTRATION)
async def registration_verified(h: Harness) -> list[Recorded]:
    """Register over HTTP, click the emailed link (the verify_email signal)."""
    email = f"{_unique('signup')}@histories.test"
    auth = h.http["auth"]
    started = _checked(
        await auth.post("/api/auth/register", json={"email": email, "password": PASSWORD}), 202
    )
    verified = _checked(
        await auth.get("/api/auth/verify", params={"token": await _link_token(h, email)}), 200
    )
    assert verified["status"] == "active", verified
    return recorded(WorkflowType.USER_REGISTRATION, "success", started["operation_id"])


@scenario(WorkflowType.USER_REGISTRATION)
async def registration_expired(h: Harness) -> list[Recorded]:
    """Nobody clicks: the deadline timer fires and the pending user is removed."""
    from contracts.auth import UserRegistrationInput
    from services.auth.security import hash_password

    user, _ = await _auth_parts(h).store.register_pending_user(
        f"{_unique('late')}@histories.test", await hash_password(PASSWORD), datetime.now(UTC)
    )
    context = _anonymous(user.id)
    workflow_id, _ = await h.start(
        context,
        WorkflowType.USER_REGISTRATION,
        UserRegistrationInput(user_id=user.id, expires_in_seconds=1),
    )
    failed = await h.fails(context, workflow_id)
    _compensated(failed, "create_pending_user")
    return recorded(WorkflowType.USER_REGISTRATION, "expired-compensated", workflow_id)


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_confirmed(h: Harness) -> list[Recorded]:
    """Request a reset over HTTP, confirm it with the emailed link (reset_password signal)."""
    _, email = await _active_user(h)
    auth = h.http["auth"]
    _checked(await auth.post("/api/auth/password-reset/request", json={"email": email}), 202)
    token = await _link_token(h, email)
    done = _checked(
        await auth.post(
            "/api/auth/password-reset/confirm",
            json={"token": token, "new_password": "another-long-password"},
        ),
        200,
    )
    workflow_id = done.get("operation_id")
    assert workflow_id, done
    return recorded(WorkflowType.PASSWORD_RESET, "success", str(workflow_id))


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_expired(h: Harness) -> list[Recorded]:
    from contracts.auth import PasswordResetInput

    user_id, _ = await _active_user(h)
    context = _anonymous(user_id)
    workflow_id, _ = await h.start(
        context,
        WorkflowType.PASSWORD_RESET,
        PasswordResetInput(user_id=user_id, expires_in_seconds=1),
    )
    failed = await h.fails(context, workflow_id)
    assert failed.message == "password reset expired", failed.message
    return recorded(WorkflowType.PASSWORD_RESET, "expired-compensated", workflow_id)


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_no_account(h: Harness) -> list[Recorded]:
    """A reset asked over HTTP for an address without an account: its operation ends at once,
    sending nothing."""
    from contracts.auth import ANONYMOUS_USER

    email = f"{_unique('nobody')}@histories.test"
    requested = _checked(
        await h.http["auth"].post("/api/auth/password-reset/request", json={"email": email}),
        202,
    )
    workflow_id = str(requested["operation_id"])
    result = await h.completes(_anonymous(ANONYMOUS_USER), workflow_id)
    assert result["status"] == "no_account", result
    assert await _auth_parts(h).outbox.recent(to=email) == [], "an email was sent"
    return recorded(WorkflowType.PASSWORD_RESET, "no-account", workflow_id)


async def _login(h: Harness, email: str) -> dict[str, str]:
    tokens = _checked(
        await h.http["auth"].post("/api/auth/login", json={"email": email, "password": PASSWORD}),
        200,
    )
    return {"authorization": f"Bearer {tokens['access_token']}"}


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@scenario(WorkflowType.MFA_SETUP)
async def mfa_confirmed(h: Harness) -> list[Recorded]:
    """Set up MFA over HTTP: a wrong code first (rejected, the setup keeps waiting), then
    the right one."""
    import pyotp

    _, email = await _active_user(h)
    headers = await _login(h, email)
    auth = h.http["auth"]
    setup = _checked(await auth.post("/api/auth/mfa/setup", headers=headers), 202)
    code = pyotp.TOTP(setup["secret"]).now()
    rejected = await auth.post(
        "/api/auth/mfa/confirm", headers=headers, json={"code": _wrong(code)}
    )
    assert rejected.status_code == 422, rejected.text
    confirmed = _checked(
        await auth.post("/api/auth/mfa/confirm", headers=headers, json={"code": code}), 200
    )
    assert confirmed["mfa_enabled"] is True, confirmed
    return recorded(WorkflowType.MFA_SETUP, "success-after-wrong-code", setup["operation_id"])


@scenario(WorkflowType.MFA_SETUP)
async def mfa_too_many_codes(h: Harness) -> list[Recorded]:
    """Wrong codes until none is left (the recorder's API allows 2): the secret is dropped."""
    import pyotp

    _, email = await _active_user(h)
    headers = await _login(h, email)
    auth = h.http["auth"]
    setup = _checked(await auth.post("/api/auth/mfa/setup", headers=headers), 202)
    code = pyotp.TOTP(setup["secret"]).now()
    for _ in range(MFA_ATTEMPTS):
        refused = await auth.post(
            "/api/auth/mfa/confirm", headers=headers, json={"code": _wrong(code)}
        )
        assert refused.status_code == 422, refused.text
    await _wait_closed(h, setup["operation_id"], WorkflowExecutionStatus.FAILED)
    return recorded(WorkflowType.MFA_SETUP, "too-many-codes-compensated", setup["operation_id"])


MFA_ATTEMPTS = 2


async def _wait_closed(h: Harness, workflow_id: str, status: WorkflowExecutionStatus) -> None:
    handle = h.client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await asyncio.sleep(0.05)
    await h.expect_status(workflow_id, status)


# User ---------------------------------------------------------------------------------------


@scenario(WorkflowType.USER_PROFILE_SYNC)
async def profile_sync(h: Harness) -> list[Recorded]:
    from contracts.user import ProfileChanges, UserActivity, UserProfileSyncInput

    alice_id, alice = _alice()
    input = UserProfileSyncInput(
        user_id=alice_id, changes=ProfileChanges(display_name="Alice Recorded", locale="fr")
    )
    ok, _ = await h.start(alice, WorkflowType.USER_PROFILE_SYNC, input)
    await h.completes(alice, ok)
    input = UserProfileSyncInput(user_id=alice_id, changes=ProfileChanges(title="Recorder"))
    bad, _ = await h.start(
        alice, WorkflowType.USER_PROFILE_SYNC, input, fail=UserActivity.RECORD_ACTIVITY
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "update_profile")
    return [
        *recorded(WorkflowType.USER_PROFILE_SYNC, "success", ok),
        *recorded(WorkflowType.USER_PROFILE_SYNC, "failure-compensated", bad),
    ]


def _waiting(step: str) -> Callable[[ProgressEvent], bool]:
    return lambda e: e.kind is EventKind.MESSAGE and e.step == step


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_restored(h: Harness) -> list[Recorded]:
    """Deactivated, then restore_user: first from a plain member (ignored), then an admin."""
    from contracts.user import RestoreUserSignal, UserDeactivationInput

    alice_id, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.event(alice, workflow_id, _waiting("grace_period"))
    stranger = RequestContext(user_id=target, tenant_id="acme", roles=("member",))
    await h.signal(
        stranger, workflow_id, SignalName.RESTORE_USER, RestoreUserSignal(requested_by=target)
    )
    await h.signal(
        alice, workflow_id, SignalName.RESTORE_USER, RestoreUserSignal(requested_by=alice_id)
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.USER_DEACTIVATION, "restored-by-signal", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_finalized(h: Harness) -> list[Recorded]:
    """Nobody restores: the grace period's timer fires and the deactivation is final."""
    from contracts.user import UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=1)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.USER_DEACTIVATION, "finalized-after-timeout", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_failed(h: Harness) -> list[Recorded]:
    from contracts.user import UserActivity, UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(
        alice, WorkflowType.USER_DEACTIVATION, input, fail=UserActivity.SEND_ACCOUNT_NOTICE
    )
    failed = await h.fails(alice, workflow_id)
    _compensated(failed, "deactivate_profile")
    return recorded(WorkflowType.USER_DEACTIVATION, "failure-compensated", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_cancelled(h: Harness) -> list[Recorded]:
    """Cancelled during the grace period: the deactivation is undone."""
    from contracts.user import UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.event(alice, workflow_id, _waiting("grace_period"))
    await h.ops.cancel(alice, workflow_id, "recording the cancellation path")
    await h.fails(alice, workflow_id)
    await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)
    return recorded(WorkflowType.USER_DEACTIVATION, "cancelled-compensated", workflow_id)


@scenario(WorkflowType.BULK_USER_OPERATION)
async def bulk_partial_failure(h: Harness) -> list[Recorded]:
    """Two members get the new locale; an unknown user fails alone and is reported."""
    from contracts.user import BulkAction, BulkUserOperationInput

    _, alice = _alice()
    users = [await _new_member(h), await _new_member(h), str(uuid.uuid4())]
    input = BulkUserOperationInput(
        tenant_id="acme", action=BulkAction.UPDATE_LOCALE, user_ids=users, locale="de", batch_size=2
    )
    workflow_id, _ = await h.start(alice, WorkflowType.BULK_USER_OPERATION, input)
    result = await h.completes(alice, workflow_id)
    assert len(result["failed"]) == 1, result
    return recorded(WorkflowType.BULK_USER_OPERATION, "partial-failure", workflow_id)


@scenario(WorkflowType.GET_USER_PROFILE, WorkflowType.GET_RECENT_ACTIVITY)
async def user_reads(h: Harness) -> list[Recorded]:
    from contracts.user import GetRecentActivityInput, GetUserProfileInput

    alice_id, alice = _alice()
    profile, _ = await h.start(
        alice, WorkflowType.GET_USER_PROFILE, GetUserProfileInput(user_id=alice_id)
    )
    await h.completes(alice, profile)
    recent, _ = await h.start(
        alice, WorkflowType.GET_RECENT_ACTIVITY, GetRecentActivityInput(user_id=alice_id)
    )
    await h.completes(alice, recent)
    return [
        *recorded(WorkflowType.GET_USER_PROFILE, "success", profile),
        *recorded(WorkflowType.GET_RECENT_ACTIVITY, "success", recent),
    ]


# Tenant -------------------------------------------------------------------------------------


@scenario(WorkflowType.TENANT_PROVISIONING)
async def provisioning(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.tenant import Plan, TenantProvisioningInput
    from contracts.user import UserActivity

    _, alice = _alice()
    ok, _ = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("new"), name="New Co", plan=Plan.PROFESSIONAL),
    )
    await h.completes(alice, ok)
    bad, _ = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("fail"), name="Failing Co"),
        fail=UserActivity.UPSERT_MEMBERSHIP,
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "create_tenant")
    cancelled, started = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("cancel"), name="Cancelled Co"),
        hang=AuthActivity.GRANT_TENANT_ACCESS,
    )
    await h.cancel(alice, cancelled, started)
    return [
        *recorded(WorkflowType.TENANT_PROVISIONING, "success", ok),
        *recorded(WorkflowType.TENANT_PROVISIONING, "failure-compensated", bad),
        *recorded(WorkflowType.TENANT_PROVISIONING, "cancelled-compensated", cancelled),
    ]


async def _session(h: Harness, user_id: str, tenant_id: str) -> str:
    from services.auth.models import SessionRecord

    now = datetime.now(UTC)
    record = SessionRecord(
        id=str(uuid.uuid4()),
        user_id=user_id,
        tenant_id=tenant_id,
        created_at=now,
        expires_at=now + timedelta(days=1),
        refresh_token_hash="x" * 64,
    )
    await _auth_parts(h).sessions.create(record)
    return record.id


@scenario(WorkflowType.TENANT_SWITCHING)
async def switching(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.tenant import TenantSwitchingInput

    alice_id, alice = _alice()

    def switch(session_id: str) -> TenantSwitchingInput:
        return TenantSwitchingInput(
            user_id=alice_id,
            from_tenant_id="acme",
            to_tenant_id="globex",
            current_session_id=session_id,
        )

    ok, _ = await h.start(
        alice, WorkflowType.TENANT_SWITCHING, switch(await _session(h, alice_id, "acme"))
    )
    await h.completes(alice, ok)
    bad, _ = await h.start(
        alice,
        WorkflowType.TENANT_SWITCHING,
        switch(await _session(h, alice_id, "acme")),
        fail=AuthActivity.INVALIDATE_SESSION,
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "update_current_tenant")
    return [
        *recorded(WorkflowType.TENANT_SWITCHING, "success", ok),
        *recorded(WorkflowType.TENANT_SWITCHING, "failure-compensated", bad),
    ]


@scenario(WorkflowType.TENANT_UPGRADE)
async def upgrade(h: Harness) -> list[Recorded]:
    from contracts.tenant import Plan, TenantTask, TenantUpgradeInput

    alice_id, _ = _alice()
    runs: list[Recorded] = []
    for path, fault in (("success", None), ("failure-compensated", TenantTask.APPLY_PLAN)):
        tenant_id = await _new_tenant(h, members={alice_id: OWNER})
        owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_UPGRADE,
            TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.PROFESSIONAL),
            fail=fault,
        )
        if fault is None:
            await h.completes(owner, workflow_id)
        else:
            failed = await h.fails(owner, workflow_id)
            _compensated(failed, "create_invoice")
        runs += recorded(WorkflowType.TENANT_UPGRADE, path, workflow_id)
    return runs


@scenario(WorkflowType.TENANT_SUSPENSION)
async def suspension(h: Harness) -> list[Recorded]:
    """Resumed by signal (after one from a non-owner, ignored), resumed by its timer, and
    cancelled while suspended (compensated)."""
    from contracts.tenant import ResumeTenantSignal, TenantSuspensionInput

    alice_id, _ = _alice()
    runs: list[Recorded] = []
    for path in ("resumed-by-signal", "resumed-after-timeout", "cancelled-compensated"):
        member = str(uuid.uuid4())
        tenant_id = await _new_tenant(h, members={alice_id: OWNER, member: ("member",)})
        owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
        resume_after = 1 if path == "resumed-after-timeout" else None
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_SUSPENSION,
            TenantSuspensionInput(tenant_id=tenant_id, resume_after_seconds=resume_after),
        )
        if path == "resumed-after-timeout":
            await h.completes(owner, workflow_id)
        else:
            await h.event(owner, workflow_id, _waiting("suspended"))
            if path == "resumed-by-signal":
                someone = RequestContext(user_id=member, tenant_id=tenant_id, roles=("member",))
                await h.signal(
                    someone,
                    workflow_id,
                    SignalName.RESUME_TENANT,
                    ResumeTenantSignal(requested_by=member),
                )
                await h.signal(
                    owner,
                    workflow_id,
                    SignalName.RESUME_TENANT,
                    ResumeTenantSignal(requested_by=alice_id),
                )
                await h.completes(owner, workflow_id)
            else:
                await h.ops.cancel(owner, workflow_id, "recording the cancellation path")
                await h.fails(owner, workflow_id)
                await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)
        runs += recorded(WorkflowType.TENANT_SUSPENSION, path, workflow_id)
    return runs


@scenario(WorkflowType.TENANT_MEMBERSHIP_SYNC)
async def membership_sync(h: Harness) -> list[Recorded]:
    """A member added, given other roles and removed; an addition failing at its last step
    (the user projection) undoes the tenant row and the grant."""
    from contracts.tenant import MembershipChange, TenantMembershipSyncInput
    from contracts.user import UserActivity

    alice_id, _ = _alice()
    tenant_id = await _new_tenant(h, members={alice_id: OWNER})
    owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
    member = await _new_member(h, tenant_id="acme")
    runs: list[Recorded] = []
    for path, change, roles in (
        ("add-success", MembershipChange.ADD, ["member"]),
        ("set-roles-success", MembershipChange.SET_ROLES, ["admin", "member"]),
        ("remove-success", MembershipChange.REMOVE, []),
    ):
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_MEMBERSHIP_SYNC,
            TenantMembershipSyncInput(
                tenant_id=tenant_id, user_id=member, change=change, roles=roles
            ),
        )
        await h.completes(owner, workflow_id)
        runs += recorded(WorkflowType.TENANT_MEMBERSHIP_SYNC, path, workflow_id)
    workflow_id, _ = await h.start(
        owner,
        WorkflowType.TENANT_MEMBERSHIP_SYNC,
        TenantMembershipSyncInput(
            tenant_id=tenant_id, user_id=member, change=MembershipChange.ADD, roles=["member"]
        ),
        fail=UserActivity.UPSERT_MEMBERSHIP,
    )
    _compensated(await h.fails(owner, workflow_id), "change_membership")
    return [
        *runs,
        *recorded(WorkflowType.TENANT_MEMBERSHIP_SYNC, "add-failure-compensated", workflow_id),
    ]


@scenario(WorkflowType.GET_TENANT_DATA)
async def tenant_read(h: Harness) -> list[Recorded]:
    from contracts.tenant import GetTenantDataInput

    _, alice = _alice()
    workflow_id, _ = await h.start(
        alice, WorkflowType.GET_TENANT_DATA, GetTenantDataInput(tenant_id="acme")
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.GET_TENANT_DATA, "success", workflow_id)


# File ---------------------------------------------------------------------------------------


def _png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48))
    for x in range(0, 64, 4):
        for y in range(0, 48, 4):
            image.putpixel((x, y), (x * 4 % 256, y * 5 % 256, (x + y) % 256))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


async def _upload(
    h: Harness,
    context: RequestContext,
    data: bytes,
    name: str,
    content_type: str,
    *,
    fail: str | None = None,
) -> tuple[str, str]:
    """Uploads over HTTP (as a browser does); returns (operation id, file id)."""
    key = uuid.uuid4().hex
    if fail is not None:
        h.faults.fail(new_operation_id(WorkflowType.FILE_UPLOAD.value, context, key), fail)
    accepted = _checked(
        await h.http["file"].post(
            "/api/file/uploads",
            content=data,
            headers={
                **_bearer(h, context),
                "content-type": content_type,
                "x-filename": name,
                "idempotency-key": key,
            },
        ),
        202,
    )
    return str(accepted["operation_id"]), str(accepted["file_id"])


def _file_member(tenant_id: str) -> RequestContext:
    return RequestContext(user_id=_unique("uploader"), tenant_id=tenant_id, roles=OWNER)


@scenario(WorkflowType.FILE_UPLOAD, WorkflowType.FILE_PROCESSING, WorkflowType.GET_RECENT_FILES)
async def uploads(h: Harness) -> list[Recorded]:
    """An image: scanned, stored, processed by the child workflow (thumbnail), ready. Then a
    failure at the last step removes everything; a stored file reprocessed on its own; the
    uploader's recent files."""
    from contracts.file import FileActivity, FileProcessingInput, RecentFilesInput

    uploader = _file_member(_unique("files"))
    ok, file_id = await _upload(h, uploader, _png(), "picture.png", "image/png")
    await h.completes(uploader, ok)
    bad, _ = await _upload(
        h,
        uploader,
        b"some text\n" * 20,
        "notes.txt",
        "text/plain",
        fail=FileActivity.SET_FILE_STATUS,
    )
    failed = await h.fails(uploader, bad)
    _compensated(failed, "discard_staging")
    again, _ = await h.start(
        uploader, WorkflowType.FILE_PROCESSING, FileProcessingInput(file_id=file_id)
    )
    await h.completes(uploader, again)
    recent, _ = await h.start(uploader, WorkflowType.GET_RECENT_FILES, RecentFilesInput(limit=5))
    await h.completes(uploader, recent)
    return [
        *recorded(WorkflowType.FILE_UPLOAD, "success", ok),
        *recorded(WorkflowType.FILE_PROCESSING, "image-as-child-of-upload", f"{ok}-processing"),
        *recorded(WorkflowType.FILE_UPLOAD, "failure-compensated", bad),
        *recorded(WorkflowType.FILE_PROCESSING, "image-reprocessed", again),
        *recorded(WorkflowType.GET_RECENT_FILES, "success", recent),
    ]


@scenario(WorkflowType.FILE_SHARING)
async def sharing(h: Harness) -> list[Recorded]:
    """A file shared with an active member of the owner's tenant (granted, emailed); a failed
    email takes the grant back; another tenant's user is not found and gets nothing."""
    from contracts.errors import ErrorKind
    from contracts.file import FileActivity, FileSharingInput, SharePermission
    from services.file.components import components as file_components

    owner = _file_member(_unique("share"))
    upload_id, file_id = await _upload(h, owner, b"shared notes\n", "shared.txt", "text/plain")
    await h.completes(owner, upload_id)
    runs: list[Recorded] = []
    for path, fault in (
        ("success", None),
        ("failure-compensated", FileActivity.SEND_SHARE_NOTIFICATION),
    ):
        share = FileSharingInput(
            file_id=file_id,
            user_id=await _new_member(h, owner.tenant_id),
            permission=SharePermission.READ,
            notify_email="reader@histories.test",
        )
        workflow_id, _ = await h.start(owner, WorkflowType.FILE_SHARING, share, fail=fault)
        if fault is None:
            await h.completes(owner, workflow_id)
        else:
            failed = await h.fails(owner, workflow_id)
            _compensated(failed, "grant")
        runs += recorded(WorkflowType.FILE_SHARING, path, workflow_id)
    outsider = await _new_member(h, _unique("other"))
    share = FileSharingInput(
        file_id=file_id,
        user_id=outsider,
        permission=SharePermission.READ,
        notify_email="outsider@histories.test",
    )
    workflow_id, _ = await h.start(owner, WorkflowType.FILE_SHARING, share)
    failed = await h.fails(owner, workflow_id)
    if failed.kind is not ErrorKind.NOT_FOUND or failed.compensations:
        raise AssertionError(
            f"{workflow_id}: expected NOT_FOUND before any grant, got {failed.kind} "
            f"{failed.compensations} ({failed.message})"
        )
    parts = file_components(h.runtimes["file"])
    if await parts.store.permission_of(file_id, outsider) is not None:
        raise AssertionError(f"{workflow_id}: the outsider was granted a permission")
    if await parts.outbox.recent(to="outsider@histories.test"):
        raise AssertionError(f"{workflow_id}: the outsider was emailed")
    runs += recorded(WorkflowType.FILE_SHARING, "grantee-not-a-member", workflow_id)
    return runs


@scenario(WorkflowType.FILE_MIGRATION)
async def migration(h: Harness) -> list[Recorded]:
    """Two files of a tenant moved from the primary storage to the archive."""
    from contracts.file import FileMigrationInput

    admin = _file_member(_unique("migrate"))
    for index in range(2):
        upload_id, _ = await _upload(
            h, admin, f"file {index}\n".encode() * 10, f"f{index}.txt", "text/plain"
        )
        await h.completes(admin, upload_id)
    workflow_id, _ = await h.start(
        admin, WorkflowType.FILE_MIGRATION, FileMigrationInput(source="local", target="archive")
    )
    result = await h.completes(admin, workflow_id)
    assert result["migrated"] == 2, result
    return recorded(WorkflowType.FILE_MIGRATION, "success", workflow_id)


# Cross-service (workflow service) -----------------------------------------------------------


@scenario(WorkflowType.USER_ONBOARDING)
async def onboarding(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.user import UserActivity
    from contracts.workflow import UserOnboardingInput

    _, alice = _alice()
    runs: list[Recorded] = []
    for path in ("success", "failure-compensated", "cancelled-compensated"):
        invite = UserOnboardingInput(
            email=f"{_unique('invitee')}@histories.test",
            display_name="Invited Person",
            tenant_id="acme",
            tenant_name="Acme Corporation",
        )
        if path == "success":
            workflow_id, _ = await h.start(alice, WorkflowType.USER_ONBOARDING, invite)
            await h.completes(alice, workflow_id)
        elif path == "failure-compensated":
            workflow_id, _ = await h.start(
                alice, WorkflowType.USER_ONBOARDING, invite, fail=AuthActivity.SEND_INVITATION
            )
            failed = await h.fails(alice, workflow_id)
            _compensated(failed, "create_credentials")
        else:
            workflow_id, started = await h.start(
                alice, WorkflowType.USER_ONBOARDING, invite, hang=UserActivity.INIT_PREFERENCES
            )
            await h.cancel(alice, workflow_id, started)
        runs += recorded(WorkflowType.USER_ONBOARDING, path, workflow_id)
    return runs


@scenario(WorkflowType.COMPLIANCE_EXPORT)
async def compliance_export(h: Harness) -> list[Recorded]:
    from contracts.workflow import ComplianceExportInput

    alice_id, alice = _alice()
    workflow_id, _ = await h.start(
        alice, WorkflowType.COMPLIANCE_EXPORT, ComplianceExportInput(user_id=alice_id)
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.COMPLIANCE_EXPORT, "success", workflow_id)


@scenario(WorkflowType.COMPLIANCE_ERASE)
async def compliance_erase(h: Harness) -> list[Recorded]:
    from contracts.tenant import TenantActivity
    from contracts.workflow import ComplianceEraseInput

    _, alice = _alice()
    runs: list[Recorded] = []
    for path, fault in (("success", None), ("failure-audited", TenantActivity.ERASE_USER_DATA)):
        subject = await _new_member(h)
        workflow_id, _ = await h.start(
            alice,
            WorkflowType.COMPLIANCE_ERASE,
            ComplianceEraseInput(user_id=subject, reason="recorded request"),
            fail=fault,
        )
        if fault is None:
            await h.completes(alice, workflow_id)
        else:
            await h.fails(alice, workflow_id)
        runs += recorded(WorkflowType.COMPLIANCE_ERASE, path, workflow_id)
    return runs


# Running it ---------------------------------------------------------------------------------


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
async def running_stack(settings: Settings, keyring: KeyRing) -> AsyncIterator[Harness]:
    """A dev server of its own, the five services' workers (with the fault injector) and the
    auth and file HTTP APIs, in this process."""
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
                    workflows=definition.workflows,
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


def select_scenarios(only: Sequence[str]) -> list[ScenarioSpec]:
    if not only:
        return list(SCENARIOS)
    known = {t.value for spec in SCENARIOS for t in spec.workflow_types}
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(f"no scenario records {', '.join(unknown)} (known: {sorted(known)})")
    return [s for s in SCENARIOS if any(t.value in only for t in s.workflow_types)]


async def record(out: Path, keyring: KeyRing, only: Sequence[str], base: Settings) -> int:
    chosen = select_scenarios(only)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="adx-histories-") as folder:
        settings = recorder_settings(Path(folder), keyring, base)
        async with running_stack(settings, keyring) as h:
            print(f"dev server and workers up in {time.monotonic() - began:.1f}s")
            runs: list[Recorded] = []
            for spec in chosen:
                step = time.monotonic()
                runs += await spec.run(h)
                print(f"  {spec.name}: {time.monotonic() - step:.1f}s")
            written = [await _write(h.client, run, out) for run in runs]
    await _check_replays(written, keyring)
    kept = sorted(
        path
        for path in set(history_files(out)) - set(written)
        if not only or path.parent.name in only
    )
    print(f"wrote {len(written)} histories under {out} in {time.monotonic() - began:.1f}s")
    for path in kept:
        marker = "frozen" if FROZEN_MARK in path.name else "not produced by any scenario"
        print(f"  kept {path.relative_to(out)} ({marker})")
    return 0


async def _write(client: Client, run: Recorded, out: Path) -> Path:
    history = await client.get_workflow_handle(run.workflow_id).fetch_history()
    found = history_workflow_type(history)
    if found != run.workflow_type:
        raise AssertionError(f"{run.workflow_id} is a {found}, not a {run.workflow_type}")
    if history.events[-1].event_type in _OPEN:
        raise AssertionError(f"{run.workflow_id} is still running")
    path = out / run.workflow_type / f"{run.path}.json"
    if FROZEN_MARK in path.name:
        raise AssertionError(f"{path.name}: '{FROZEN_MARK}' names frozen files; rename the path")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(history.to_json() + "\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    print(f"  {path.relative_to(out)} ({len(history.events)} events, {digest})")
    return path


_OPEN = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
}


async def _check_replays(paths: Sequence[Path], keyring: KeyRing) -> None:
    """Every written history replays against the code that wrote it (else the code is
    nondeterministic on its own, and the recording is useless)."""
    failures = await replay_all(build_replayer(keyring), paths)
    problems = [
        describe_replay_failure(path.parent.name, path, error)
        for path, error in failures.items()
        if error is not None
    ]
    if problems:
        raise SystemExit("\n".join(problems))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    recorder = sub.add_parser(
        "record",
        help="run every workflow type's paths on an embedded dev server and save the histories",
    )
    recorder.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORKFLOW_TYPE",
        help="record only the scenarios of this workflow type (repeatable)",
    )
    recorder.add_argument("--out", type=Path, default=HISTORIES_DIR, help="where to write")
    recorder.add_argument(
        "--keys", type=Path, default=TEST_KEYS_FILE, help="the TEST key ring (JSON)"
    )
    sub.add_parser("list", help="list the scenarios and the workflow types they record")


def run(args: argparse.Namespace) -> int:
    from adx.logging import configure_logging
    from adx.settings import get_settings

    if args.action == "list":
        for spec in SCENARIOS:
            print(f"{spec.name}: {', '.join(t.value for t in spec.workflow_types)}")
        return 0
    if not args.keys.exists():
        raise SystemExit(
            f"{args.keys} not found: `adx histories record` runs from a repository checkout"
        )
    try:
        keyring = load_test_keyring(args.keys)
    except TestKeyError as error:
        raise SystemExit(str(error)) from None
    base = get_settings()
    configure_logging(base.model_copy(update={"log_level": "ERROR"}))
    started = time.monotonic()
    code = asyncio.run(record(args.out, keyring, args.only, base))
    print(f"done in {time.monotonic() - started:.1f}s")
    return code
