"""The launcher's data directory: one launcher at a time per directory, and ``--reset``.

Two stacks sharing one directory would run two Temporal servers on one SQLite file; the lock
turns that into a clear message (``--port-offset`` alone moves ports, not the data dir).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from adx.settings import REPO_ROOT

LOCK_FILE_NAME = "adx-dev.lock"


class DataDirError(RuntimeError):
    """The data dir cannot be used as asked; the message says why and what to do."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DataDirError(f"cannot use data dir {self.path.parent}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirError(
                f"data dir {self.path.parent} is in use by another adx dev (pid {holder}). "
                "Stop it, or give this one its own: --data-dir PATH (or ADX_DATA_DIR) "
                "together with --port-offset N."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd  # held (and inherited by no child: fds are non-inheritable) until release

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def check_reset_is_safe(data_dir: Path) -> None:
    """Refuses to empty a directory that holds the repository, the home or working directory,
    so a mistyped --data-dir cannot wipe them."""
    data_dir = data_dir.resolve()
    protected = [REPO_ROOT, Path.home().resolve(), Path.cwd().resolve()]
    for path in protected:
        if path == data_dir or data_dir in path.parents:
            raise DataDirError(f"refusing to --reset {data_dir}: it contains {path}")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"data dir {data_dir} is not a directory")


def reset_data_dir(data_dir: Path) -> list[Path]:
    """Deletes everything in ``data_dir`` except the lock file; returns what was removed."""
    check_reset_is_safe(data_dir)
    if not data_dir.exists():
        return []
    removed: list[Path] = []
    for entry in sorted(data_dir.iterdir()):
        if entry.name == LOCK_FILE_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry)
    return removed
