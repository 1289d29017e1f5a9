"""The `Recipe` protocol: what a recipe decides, and nothing the engine decides.

A recipe builds the generation requests (from the engine's state: seeds, accepted tasks, its
RNG), reads each generation answer into candidates for the gate (`engine.gate.consider`), and
may have later per-task stages ("classify", "instances") that the engine runs through its
look-ahead windows. Sending, budgets, the journal, filters, novelty and output are the
engine's. A new recipe is one module here plus one line in `recipes/__init__.py`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from selfinstruct.llm import Completion, Request
from selfinstruct.records import Task
from selfinstruct.window import InFlight

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine


class Recipe(Protocol):
    """One way of making instruction data, driven by the engine."""

    name: ClassVar[str]
    # Later per-task stages this recipe has, run in this order (e.g. "classify",
    # "instances"); "instances" goes through the engine's answer client when it has one.
    stages: ClassVar[tuple[str, ...]]
    # Its own prompt templates (prompts/<lang>/<name>.j2) with sample render values, loaded
    # and checked before any request like the shared ones (selfinstruct.prompts), and the
    # max_tokens defaults of its own stages: (remote endpoint, embedded model).
    templates: ClassVar[dict[str, dict[str, Any]]]
    max_tokens: ClassVar[dict[str, tuple[int, int]]]

    def __init__(self, engine: Engine) -> None: ...

    def generation_request(self, nonce: str) -> tuple[Request, Any] | None:
        """The next generation request and the context its answer is read with.

        None: nothing to ask now (the engine ends bootstrapping if no answer is pending).
        """
        ...

    def read_generation(self, item: InFlight, completion: Completion) -> None:
        """Turn one generation answer into candidates for the gate (or rejected rows)."""
        ...

    def stage_request(self, stage: str, task: Task) -> Request | None:
        """The request of a later stage (one of `stages`) for one task; None when this
        task has nothing to ask in it (decided by earlier stages only)."""
        ...

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        """Apply a later stage's answer to its task."""
        ...


def prompt_instruction(text: str) -> str:
    """Self-Instruct's normalisation of an in-context instruction (one line, no ':' end)."""
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


class NoLaterStages:
    """For recipes whose generation answer is the whole item (no per-task stages)."""

    stages: ClassVar[tuple[str, ...]] = ()
    templates: ClassVar[dict[str, dict[str, Any]]] = {}  # none beyond the shared ones
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {}

    def stage_request(self, stage: str, task: Task) -> Request:
        raise ValueError(f"this recipe has no {stage} stage")

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        raise ValueError(f"this recipe has no {stage} stage")
