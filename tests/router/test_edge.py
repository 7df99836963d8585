"""The router's edge: CORS answers only the micro-frontends' origins; a request a browser could
send cross-site without a preflight (a form post, a bare GET) runs nothing; abusive documents
are refused by the router itself; a subgraph it cannot reach, or that does not answer in time,
is UNAVAILABLE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from graphql import (
    FragmentDefinitionNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_ast,
)

from adx.schema_command import MAX_COST, TRUSTED_DOCUMENTS, router_limits
from graph.runtime import BFFS
from tests.router.conftest import WEB_ORIGINS, Router, router_process
from tests.support.graphql_values import example, public_schema
from tests.support.ports import free_port

pytestmark = pytest.mark.behaviour

EVIL = "http://evil.example"
TYPENAME = "query { __typename }"


async def test_cors_answers_the_micro_frontends_and_never_echoes_another_origin(
    router: Router,
) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for origin in WEB_ORIGINS:
            allowed = await http.options(router.url, headers={"origin": origin, **preflight})
            assert allowed.headers["access-control-allow-origin"] == origin
            assert allowed.headers["access-control-allow-credentials"] == "true"
        for answer in (
            await http.options(router.url, headers={"origin": EVIL, **preflight}),
            await http.post(router.url, json={"query": TYPENAME}, headers={"origin": EVIL}),
        ):
            assert answer.headers.get("access-control-allow-origin") in (None, "null")


async def test_a_cross_site_form_post_or_bare_get_runs_nothing(router: Router) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for simple in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data"):
            refused = await http.post(
                router.url,
                content=f"query={TYPENAME}",
                headers={"content-type": simple, "origin": EVIL},
            )
            assert refused.status_code == 403, simple
            assert "data" not in refused.json() or refused.json()["data"] is None
        bare = await http.get(router.url, params={"query": TYPENAME})
        assert bare.status_code == 403
        # The header a page can only send after a preflight (which CORS refuses elsewhere).
        marked = await http.get(router.url, params={"query": TYPENAME}, headers={"x-adx-csrf": "1"})
        assert marked.json() == {"data": {"__typename": "Query"}}
        json_post = await http.post(router.url, json={"query": TYPENAME})
        assert json_post.json() == {"data": {"__typename": "Query"}}


async def test_abusive_documents_are_refused_by_the_router_itself(router: Router) -> None:
    """Limits the router enforces before planning (the subgraphs only see what it forwards):
    aliases, tokens, depth and the body's size (declared or chunked); a normal document still
    passes."""
    limits = router_limits()
    many_aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(limits["aliases"] + 1)) + " }"
    many_tokens = "{ " + " ".join(["__typename"] * (limits["tokens"] + 1)) + " }"
    padded = "{ __typename }\n#" + "x" * limits["body_bytes"]
    async with httpx.AsyncClient(timeout=30) as http:
        for document, refusal in ((many_aliases, "Too many aliases"), (many_tokens, "Token limit")):
            answer = (await http.post(router.url, json={"query": document})).json()
            assert answer.get("data") is None
            # The router's own refusal, not a subgraph's.
            assert refusal in answer["errors"][0]["message"], answer
        oversized = await http.post(router.url, json={"query": padded})
        assert oversized.status_code == 413
        # A chunked body declares no size: refused once the limit is read past.
        big = json.dumps({"query": padded}).encode()

        async def chunks(body: bytes) -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        chunked = await http.post(
            router.url, content=chunks(big), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        small = json.dumps({"query": TYPENAME}).encode()
        answer = await http.post(
            router.url, content=chunks(small), headers={"content-type": "application/json"}
        )
        assert answer.json() == {"data": {"__typename": "Query"}}
        # Deeper than the limit. The public schema has no cycle, so no valid document is
        # (introspection is not counted, and is off in production): the limit is for the day
        # one appears, and counts the document as written.
        fields = [f"f{level}" for level in range(limits["depth"] + 2)]
        deep = "{ " + " { ".join(fields) + " }" * len(fields)
        answer = (await http.post(router.url, json={"query": deep})).json()
        assert answer.get("data") is None
        messages = [error["message"] for error in answer["errors"]]
        assert any("depth limit" in message for message in messages), answer
        fine = "{ " + " ".join(f"a{i}: __typename" for i in range(limits["aliases"])) + " }"
        answer = (await http.post(router.url, json={"query": fine})).json()
        assert answer["data"]["a0"] == "Query"


async def test_an_unreachable_subgraph_is_unavailable_and_named_not_addressed(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/graphql"  # nothing listens there
    async with (
        router_process({name: dead for name in BFFS}, tmp_path) as router,
        httpx.AsyncClient(timeout=30) as http,
    ):
        answer = (await http.post(router.url, json={"query": "{ files { __typename } }"})).json()
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["message"] == "The file service is unavailable."
    assert "127.0.0.1" not in json.dumps(answer)


async def test_a_hung_subgraph_is_unavailable_in_bounded_time(tmp_path: Path) -> None:
    """A subgraph that takes the connection and never answers (a wedged BFF): the router gives
    it up after its upstream timeout and says UNAVAILABLE, naming no address."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    hung = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/graphql"
    try:
        async with (
            router_process(
                {name: hung for name in BFFS},
                tmp_path,
                settings={"ADX_ROUTER_UPSTREAM_TIMEOUT_SECONDS": "2"},
            ) as router,
            httpx.AsyncClient(timeout=30) as http,
        ):
            sent = {"query": "{ files { __typename } }"}
            answer = (await http.post(router.url, json=sent)).json()
    finally:
        for writer in held:
            writer.close()
        server.close()
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["message"] == "The file service did not answer in time."
    assert "127.0.0.1" not in json.dumps(answer)


