"""Building a subgraph schema: federation v2.9 (the composer rejects 2.11), query limits,
parser/validation caches, error masking, introspection off in production."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import strawberry
import structlog
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit
from strawberry.types import ExecutionContext

from graph.errors import MaskInternalErrors, code_of, is_client_error
from graph.metrics import BffMetrics, MetricsExtension

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


log = structlog.stdlib.get_logger(__name__)


class BffSchema(strawberry.federation.Schema):
    """Every error of an operation, a parse error included, passes here once: counted by its
    code (``metrics``), and logged as what it is. Strawberry logs each at error level; here a
    client's own mistake (a syntax or validation error, a ClientError such as NOT_FOUND) is an
    info line, and an unexpected error is logged once, with its traceback, where it is masked
    (MaskInternalErrors)."""

    def __init__(self, *args: Any, metrics: BffMetrics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        del execution_context
        if self.metrics is not None:
            self.metrics.count_errors(errors)
        for error in errors:
            if is_client_error(error):
                log.info("graphql.client_error", code=code_of(error), message=error.message)


def build_schema(
    *,
    query: type,
    mutation: type | None = None,
    subscription: type | None = None,
    types: Sequence[type] = (),
    production: bool = False,
    metrics: BffMetrics | None = None,
) -> strawberry.federation.Schema:
    extensions: list[Any] = [
        QueryLimits,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=VALIDATION_CACHE_SIZE),
        MaskInternalErrors,
        *([lambda: MetricsExtension(metrics)] if metrics is not None else []),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return BffSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=list(types),
        extensions=extensions,
        federation_version=FEDERATION_VERSION,
        metrics=metrics,
    )
