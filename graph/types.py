"""GraphQL types every subgraph shares: operations, progress, pagination."""

from __future__ import annotations

import base64
from typing import Generic, TypeVar

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from contracts.operations import OperationStatus
from contracts.progress import Progress as ProgressModel
from graph.errors import bad_input
from workflow_client.models import Operation as OperationModel

T = TypeVar("T")

# The contract's enum is the GraphQL enum (registered in place).
strawberry.enum(OperationStatus, name="OperationStatus")


# Types every subgraph may define are shareable, or composition rejects the duplicates.
@strawberry.federation.type(shareable=True)
class Progress:
    current_step: str | None
    completed: int
    total: int
    last_offset: int

    @strawberry.field
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 0.0

    @classmethod
    def from_model(cls, progress: ProgressModel) -> Progress:
        return cls(
            current_step=progress.current_step,
            completed=progress.completed,
            total=progress.total,
            last_offset=progress.last_offset,
        )


@strawberry.federation.type(name="Operation", keys=[Key(fields=FieldSet("id"), resolvable=False)])
class OperationRef:
    """A reference to an operation; the workflow subgraph owns its fields (status,
    progress, result...), the router fetches them from there."""

    id: strawberry.ID

    @classmethod
    def of(cls, operation: OperationModel | str) -> OperationRef:
        return cls(id=strawberry.ID(operation if isinstance(operation, str) else operation.id))


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


MAX_PAGE = 100


def page_size(first: int | None, default: int = 20) -> int:
    if first is None:
        return default
    if not 1 <= first <= MAX_PAGE:
        raise bad_input(f"first must be between 1 and {MAX_PAGE}")
    return first


def encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_input("invalid cursor") from error
