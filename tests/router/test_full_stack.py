"""The frontend contract through the router on the whole development stack (``adx dev``):
login, switchTenant, onboardUser followed to COMPLETED with watchOperation, and entities
spanning two subgraphs, run by the SDK's stack tests (sdk/test/stack/*.test.ts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.router.conftest import SDK_DIR, DevStack, run_node_tests

STACK_SOURCES = sorted((SDK_DIR / "test" / "stack").glob("*.test.ts"))


@pytest.mark.parametrize(
    "source", STACK_SOURCES, ids=[p.name.removesuffix(".test.ts") for p in STACK_SOURCES]
)
async def test_sdk_on_the_dev_stack(source: Path, dev_stack: DevStack, sdk_tests: Path) -> None:
    await run_node_tests(
        sdk_tests / "stack" / source.name.replace(".ts", ".js"),
        {"ADX_ROUTER_URL": dev_stack.router_url},
        dev_stack.log,
    )
