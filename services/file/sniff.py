"""A file's content type from its first bytes, never from what the client claims.

Binary formats are recognised by their magic numbers (the ``filetype`` library). Text has no
magic: bytes that decode as UTF-8 without control characters are text, and only then may the
client's claim pick a more precise text type from a short, harmless list.
"""

from __future__ import annotations

import codecs

import filetype  # type: ignore[import-untyped]

# filetype reads at most this many bytes.
SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain"
_TEXT_REFINEMENTS = frozenset({"text/plain", "text/csv", "text/markdown", "application/json"})
# Tab, newline, carriage return and form feed are text; other C0 controls are not.
_BINARY_CONTROLS = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D}


def media_type(header_value: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    if not header_value:
        return OCTET_STREAM
    return header_value.split(";", 1)[0].strip().lower() or OCTET_STREAM


def sniff(head: bytes, declared: str | None = None) -> str:
    guessed = filetype.guess_mime(head) if head else None
    if isinstance(guessed, str):
        return guessed
    if head and _is_text(head):
        claimed = media_type(declared)
        return claimed if claimed in _TEXT_REFINEMENTS else TEXT_PLAIN
    return OCTET_STREAM


def _is_text(head: bytes) -> bool:
    if any(byte in _BINARY_CONTROLS for byte in head):
        return False
    # The head may end inside a multi-byte character: an incremental decoder allows that.
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def is_image(content_type: str) -> bool:
    return content_type in {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
    }
