"""Everything the launcher writes to stdout: children's lines behind a padded name, and blocks
(crash reports, the start-up table). Flushed after every write so a pipe (`make dev | tee`)
shows lines as they happen, in order."""

from __future__ import annotations

import sys
from typing import TextIO


class Console:
    def __init__(self, name_width: int = 12, stream: TextIO | None = None) -> None:
        self.name_width = name_width
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        # Looked up on each write so a replaced sys.stdout (pytest's capture) is honoured.
        return self._stream if self._stream is not None else sys.stdout

    def prefixed(self, name: str, text: str) -> str:
        return f"{name:<{self.name_width}} | {text}"

    def line(self, name: str, text: str) -> None:
        self._write(self.prefixed(name, text) + "\n")

    def block(self, text: str) -> None:
        self._write(text.rstrip("\n") + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
