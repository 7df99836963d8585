"""``adx temporal-setup``: what ADX needs in a Temporal cluster it does not run itself.

Every configured namespace (``temporal_namespaces``) and in each the custom search attributes
(:data:`adx.devstack.temporal.SEARCH_ATTRIBUTES`), through the server's own API, so the same
one-shot job serves docker-compose.yml, a Kubernetes Job against Temporal's Helm chart, and
Temporal Cloud (where namespaces are made in the console: there it only checks). Idempotent:
what exists is left as it is. ``adx dev`` does the same for its embedded server by itself.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from adx.devstack.temporal import SEARCH_ATTRIBUTES, all_namespaces
from adx.logging import configure_logging, get_logger
from adx.settings import Settings, get_settings

HELP = "create the Temporal namespaces and search attributes ADX needs (external Temporal)"

# A new namespace's workflow histories are kept this long after they close.
RETENTION = timedelta(days=7)
# A namespace just registered is unknown to the server's other parts for a few seconds.
PROPAGATION_SECONDS = 60.0

log = get_logger(__name__)


class NamespaceNotYetKnown(Exception):
    """The server does not list the namespace yet (its cache refreshes every few seconds)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # `adx temporal-setup` takes no options


def run(args: argparse.Namespace) -> int:
    del args
    settings = get_settings()
    configure_logging(settings)
    asyncio.run(set_up(settings))
    return 0


async def set_up(settings: Settings) -> None:
    # Plain: `connect` insists that the namespace exists, which is what this job makes true.
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(RuntimeError),  # not listening yet
        wait=wait_fixed(2),
        stop=stop_after_delay(PROPAGATION_SECONDS),
        reraise=True,
    ):
        with attempt:
            client = await Client.connect(
                settings.effective_temporal_address,
                namespace=settings.temporal_namespace,
                tls=settings.temporal_tls,
                api_key=api_key,
            )
    for namespace in all_namespaces(settings):
        await ensure_registered(client, namespace)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(NamespaceNotYetKnown),
            wait=wait_fixed(1),
            stop=stop_after_delay(PROPAGATION_SECONDS),
            reraise=True,
        ):
            with attempt:
                await ensure_search_attributes(client, namespace)


async def ensure_registered(client: Client, namespace: str) -> None:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
    retention = Duration()
    retention.FromTimedelta(RETENTION)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace, workflow_execution_retention_period=retention
            )
        )
        log.info("temporal.namespace_created", namespace=namespace)
    except RPCError as refused:
        if refused.status is not RPCStatusCode.ALREADY_EXISTS:  # another job won the race
            raise


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise NamespaceNotYetKnown(namespace) from error
        raise
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    wrong = [
        name
        for name in SEARCH_ATTRIBUTES
        if name in listed.custom_attributes and listed.custom_attributes[name] != keyword
    ]
    if wrong:
        raise RuntimeError(f"search attributes {wrong} in {namespace} are not Keyword")
    missing = [name for name in SEARCH_ATTRIBUTES if name not in listed.custom_attributes]
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace, search_attributes=dict.fromkeys(missing, keyword)
            )
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise NamespaceNotYetKnown(namespace) from error
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    log.info("temporal.search_attributes_added", namespace=namespace, added=missing)
