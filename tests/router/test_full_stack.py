"""The frontend contract through the router on the whole development stack (``adx dev``):
login (the user's id and email without a token), switchTenant, onboardUser followed to
COMPLETED with watchOperation, setupMfa's secret shown again through operation(id), and
entities spanning two subgraphs, run by the SDK's stack tests (sdk/test/stack/*.test.ts); and
another tenant's things not found through any root field or gateway route (probes derived from
the schema and the OpenAPI document)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
    parse_type,
)

from services.common.dev_seed import seed_user_id
from tests.router.conftest import SDK_DIR, run_node_tests
from tests.support.bff import subscribe_ws
from tests.support.devstack import DevStack
from tests.support.graphql_values import example, public_schema

LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password, tenantId: "acme") { sessionId user { id email } } }"""

STACK_SOURCES = sorted((SDK_DIR / "test" / "stack").glob("*.test.ts"))


@pytest.mark.parametrize(
    "source", STACK_SOURCES, ids=[p.name.removesuffix(".test.ts") for p in STACK_SOURCES]
)
async def test_sdk_on_the_dev_stack(source: Path, dev_stack: DevStack, sdk_tests: Path) -> None:
    await run_node_tests(
        sdk_tests / "stack" / source.name.replace(".ts", ".js"),
        {"ADX_ROUTER_URL": dev_stack.router_url},
        dev_stack.log,
    )


async def test_login_answers_the_users_id_and_email_without_a_token(dev_stack: DevStack) -> None:
    """``User`` belongs to the user subgraph, which needs the caller's token; a login has none
    yet, so the router must take the user's id and email from the auth subgraph alone."""
    query = {
        "query": LOGIN,
        "variables": {"email": "alice@acme.test", "password": "dev-password-123"},
    }
    async with httpx.AsyncClient(timeout=30) as http:
        answer = (await http.post(dev_stack.router_url, json=query)).json()
    assert "errors" not in answer, answer
    login = answer["data"]["login"]
    assert login["sessionId"]
    assert login["user"] == {"id": seed_user_id("alice@acme.test"), "email": "alice@acme.test"}


# Cross-tenant probes, derived from the schema and from the gateway's OpenAPI document ---------

# What each ID argument of a root field names. Every ID argument of the public schema must be
# here (a new one fails the probe below until it says what it names); None: it names nothing
# of another tenant's (a tenant to log into, checked by the login probe; a user to add).
ID_ARGUMENTS: dict[tuple[str, str, str], str | None] = {
    ("Query", "file", "id"): "file",
    ("Query", "tenant", "id"): "tenant",
    ("Query", "user", "id"): "user",
    ("Query", "operation", "id"): "operation",
    ("Query", "operationHistory", "id"): "operation",
    ("Mutation", "login", "tenantId"): None,
    ("Mutation", "shareFile", "fileId"): "file",
    ("Mutation", "shareFile", "userId"): "user",
    ("Mutation", "deleteFile", "id"): "file",
    ("Mutation", "switchTenant", "tenantId"): "tenant",
    ("Mutation", "inviteMember", "input"): None,
    ("Mutation", "changeMemberRole", "userId"): "user",
    ("Mutation", "deactivateUser", "id"): "user",
    ("Mutation", "cancelOperation", "id"): "operation",
    ("Mutation", "retryOperation", "id"): "operation",
    ("Subscription", "operationProgress", "id"): "operation",
}
# The gateway's path parameters, the same way.
PATH_PARAMETERS = {
    "id": "operation",
    "tenant_id": "tenant",
    "operation_id": "operation",
    "file_id": "file",
    "user_id": "user",
    "session_id": "session",
}


@dataclass
class Prober:
    """Alice acting in acme, and another tenant's things she must not find: globex's (she is a
    member of globex, but her token acts in acme) and, for a tenant, one she has no part in."""

    token: str
    own: dict[str, str]
    foreign: dict[str, str]
    owner_token: str  # bob's, of the session that is probed


