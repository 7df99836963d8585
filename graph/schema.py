"""Building a subgraph schema: federation v2.9 (the composer rejects 2.11), query limits,
parser/validation caches, error masking, introspection off in production."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit

from graph.errors import MaskInternalErrors

FEDERATION_VERSION: Literal["2.9"] = "2.9"
MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 15
# The largest request body the router reads (the SDK's documents are a few KB).
MAX_BODY_BYTES = 100 * 1024
# Built once. QueryDepthLimiter and MaxAliasesLimiter build a new rule class per request, and
# the validation cache's key holds the rules: every request was a miss, and validated in full.
QUERY_LIMIT_RULES = (depth_limit(MAX_DEPTH, None), alias_limit(MAX_ALIASES))
VALIDATION_CACHE_SIZE = 512


class QueryLimits(AddValidationRules):
    """Depth and alias limits, checked while validating (so cached with the validation)."""

    def __init__(self) -> None:
        super().__init__(list(QUERY_LIMIT_RULES))


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
        QueryLimits,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=VALIDATION_CACHE_SIZE),
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
