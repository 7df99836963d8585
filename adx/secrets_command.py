"""``adx secrets``: a new set of the secrets production needs, as ``.env`` lines on stdout.

The payload encryption key, the token signing key, the codec server's token and the database
password, freshly generated (nothing is stored or logged). Append them to the ``.env`` of
docker-compose.yml, or put the same names in a Kubernetes Secret (deploy/k8s/README.md).
Rotation: add a new key beside the old one and make it active (adx/settings.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
from datetime import UTC, datetime

from adx.identity import new_signing_key
from workflow_client.codec import generate_key

HELP = "print a new set of production secrets as .env lines (nothing is stored)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # `adx secrets` takes no options


def generate() -> dict[str, str]:
    """Setting name -> value, every value on one line (JSON where the setting is a mapping)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    payload_key = f"payload-{stamp}"
    signing_key = f"jwt-{stamp}"
    return {
        "ADX_ENCRYPTION_KEYS": _one_line({payload_key: base64.b64encode(generate_key()).decode()}),
        "ADX_ENCRYPTION_ACTIVE_KEY_ID": payload_key,
        "ADX_JWT_PRIVATE_KEYS": _one_line({signing_key: new_signing_key()}),
        "ADX_JWT_ACTIVE_KID": signing_key,
        "ADX_CODEC_SERVER_TOKEN": secrets.token_urlsafe(32),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
    }


def _one_line(mapping: dict[str, str]) -> str:
    # No spaces or newlines outside the strings: an unquoted .env value, read the same by
    # every compose implementation.
    return json.dumps(mapping, separators=(",", ":"))


def run(args: argparse.Namespace) -> int:
    del args
    for name, value in generate().items():
        print(f"{name}={value}")
    return 0
