"""``python -m adx.healthcheck [--ready]``: the images' HEALTHCHECK.

A container runs one process, named by ``ADX_PROCESS`` as ``adx dev`` names it (auth_server,
auth_worker, gateway, bff_user, codec_server, router); this asks that process's ``/healthz``
(``--ready``: ``/readyz``) on loopback and exits 0 only on a 200.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

from adx.settings import Settings

TIMEOUT_SECONDS = 2.0


def health_port(settings: Settings, process: str) -> int:
    """The port where ``process`` answers its probes."""
    if process.endswith("_worker"):
        if settings.worker_health_port is None:
            raise ValueError(f"{process}: ADX_WORKER_HEALTH_PORT is not set (no HTTP)")
        return settings.worker_health_port
    if process.endswith("_server") and process != "codec_server":
        return settings.port(process.removesuffix("_server"))
    return settings.port(process)


def readiness_path(process: str) -> str:
    """The codec server depends on nothing it could check: ready is alive."""
    return "/healthz" if process == "codec_server" else "/readyz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adx.healthcheck", description=__doc__)
    parser.add_argument("--ready", action="store_true", help="readiness (/readyz), not liveness")
    args = parser.parse_args(argv)
    process = os.environ.get("ADX_PROCESS")
    if not process:
        print("ADX_PROCESS is not set: which process does this container run?", file=sys.stderr)
        return 2
    try:
        port = health_port(Settings(), process)
    except (KeyError, ValueError) as error:
        print(f"unknown process or port: {error}", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{port}{readiness_path(process) if args.ready else '/healthz'}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
