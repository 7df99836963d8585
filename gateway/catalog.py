"""The workflows clients may start through ``POST /api/workflows/{type}``: their input and
result models, whether the gateway waits for the result (synchronous, within a budget), and
which roles may start them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel

from contracts.names import WorkflowType


@dataclass(frozen=True)
class CatalogEntry:
    workflow_type: WorkflowType
    input_model: type[BaseModel]
    summary: str
    result_model: type[BaseModel] | None = None
    # Set: the gateway waits up to this long and answers 200 with the result.
    sync_budget: timedelta | None = None
    # Any one of these roles may start it; empty: any authenticated caller.
    roles: frozenset[str] = field(default_factory=frozenset)


CATALOG: dict[str, CatalogEntry] = {}


def register(entry: CatalogEntry) -> None:
    CATALOG[entry.workflow_type.value] = entry
