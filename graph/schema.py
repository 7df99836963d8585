"""Building a subgraph schema: federation v2.9 (the composer rejects 2.11), query limits,
parser/validation caches, error masking, introspection off in production."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from graph.errors import MaskInternalErrors

FEDERATION_VERSION: Literal["2.9"] = "2.9"
MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15


def build_schema(
    *,
    query: type,
    mutation: type | None = None,
    subscription: type | None = None,
    types: Sequence[type] = (),
    production: bool = False,
    extra_extensions: Sequence[Callable[[], SchemaExtension]] = (),
) -> strawberry.federation.Schema:
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        MaskInternalErrors,
        *extra_extensions,
    ]
    if production:
        extensions.append(DisableIntrospection)
    return strawberry.federation.Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=list(types),
        extensions=extensions,
        federation_version=FEDERATION_VERSION,
    )
