"""Finding the user BFF's real ``dashboard`` when it exists: the BFF is listed by
``adx bff`` (graph.runtime.BFFS) and its schema has a ``dashboard`` query field; the selection
is built from introspection (every scalar and enum field, nested objects a few levels deep,
fields that need arguments left out)."""

from __future__ import annotations

from typing import Any

from bench.client import HttpConnection, graphql

FIELD = "dashboard"
MAX_DEPTH = 3
_TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
INTROSPECTION = (
    "{ __schema { queryType { name } types { name kind fields { name "
    "args { name defaultValue type { kind } } type { " + _TYPE_REF + " } } } } }"
)


def user_bff_listed() -> bool:
    from graph.runtime import BFFS

    return "user" in BFFS


def _named(ref: dict[str, Any]) -> dict[str, Any]:
    while ref.get("ofType") is not None and ref.get("name") is None:
        ref = ref["ofType"]
    return ref


def _required_args(field: dict[str, Any]) -> bool:
    return any(
        arg["type"]["kind"] == "NON_NULL" and arg.get("defaultValue") is None
        for arg in field.get("args") or []
    )


def build_query(schema: dict[str, Any]) -> str | None:
    types = {t["name"]: t for t in schema["types"]}
    query_type = types.get(schema["queryType"]["name"]) or {}
    dashboard = next((f for f in query_type.get("fields") or [] if f["name"] == FIELD), None)
    if dashboard is None or _required_args(dashboard):
        return None

    def selection(type_name: str, depth: int) -> str:
        kind = types[type_name]["kind"]
        if kind in ("SCALAR", "ENUM"):
            return ""
        if kind != "OBJECT" or depth > MAX_DEPTH:
            return "{ __typename }"
        chosen = []
        for field in types[type_name].get("fields") or []:
            if field["name"].startswith("_") or _required_args(field):
                continue
            inner = _named(field["type"])
            sub = selection(inner["name"], depth + 1)
            chosen.append(f"{field['name']} {sub}".strip())
        return "{ " + " ".join(chosen or ["__typename"]) + " }"

    inner = _named(dashboard["type"])
    return f"query Dashboard {{ {FIELD} {selection(inner['name'], 1)} }}"


async def discover(base_url: str, token: str) -> str | None:
    connection = HttpConnection(base_url)
    try:
        document = await graphql(connection, INTROSPECTION, token=token)
        query = build_query(document["data"]["__schema"])
        if query is not None:
            await graphql(connection, query, token=token)  # it must answer without errors
        return query
    finally:
        await connection.close()
