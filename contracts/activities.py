"""Typed references to activities: what a workflow needs to call one by name on another
service's task queue, checked by the type checker (the input it takes, the result it gives).

Each service's contract module declares its references beside its activity names, e.g.
``AuthActivities.CREATE_INVITED_USER``; workflows call them only through the step kernel
(``services.common.steps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from contracts.names import TaskQueue

I = TypeVar("I", bound=BaseModel)  # noqa: E741 (the input, as in Temporal's own generics)
R = TypeVar("R")


@dataclass(frozen=True)
class ActivityRef(Generic[I, R]):
    name: str
    task_queue: TaskQueue
    input_type: type[I]
    result_type: type[R]

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]
