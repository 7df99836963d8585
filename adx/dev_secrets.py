"""Secrets a development machine generates once and keeps under ``<data_dir>/secrets/``
(directory 0700, files 0600), so data written by an earlier run stays readable after a
restart. Never used in production, where every secret comes from settings."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DevSecretError(ValueError):
    """A development secret file is unreadable or malformed."""


def load_or_create(path: Path, create: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON document at ``path``, written first from ``create()`` if it does not exist.

    The file is written atomically; when several processes start at once, the first one's
    file wins and the others read it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        _write_once(path, create())
    os.chmod(path, 0o600)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DevSecretError(f"the development secret file {path} is unreadable") from error
    if not isinstance(document, dict):
        raise DevSecretError(f"the development secret file {path} is malformed")
    return document


def _write_once(path: Path, document: dict[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the file exists, so a concurrent writer's secret is never replaced.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
