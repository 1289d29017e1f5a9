"""The generation job's entry points: `Generator` (one run) and `run` (the order of its steps).

A thin facade over the engine, kept because the CLI, the Prefect flows, `progress`, `bench`
and the tests name these: the work is done in

* `selfinstruct.engine.dispatch` — asking a model (journal first, look-ahead windows, budgets,
  usage);
* `selfinstruct.engine.gate` / `engine.ledger` — what a candidate passes (PII mask, filters,
  target, novelty), the instance checks, and the funnel and rejected rows they write;
* `selfinstruct.recipes` — what a recipe asks and how it reads answers (self-instruct, alpaca);
* `selfinstruct.engine.review` — the opt-in LLM checks (label consistency, judge);
* `selfinstruct.output` — train rows, manifest, the version folder.

`run()` loops over the coarse steps for the CLI; the Prefect flow calls the very same methods
as tasks, so the two paths cannot diverge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfinstruct.engine.core import Engine
from selfinstruct.engine.dispatch import BudgetExhausted
from selfinstruct.output import EmptyDataset

__all__ = ["BudgetExhausted", "EmptyDataset", "Generator", "direct", "run"]


class Generator(Engine):
    """One run: state plus the coarse steps that advance it (see `engine.core.Engine`)."""


def direct(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a step in-process (the CLI path)."""
    return fn(*args)


def run(gen: Engine, step: Callable[..., Any] = direct) -> str:
    """The whole job, in the only order it runs; returns the version folder's path.

    `step(name, fn, *args)` executes each coarse step: `direct` for the CLI, a Prefect task
    wrapper for the flow — one loop, two executors.

    After bootstrapping, the recipe's later stages (classify, instances, …), the quality
    checks and the features' stages (verification, preference, follow-up turns) run in that
    order over the new tasks, batch by batch.

    Tasks that end without a valid instance do not count towards --num-instructions: after
    those stages, `top_up` raises the bootstrap target by the shortfall
    and the stages run again for the new tasks only, until N tasks are usable or a limit
    (--max-rounds, the stall limit, a budget) stops the run. Each decision depends only on
    answers used so far, so a resumed run replays the same phases from its journal.
    """
    while True:
        while not gen.bootstrapping_done:
            step("bootstrap-round", gen.bootstrap_round)
        new = gen.tasks[gen.finished_tasks:]
        for stage in gen.stages:
            for batch in gen.batches(new):
                step(f"{stage.name}-batch", gen.stage_batch, stage.name, batch)
        if gen.quality_checks:
            for batch in gen.batches(new):
                step("quality-batch", gen.quality_batch, batch)
        for stage in gen.feature_stages:
            for batch in gen.batches(new):
                step(f"{stage.name}-batch", gen.stage_batch, stage.name, batch)
        if not gen.top_up():
            break
    return step("write-version", gen.write_version)
