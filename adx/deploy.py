"""``adx deploy``: Worker Versioning operations on the services' Worker Deployments.

``adx deploy set-current --build-id B`` makes build B current in every service's deployment
(``<worker_deployment_name>-<service>``), or only in those named with ``--service`` or
``--deployment``: new workflow executions go to B, auto-upgrade ones move to B at their next
workflow task, pinned ones finish on the build they started on. Start B's workers first (the
command waits up to ``--wait`` seconds for them to poll).

``adx deploy describe`` shows each deployment's current and ramping build and the status of
every version ("draining": pinned runs still open; "drained": its workers may stop).

``adx deploy manifests`` writes the Kubernetes resources of every process (adx/manifests.py).
"""

from __future__ import annotations

import argparse
import asyncio

from adx.settings import Settings

HELP = "Worker Versioning: promote a build to current, show each deployment's versions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    current = sub.add_parser(
        "set-current", help="make a build the current version of the services' deployments"
    )
    current.add_argument("--build-id", required=True, help="the build to promote")
    _targets(current)
    current.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the build's workers to poll (default 60)",
    )
    _targets(sub.add_parser("describe", help="current/ramping build and version statuses"))
    manifests = sub.add_parser(
        "manifests", help="write deploy/k8s/base/processes.yaml from the launcher's registry"
    )
    manifests.add_argument("--check", action="store_true", help="only fail if it is stale")


def _targets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="only this service's deployment (repeatable; default: every service)",
    )
    group.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME",
        help="a deployment by its full name (repeatable)",
    )


def deployments(settings: Settings, services: list[str], names: list[str]) -> list[str]:
    from services.command import SERVICES
    from workflow_client.versioning import deployment_name

    if names:
        return names
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise SystemExit(f"unknown service(s) {unknown}; known: {sorted(SERVICES)}")
    return [deployment_name(settings, service) for service in services or sorted(SERVICES)]


async def _set_current(settings: Settings, targets: list[str], build_id: str, wait: float) -> int:
    from workflow_client.connect import connect
    from workflow_client.versioning import VersionNotReady, set_current_version

    client = await connect(settings)
    failed = 0
    for deployment in targets:
        try:
            await set_current_version(client, deployment, build_id, wait_seconds=wait)
        except VersionNotReady as error:
            print(f"{deployment}: {error}")
            failed += 1
            continue
        print(f"{deployment}: current version is now {build_id}")
    return 1 if failed else 0


async def _describe(settings: Settings, targets: list[str]) -> int:
    from workflow_client.connect import connect
    from workflow_client.versioning import describe_deployment

    client = await connect(settings)
    for deployment in targets:
        state = await describe_deployment(client, deployment)
        if state is None:
            print(f"{deployment}: no versioned worker has polled yet")
            continue
        ramping = f", ramping {state.ramping_build_id}" if state.ramping_build_id else ""
        print(f"{deployment}: current {state.current_build_id or '(unversioned)'}{ramping}")
        for build_id, status in sorted(state.versions.items()):
            print(f"  {build_id}: {status}")
    return 0


def run(args: argparse.Namespace) -> int:
    from adx.logging import configure_logging
    from adx.settings import get_settings

    if args.action == "manifests":
        from adx.manifests import write

        return write(check=args.check)
    settings = get_settings()
    configure_logging(settings)
    targets = deployments(settings, args.service, args.deployment)
    if args.action == "set-current":
        return asyncio.run(_set_current(settings, targets, args.build_id, args.wait))
    return asyncio.run(_describe(settings, targets))
