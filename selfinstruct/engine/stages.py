"""A per-task stage: one request per task (or none), its answer applied to the task.

The engine runs a recipe's later stages (classify, instances, evol-instruct's checks, …) and
the features' stages (follow-up turns, verifier answers, preference judgements) the same way:
through one look-ahead window each, in task order, journaled. A `Stage` says only what it
asks and what an answer does; `RecipeStage` adapts a recipe's `stage_request`/`read_stage`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from selfinstruct.llm import Client, Completion, Request
from selfinstruct.records import Task

if TYPE_CHECKING:
    from selfinstruct.recipes.base import Recipe


class Stage(Protocol):
    name: str  # unique: the window, the usage line and the requests' stage
    client: Client | None  # None: the run's client (or its answer client for "instances")

    def request(self, task: Task) -> Request | None:
        """The task's request in this stage, or None when it has nothing to ask.

        Must depend only on what earlier stages decided: the engine builds it ahead.
        """
        ...

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        """Apply the answer: every answer accounted for, every drop a ledger row."""
        ...


class RecipeStage:
    """One of a recipe's later stages as a `Stage`."""

    def __init__(self, recipe: Recipe, name: str, client: Client | None) -> None:
        self.recipe = recipe
        self.name = name
        self.client = client

    def request(self, task: Task) -> Request | None:
        return self.recipe.stage_request(self.name, task)

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        self.recipe.read_stage(self.name, task, request, completion)
