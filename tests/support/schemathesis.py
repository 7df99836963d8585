"""OpenAPI checks: bounded schemathesis runs against a gateway's ``/openapi.json`` (no input
it generates may get a 5xx, and every answer must match the schema documented for its
status), and the references of a document."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


async def run_schemathesis(
    gateway: str, authorization: str, include: str, *extra: str, limit_seconds: float = 300
) -> str:
    """Runs schemathesis against the gateway's document; its output (asserted clean)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{gateway}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "10",
        "--seed",
        "20261122",
        "--request-timeout",
        "20",
        "--phases",
        "examples,coverage,fuzzing",
        "--header",
        f"Authorization: {authorization}",
        "--include-path-regex",
        include,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=limit_seconds)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(
            "schemathesis did not finish: " + output.decode(errors="replace")[-4000:]
        ) from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "passed" in text
    assert "ST101" not in text  # the server-error check never fired
    return text


def only_unauthorized(output: str) -> set[str]:
    """The operations schemathesis reports as answering only 401."""
    operations: set[str] = set()
    listing = False
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("401 Unauthorized"):
            listing = True
        elif listing and text.startswith("- "):
            operations.add(text.removeprefix("- "))
        elif listing and operations:
            break
    return operations


def references(node: Any) -> Iterator[str]:
    """Every ``$ref`` in an OpenAPI document (or a part of one)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)
