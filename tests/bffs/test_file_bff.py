"""The file subgraph end to end: the file service (server + worker, a real clamd) and the user
service (whose membership projection file_sharing checks) on the real Temporal dev server, the
gateway in front of them, the BFF with a Redis cache; uploads as GraphQL multipart requests
streamed through to the service."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client

from adx.settings import Settings
from bffs.file.subgraph import SUBGRAPH
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.file import FileSharingResult, FileUploadResult
from contracts.operations import OperationStatus
from graph import tasks
from graph.context import BffDependencies
from services.file.config import FileSettings
from services.file.service import file_service
from services.user.service import SERVICE as USER
from services.user.store import UserStore
from tests.bffs.tenant_file_stack import (
    gateway_calls,
    running_bff_on,
    running_gateway,
    running_services,
    upload,
    wait_result,
)
from tests.support.bff import graphql, issue_token, jwks_endpoint
from tests.support.clamd import ClamdServer, run_clamd
from tests.support.servers import RedisServer
from workflow_client.errors import WorkflowFailed

FILE = """query($id: ID!) { file(id: $id) { id name status contentType sizeBytes sha256 ownerId
  permission owner { id } tenant { id } } }"""
FILES = (
    "query($first: Int, $after: String) { files(first: $first, after: $after) {"
    " nodes { id name status } pageInfo { hasNextPage endCursor } } }"
)
MB = 1024 * 1024


class Stack:
    def __init__(self, url: str, deps: BffDependencies, users: UserStore) -> None:
        self.url = url
        self.deps = deps
        self.users = users

    async def join(self, who: RequestContext) -> None:
        """Makes ``who`` an active member of their tenant in the user service's projection
        (file_sharing shares only with those)."""
        await self.users.seed_member(
            who.user_id, f"{who.user_id}@example.test", who.user_id, who.tenant_id, ["member"]
        )

    def token(self, who: RequestContext) -> str:
        return issue_token(self.deps.settings, who)

    async def query(
        self, query: str, who: RequestContext | None, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await graphql(self.url, query, variables, self.token(who) if who else None)

    async def upload(self, who: RequestContext, data: bytes, name: str) -> FileUploadResult:
        body = await upload(self.url, self.token(who), data, name)
        assert "errors" not in body, body
        operation_id = body["data"]["uploadFile"]["id"]
        result: FileUploadResult = await wait_result(self.deps, who, operation_id, FileUploadResult)
        return result


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdServer]:
    with run_clamd() as server:
        yield server


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    client: Client,
    redis_server: RedisServer,
    clamd: ClamdServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("file-bff")
    service_settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{folder / 'file.db'}"}
    )
    config = FileSettings(
        storage_root=folder / "files",
        clamd_socket=clamd.socket_path,
        max_upload_bytes=16 * MB,
        default_quota_bytes=256 * MB,
    )
    # The user service too: file_sharing asks it whether the grantee is a member.
    definitions = {"file": file_service(config), "user": USER}
    async with (
        running_services(definitions, service_settings, client) as running,
        jwks_endpoint(settings) as jwks,
        running_gateway(settings, client, {"file": running["file"][1]}, jwks) as gateway,
        running_bff_on(SUBGRAPH, settings, client, gateway, redis_server.url) as (url, deps),
    ):
        try:
            yield Stack(url, deps, UserStore(running["user"][0].db))
        finally:
            await tasks.drain(deps)


def member(tenant_id: str, roles: tuple[str, ...] = ("member",)) -> RequestContext:
    return RequestContext(user_id=f"u-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id, roles=roles)


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def code(body: dict[str, Any]) -> str:
    value: str = body["errors"][0]["extensions"]["code"]
    return value


async def test_unauthenticated_is_refused(stack: Stack) -> None:
    assert code(await stack.query(FILES, None)) == "UNAUTHENTICATED"
    assert code(await stack.query(FILE, None, {"id": str(uuid.uuid4())})) == "UNAUTHENTICATED"
    body = await upload(stack.url, None, b"hello", "a.txt")
    assert code(body) == "UNAUTHENTICATED"
    deleted = await stack.query(
        "mutation($id: ID!) { deleteFile(id: $id) }", None, {"id": str(uuid.uuid4())}
    )
    assert code(deleted) == "UNAUTHENTICATED"


async def test_a_5_mb_upload_ends_as_a_processed_file(stack: Stack) -> None:
    owner = member(new_tenant())
    data = os.urandom(5 * MB)
    result = await stack.upload(owner, data, "big report.bin")
    assert result.size_bytes == 5 * MB
    assert result.scanned is True
    body = await stack.query(FILE, owner, {"id": result.file_id})
    assert "errors" not in body, body
    found = body["data"]["file"]
    assert found["status"] == "READY"
    assert found["name"] == "big report.bin"
    assert found["sizeBytes"] == 5 * MB
    assert found["sha256"] == result.sha256
    assert found["permission"] == "OWNER"
    assert found["owner"] == {"id": owner.user_id}
    assert found["tenant"] == {"id": owner.tenant_id}
    listed = await stack.query(FILES, owner)
    assert [n["id"] for n in listed["data"]["files"]["nodes"]] == [result.file_id]


async def test_files_are_cached_and_mutations_invalidate_them(stack: Stack) -> None:
    owner = member(new_tenant())
    first = await stack.upload(owner, b"first file\n", "first.txt")
    second = await stack.upload(owner, b"second file\n", "second.txt")
    page = await stack.query(FILES, owner, {"first": 1})
    files = page["data"]["files"]
    assert [n["id"] for n in files["nodes"]] == [second.file_id]
    assert files["pageInfo"]["hasNextPage"] is True
    rest = await stack.query(FILES, owner, {"first": 1, "after": files["pageInfo"]["endCursor"]})
    assert [n["id"] for n in rest["data"]["files"]["nodes"]] == [first.file_id]

    listed = await stack.query(FILES, owner)
    await stack.query(FILE, owner, {"id": first.file_id})
    before = gateway_calls(stack.deps)
    assert await stack.query(FILES, owner) == listed
    await stack.query(FILE, owner, {"id": first.file_id})
    assert gateway_calls(stack.deps) == before  # cache hits: no gateway call

    deleted = await stack.query(
        "mutation($id: ID!) { deleteFile(id: $id) }", owner, {"id": first.file_id}
    )
    assert deleted["data"]["deleteFile"] is True
    before = gateway_calls(stack.deps)
    after_delete = await stack.query(FILES, owner)
    assert gateway_calls(stack.deps) == before + 1  # the delete invalidated the list
    assert [n["id"] for n in after_delete["data"]["files"]["nodes"]] == [second.file_id]
    gone = await stack.query(FILE, owner, {"id": first.file_id})
    assert code(gone) == "NOT_FOUND"


async def test_share_file_gives_another_member_access(stack: Stack) -> None:
    tenant_id = new_tenant()
    owner, colleague = member(tenant_id), member(tenant_id)
    await stack.join(owner)
    await stack.join(colleague)
    uploaded = await stack.upload(owner, b"shared notes\n", "notes.txt")
    hidden = await stack.query(FILE, colleague, {"id": uploaded.file_id})
    assert code(hidden) == "NOT_FOUND"
    shared = await stack.query(
        """mutation($f: ID!, $u: ID!) { shareFile(fileId: $f, userId: $u, permission: WRITE)
             { id } }""",
        owner,
        {"f": uploaded.file_id, "u": colleague.user_id},
    )
    assert "errors" not in shared, shared
    result = await wait_result(
        stack.deps, owner, shared["data"]["shareFile"]["id"], FileSharingResult
    )
    assert result.user_id == colleague.user_id
    seen = await stack.query(FILE, colleague, {"id": uploaded.file_id})
    assert seen["data"]["file"]["permission"] == "WRITE"
    shares = await stack.query(
        "query($id: ID!) { file(id: $id) { shares { userId permission user { id } } } }",
        owner,
        {"id": uploaded.file_id},
    )
    by_user = {s["userId"]: s["permission"] for s in shares["data"]["file"]["shares"]}
    assert by_user[colleague.user_id] == "WRITE"
    # Only the owner (or an admin) shares or deletes.
    refused = await stack.query(
        "mutation($id: ID!) { deleteFile(id: $id) }", colleague, {"id": uploaded.file_id}
    )
    assert code(refused) == "FORBIDDEN"


async def test_share_file_with_another_tenants_user_fails_not_found(stack: Stack) -> None:
    """The mutation starts the operation (the BFF does not look the user up); the operation
    fails NOT_FOUND ("user not found") before granting anything."""
    owner = member(new_tenant())
    outsider = member(new_tenant())
    await stack.join(owner)
    await stack.join(outsider)
    uploaded = await stack.upload(owner, b"tenant only\n", "tenant.txt")
    shared = await stack.query(
        """mutation($f: ID!, $u: ID!) { shareFile(fileId: $f, userId: $u, permission: READ)
             { id } }""",
        owner,
        {"f": uploaded.file_id, "u": outsider.user_id},
    )
    assert "errors" not in shared, shared
    operation_id = shared["data"]["shareFile"]["id"]
    with pytest.raises(WorkflowFailed) as failed:
        await wait_result(stack.deps, owner, operation_id, FileSharingResult)
    assert failed.value.kind is ErrorKind.NOT_FOUND
    assert failed.value.message == "user not found"
    assert failed.value.compensations == []
    operation = await stack.deps.operations.describe(owner, operation_id)
    assert operation.status is OperationStatus.FAILED
    shares = await stack.query(
        "query($id: ID!) { file(id: $id) { shares { userId permission } } }",
        owner,
        {"id": uploaded.file_id},
    )
    assert [s["userId"] for s in shares["data"]["file"]["shares"]] == [owner.user_id]
    assert code(await stack.query(FILE, outsider, {"id": uploaded.file_id})) == "NOT_FOUND"


async def test_another_tenants_ids_are_not_found(stack: Stack) -> None:
    owner = member(new_tenant())
    uploaded = await stack.upload(owner, b"private\n", "private.txt")
    intruder = member(new_tenant(), ("owner", "admin", "member"))
    file_id = uploaded.file_id
    assert code(await stack.query(FILE, intruder, {"id": file_id})) == "NOT_FOUND"
    assert code(await stack.query(FILE, intruder, {"id": "not-an-id"})) == "NOT_FOUND"
    listed = await stack.query(FILES, intruder)
    assert listed["data"]["files"]["nodes"] == []
    shared = await stack.query(
        'mutation($f: ID!) { shareFile(fileId: $f, userId: "x") { id } }',
        intruder,
        {"f": file_id},
    )
    assert code(shared) == "NOT_FOUND"
    deleted = await stack.query(
        "mutation($id: ID!) { deleteFile(id: $id) }", intruder, {"id": file_id}
    )
    assert code(deleted) == "NOT_FOUND"
    entities = await stack.query(
        """query($r: [_Any!]!) { _entities(representations: $r) { ... on File { id name } } }""",
        intruder,
        {"r": [{"__typename": "File", "id": file_id}]},
    )
    assert entities["data"]["_entities"] == [None]
    assert code(entities) == "NOT_FOUND"
    # The owner still has it.
    assert (await stack.query(FILE, owner, {"id": file_id}))["data"]["file"]["id"] == file_id
