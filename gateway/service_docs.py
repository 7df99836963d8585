"""The services' own OpenAPI documents, merged into the gateway's.

Each service documents its ``/api/{service}/...`` routes at ``/openapi.json``. The gateway
fetches those through the same pool and breakers as any proxied request, keeps each for a
while (a service down keeps its last good document), and renames their schemas under the
service's name so that two services' models never collide.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from adx.problems import problem_response
from gateway.upstreams import UpstreamFailure, Upstreams, UpstreamUnavailable

log = structlog.stdlib.get_logger(__name__)

JsonObject = dict[str, Any]
SCHEMAS = "#/components/schemas/"
SHARED_SCHEMAS = frozenset({"Problem"})  # the gateway's own, the same in every service

# What the gateway itself may answer on a proxied route, whatever the service documents.
_GATEWAY_ERRORS = {
    "429": "rate limited; see Retry-After",
    "502": "the service failed to answer",
    "503": "no instance of the service can take the request",
}


class ServiceDocuments:
    def __init__(
        self,
        upstreams: Upstreams,
        http: httpx.AsyncClient,
        *,
        max_age_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._upstreams = upstreams
        self._http = http
        self._max_age = max_age_seconds
        self._timeout = timeout_seconds
        self._kept: dict[str, tuple[float, JsonObject]] = {}

    async def current(self) -> dict[str, JsonObject | None]:
        """Each service's document: fresh, kept from earlier, or None when never fetched."""
        services = sorted(self._upstreams.pools)
        documents = await asyncio.gather(*(self._document(name) for name in services))
        return dict(zip(services, documents, strict=True))

    async def _document(self, service: str) -> JsonObject | None:
        kept = self._kept.get(service)
        if kept is not None and time.monotonic() - kept[0] < self._max_age:
            return kept[1]
        try:
            document = await self._fetch(service)
        except (UpstreamUnavailable, UpstreamFailure, httpx.HTTPError, ValueError) as error:
            log.warning("gateway.service_document_unavailable", service=service, reason=str(error))
            return kept[1] if kept is not None else None
        self._kept[service] = (time.monotonic(), document)
        return document

    async def _fetch(self, service: str) -> JsonObject:
        async with self._upstreams.checkout(service) as upstream:
            try:
                response = await self._http.get(
                    f"{upstream.base_url}/openapi.json", timeout=self._timeout
                )
            except httpx.HTTPError as error:
                raise UpstreamFailure(type(error).__name__) from error
            if response.status_code >= 500:
                raise UpstreamFailure(f"HTTP {response.status_code}")
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            raise ValueError("not an OpenAPI document")
        return document


def merge(gateway: JsonObject, services: Mapping[str, JsonObject | None]) -> JsonObject:
    """The gateway's document with every service's ``/api/{service}/`` operations added."""
    merged = copy.deepcopy(gateway)
    schemas: JsonObject = merged["components"]["schemas"]
    unavailable = []
    for service, document in sorted(services.items()):
        if document is None:
            unavailable.append(service)
            continue
        renamed = _renamed(document, service)
        for name, schema in renamed.get("components", {}).get("schemas", {}).items():
            if name not in SHARED_SCHEMAS:
                schemas[f"{service}.{name}"] = schema
        prefix = f"/api/{service}/"
        for path, item in renamed["paths"].items():
            if not path.startswith(prefix):
                continue  # health, metrics and dev routes are the service's, not proxied
            for operation in item.values():
                operation["operationId"] = f"{service}_{operation.get('operationId', '')}"
                operation["tags"] = [service]
                responses = operation.setdefault("responses", {})
                for status, description in _GATEWAY_ERRORS.items():
                    responses.setdefault(status, problem_response(description))
            merged["paths"][path] = item
    if unavailable:
        merged["x-unavailable-services"] = unavailable
    return merged


def _renamed(node: Any, service: str) -> Any:
    """A copy of ``node`` whose schema references point at the service's renamed schemas."""
    if isinstance(node, dict):
        copied = {key: _renamed(value, service) for key, value in node.items()}
        ref = copied.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMAS):
            name = ref.removeprefix(SCHEMAS)
            if name not in SHARED_SCHEMAS:
                copied["$ref"] = f"{SCHEMAS}{service}.{name}"
        return copied
    if isinstance(node, list):
        return [_renamed(item, service) for item in node]
    return node