async def _gql(
    http: httpx.AsyncClient, url: str, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer: dict[str, Any] = (
        await http.post(url, json={"query": query, "variables": variables}, headers=headers)
    ).json()
    return answer


async def _login(http: httpx.AsyncClient, url: str, email: str, tenant: str) -> str:
    return (await _session(http, url, email, tenant))[0]


async def _session(http: httpx.AsyncClient, url: str, email: str, tenant: str) -> tuple[str, str]:
    """An access token, and its session's id."""
    answer = await _gql(http, url, LOGIN_IN, email=email, password=PASSWORD, tenantId=tenant)
    assert "errors" not in answer, answer
    login: dict[str, str] = answer["data"]["login"]
    return login["accessToken"], login["sessionId"]


LOGIN_IN = """mutation($email: String!, $password: String!, $tenantId: ID) {
  login(email: $email, password: $password, tenantId: $tenantId) { accessToken sessionId } }"""
PASSWORD = "dev-password-123"
FIRST_FILE = "{ files(first: 1) { nodes { id } } }"


async def _until_done(http: httpx.AsyncClient, url: str, token: str, operation_id: str) -> str:
    query = "query($id: ID!) { operation(id: $id) { status } }"
    async with asyncio.timeout(60):
        while True:
            answer = await _gql(http, url, query, token, id=operation_id)
            status: str = answer["data"]["operation"]["status"]
            if status not in ("RUNNING", "PENDING"):
                return status
            await asyncio.sleep(0.2)


async def _prober(http: httpx.AsyncClient, url: str) -> Prober:
    alice = await _login(http, url, "alice@acme.test", "acme")
    bob, bob_session = await _session(http, url, "bob@globex.test", "globex")
    # Bob's own: a tenant alice is not in, his file, an operation of his still running.
    tenant_id = f"probe-{uuid.uuid4().hex[:8]}"
    created = await _gql(
        http,
        url,
        "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
        bob,
        input={"id": tenant_id, "name": "Bob's Other"},
    )
    assert "errors" not in created, created
    assert await _until_done(http, url, bob, created["data"]["createTenant"]["id"]) == "COMPLETED"
    bob_file = (await _gql(http, url, FIRST_FILE, bob))["data"]["files"]["nodes"][0]["id"]
    alice_file = (await _gql(http, url, FIRST_FILE, alice))["data"]["files"]["nodes"][0]["id"]
    mfa = await _gql(http, url, "mutation { setupMfa { id } }", bob)
    assert "errors" not in mfa, mfa
    return Prober(
        token=alice,
        own={"user": seed_user_id("alice@acme.test"), "file": alice_file},
        foreign={
            "file": bob_file,
            "user": seed_user_id("bob@globex.test"),
            "operation": mfa["data"]["setupMfa"]["id"],
            "tenant": tenant_id,
            "session": bob_session,
        },
        owner_token=bob,
    )


def _probes(schema: GraphQLSchema, prober: Prober) -> list[tuple[str, str, dict[str, Any]]]:
    """For every root field with an ID argument that names something, one document per such
    argument: that argument another tenant's, the others the prober's own or any value."""
    probes = []
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        assert root is not None
        for name, field in root.fields.items():
            named = {
                arg: ID_ARGUMENTS[(root.name, name, arg)]
                for arg, argument in field.args.items()
                if _holds_an_id(argument.type)
            }
            for arg, kind in named.items():
                if kind is None:
                    continue
                values = {
                    other: (
                        prober.own.get(str(named.get(other)), "x")
                        if other in named
                        else example(parse_type(str(argument.type)), schema)
                    )
                    for other, argument in field.args.items()
                    if other in named or is_non_null_type(argument.type)
                }
                values[arg] = prober.foreign[kind]
                declared = ", ".join(f"${other}: {field.args[other].type}" for other in values)
                passed = ", ".join(f"{other}: ${other}" for other in values)
                returned = get_named_type(field.type)
                selection = (
                    ""
                    if is_leaf_type(returned)
                    # A started operation is followed to its end.
                    else " { __typename ... on Operation { id } }"
                    if returned.name == "Operation"
                    else " { __typename }"
                )
                keyword = root.name.lower()
                document = f"{keyword}({declared}) {{ {name}({passed}){selection} }}"
                probes.append((f"{root.name}.{name}({arg})", document, values))
    return probes


def _holds_an_id(type_: GraphQLInputType) -> bool:
    named = get_named_type(type_)
    if isinstance(named, GraphQLInputObjectType):
        return any(_holds_an_id(field.type) for field in named.fields.values())
    return named.name == "ID"


@pytest.mark.behaviour
async def test_another_tenants_things_are_not_found_through_every_root_field(
    dev_stack: DevStack,
) -> None:
    """Alice, acting in acme, names globex's file, user and operation, and a tenant she has no
    part in, in every root field argument that takes such an id (the list derived from the
    schema): each is NOT_FOUND, and nothing of the other tenant's changed."""
    url = dev_stack.router_url
    schema = public_schema()
    async with httpx.AsyncClient(timeout=60) as http:
        prober = await _prober(http, url)
        probes = _probes(schema, prober)
        assert len(probes) >= 13
        for what, document, values in probes:
            if document.startswith("subscription"):
                events = await subscribe_ws(
                    url.removesuffix("/graphql"), document, values, prober.token, limit=1
                )
                [answer] = events
                errors = answer.get("errors") or answer["errors"]
            else:
                answer = await _gql(http, url, document, prober.token, **values)
                started = [v for v in (answer.get("data") or {}).values() if v]
                if started and started[0].get("__typename") == "Operation":
                    # Refused by the workflow (a check that needs the stores): it must fail
                    # as not found, having changed nothing (checked at the end).
                    errors = [await _failure(http, url, prober.token, started[0]["id"])]
                else:
                    assert not started, (what, answer)
                    errors = answer["errors"]
            codes = {error["extensions"]["code"] for error in errors}
            assert codes == {"NOT_FOUND"}, (what, document, errors)
        await _unchanged(http, url, prober)
        # Logging into a tenant one has no part in is refused, without saying whether it exists.
        refused = await _gql(
            http,
            url,
            LOGIN_IN,
            email="alice@acme.test",
            password=PASSWORD,
            tenantId=prober.foreign["tenant"],
        )
        assert refused.get("data") is None, refused


async def _failure(
    http: httpx.AsyncClient, url: str, token: str, operation_id: str
) -> dict[str, Any]:
    """The error of an operation that must fail, as a GraphQL error item."""
    assert await _until_done(http, url, token, operation_id) == "FAILED"
    query = "query($id: ID!) { operation(id: $id) { error { code message } } }"
    error = (await _gql(http, url, query, token, id=operation_id))["data"]["operation"]["error"]
    return {"message": error["message"], "extensions": {"code": error["code"]}}


async def _unchanged(http: httpx.AsyncClient, url: str, prober: Prober) -> None:
    """Bob's things are as they were: his session open, his operation neither cancelled nor
    retried, his file there, his roles, and he can still log in (not deactivated)."""
    me = await _gql(http, url, "{ me { sessionId } }", prober.owner_token)
    assert "errors" not in me, me
    bob = await _login(http, url, "bob@globex.test", "globex")
    assert await _until_done_or_running(http, url, bob, prober.foreign["operation"])
    files = await _gql(http, url, "{ files { nodes { id } } }", bob)
    assert prober.foreign["file"] in [f["id"] for f in files["data"]["files"]["nodes"]]
    roles = "query($id: ID!) { tenant(id: $id) { roles } }"
    for tenant_id in (prober.foreign["tenant"], "globex"):
        tenant = await _gql(http, url, roles, bob, id=tenant_id)
        assert "owner" in tenant["data"]["tenant"]["roles"], tenant


async def _until_done_or_running(
    http: httpx.AsyncClient, url: str, token: str, operation_id: str
) -> bool:
    """The probed operation was neither cancelled nor retried: still running (or done)."""
    query = "query($id: ID!) { operation(id: $id) { status retryOf } }"
    answer = await _gql(http, url, query, token, id=operation_id)
    return answer["data"]["operation"]["status"] in ("RUNNING", "COMPLETED")


@pytest.mark.behaviour
async def test_another_tenants_things_are_not_found_through_every_gateway_route(
    dev_stack: DevStack,
) -> None:
    """Every route of the gateway's OpenAPI document (its own and the services') with a path
    parameter naming a file, user, operation or tenant, asked with another tenant's id: 404,
    as problem+json (never 403: another tenant's things do not exist for the caller)."""
    async with httpx.AsyncClient(timeout=60) as http:
        prober = await _prober(http, dev_stack.router_url)
        document = (await http.get(f"{dev_stack.gateway_url}/openapi.json")).json()
        probed = []
        for path, item in document["paths"].items():
            names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
            if not names:
                continue
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                kinds = {name: PATH_PARAMETERS[name] for name in names}
                target = path
                for name, kind in kinds.items():
                    target = target.replace(f"{{{name}}}", prober.foreign[kind])
                body: dict[str, Any] | None = (
                    {} if operation.get("requestBody", {}).get("required") else None
                )
                answer = await http.request(
                    method.upper(),
                    f"{dev_stack.gateway_url}{target}",
                    json=body,
                    headers={"Authorization": f"Bearer {prober.token}"},
                )
                probed.append(f"{method.upper()} {path}")
                assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
        print("probed:", probed)
        assert len(probed) >= 15
        await _unchanged(http, dev_stack.router_url, prober)