async def test_the_anonymous_operations_are_rate_limited_per_email(router: Router) -> None:
    """Each password-reset request sends an email: one address gets a few per quarter hour,
    then the router refuses before any subgraph runs; another address is not held back."""
    reset = "mutation($email: String!) { requestPasswordReset(email: $email) { id } }"
    flooded = f"flood-{free_port()}@example.test"
    async with httpx.AsyncClient(timeout=30) as http:

        async def request(email: str) -> dict[str, object]:
            sent = {"query": reset, "variables": {"email": email}}
            answer: dict[str, object] = (await http.post(router.url, json=sent)).json()
            return answer

        for _ in range(router_limits()["emails_per_quarter_hour"]):
            assert "Rate limit" not in json.dumps(await request(flooded))
        assert "Rate limit" in json.dumps(await request(flooded))
        assert "Rate limit" not in json.dumps(await request(f"other-{free_port()}@example.test"))


async def test_in_production_the_schema_stays_private(tmp_path: Path) -> None:
    """No introspection and no "Did you mean" hints for a mistyped field (both answered in
    development, where tools need them)."""
    nowhere = f"http://127.0.0.1:{free_port()}/graphql"
    introspect = {"query": "{ __schema { queryType { name } } }"}
    typo = {"query": "{ tenantOverveiw { __typename } }"}
    for environment, private in (("test", False), ("production", True)):
        (tmp_path / environment).mkdir()
        async with (
            router_process(
                {name: nowhere for name in BFFS}, tmp_path / environment, environment
            ) as router,
            httpx.AsyncClient(timeout=30) as http,
        ):
            schema = (await http.post(router.url, json=introspect)).json()
            hint = json.dumps((await http.post(router.url, json=typo)).json())
        assert ("data" not in schema or schema["data"] is None) is private, schema
        assert ("Did you mean" in hint) is not private, hint


async def test_the_sdks_queries_cost_well_under_the_limit_and_a_costly_one_is_refused(
    router: Router, tmp_path: Path
) -> None:
    """The cost limit (the object fields a document selects) lets every query the SDK has
    pass, with room, and refuses a document that is many of them at once."""
    schema = public_schema()
    trusted: dict[str, str] = json.loads(TRUSTED_DOCUMENTS.read_text())
    costs: dict[str, int] = {}
    # In development the router shows each answer's cost (extensions.cost).
    async with (
        router_process(router.subgraphs, tmp_path, environment="dev") as shows_cost,
        httpx.AsyncClient(timeout=30) as http,
    ):
        for text in trusted.values():
            [operation, *_] = [
                d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)
            ]
            if operation.operation is not OperationType.QUERY:
                continue  # mutations would run; their cost is the same sum plus 10
            variables = {
                v.variable.name.value: example(v.type, schema)
                for v in operation.variable_definitions or ()
                if isinstance(v.type, NonNullTypeNode)
            }
            sent = {"query": text, "variables": variables}
            answer = (await http.post(shows_cost.url, json=sent)).json()
            assert "COST_ESTIMATED_TOO_EXPENSIVE" not in json.dumps(answer), answer
            assert operation.name is not None
            costs[operation.name.value] = answer["extensions"]["cost"]["estimated"]
        print("cost of the SDK's queries:", sorted(costs.items(), key=lambda item: -item[1]))
        assert max(costs.values()) * 2 <= MAX_COST, costs
        # The costliest query, as many times as the alias limit allows: within the depth,
        # alias and token limits, yet many times what any query of the product costs.
        dashboard = parse(next(text for text in trusted.values() if "query Dashboard" in text))
        [field] = next(
            d for d in dashboard.definitions if isinstance(d, OperationDefinitionNode)
        ).selection_set.selections
        fragments = [
            print_ast(d) for d in dashboard.definitions if isinstance(d, FragmentDefinitionNode)
        ]
        copies = " ".join(f"d{i}: {print_ast(field)}" for i in range(router_limits()["aliases"]))
        costly = " ".join([f"query {{ {copies} }}", *fragments])
        answer = (await http.post(shows_cost.url, json={"query": costly})).json()
    assert answer.get("data") is None
    assert answer["errors"][0]["extensions"]["code"] == "COST_ESTIMATED_TOO_EXPENSIVE", answer
