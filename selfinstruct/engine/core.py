"""The engine: one run's state and the coarse steps that advance it, whatever the recipe.

Determinism is a design rule, because resume depends on it: all randomness comes from one
`random.Random(seed)`, every request carries a stable nonce, and answers are used strictly in
the order requests were issued (`Dispatcher`). Replaying the journal's answers therefore
rebuilds exactly the same pool, and the run continues where it stopped.

Throughput: up to `concurrency` requests stay in flight across round and batch boundaries.
Generation request j is built from the state after answer j − K was used (K = the run's
lookahead: its first concurrency, stored with the run): the pool it samples machine examples
from lags by at most K answers, fixed by the count of answers used, not by timing. A recipe's
later stages (classification, instances) do not depend on each other, so they run ahead by
up to 2K.

The recipe (`selfinstruct.recipes`) decides what is asked and how answers become candidates;
the engine decides when requests go out, and the gate decides what is kept.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from selfinstruct import features, languages
from selfinstruct.chat_template import ChatTemplate
from selfinstruct.config import GenerateConfig
from selfinstruct.engine.dispatch import Dispatcher
from selfinstruct.engine.gate import Gate
from selfinstruct.engine.ledger import Ledger
from selfinstruct.engine.review import review
from selfinstruct.engine.stages import RecipeStage, Stage
from selfinstruct.journal import Journal
from selfinstruct.llm import Client, Completion, Request, Usage
from selfinstruct.personas import Persona, pick
from selfinstruct.prompts import PromptSet
from selfinstruct.recipes import recipe_class
from selfinstruct.recipes.base import prompt_instruction
from selfinstruct.records import Funnel, Task
from selfinstruct.seeds import SeedSet

GENERATION = "generation"

# (model, base URL or None for the run's, API key env var name or None, api or None).
ClientFactory = Callable[[str, "str | None", "str | None", "str | None"], Client]


class Engine:
    """One run: state plus the coarse steps that advance it."""

    def __init__(
        self,
        config: GenerateConfig,
        seeds: SeedSet,
        prompts: PromptSet,
        client: Client,
        journal: Journal,
        *,
        run_id: str,
        endpoint_kind: str,
        judge_client: Client | None = None,
        answer_client: Client | None = None,
        client_factory: ClientFactory | None = None,
        personas: list[Persona] | None = None,
        chat_template: ChatTemplate | None = None,
    ) -> None:
        self.config = config
        self.seeds = seeds
        self.prompts = prompts
        self.journal = journal
        self.run_id = run_id
        self.endpoint_kind = endpoint_kind
        self.rng = random.Random(config.seed)
        self.judge_client = judge_client or client
        # With an `answer_client` (a chat client of the same model), instances are the model's
        # direct answers to each instruction instead of few-shot examples: what works for the
        # embedded 135M model, which writes almost no usable few-shot examples (README).
        self.answer_client = answer_client
        self._client_factory = client_factory
        self.personas = personas or []
        self.chat_template = chat_template  # magpie's: the model's own chat template
        self.language = config.language or languages.DEFAULT
        self.filter_settings = config.filters
        self.ledger = Ledger()
        self.dispatch = Dispatcher(config, client, journal, self.ledger.funnel)
        if judge_client is not None and judge_client is not client:
            self.dispatch.stage_models["judge"] = judge_client.model
        self.tasks: list[Task] = []
        self.seed_texts = [prompt_instruction(t.instruction) for t in seeds.tasks]
        self.gate = Gate(self, self.ledger, self.seed_texts)
        # Accepted instructions the bootstrap stage aims at: the target at first, raised when
        # tasks end without a valid instance so that N means N usable tasks (`top_up`).
        self.accept_target = config.num_instructions
        self.finished_tasks = 0  # tasks that have been through the instance (and quality) stages
        self.round = 0
        self.stalled_rounds = 0
        self.started_at = time.time()
        self.on_progress: Callable[[Any, str], None] | None = None
        depth = self.dispatch.depth
        self._generation = self.dispatch.window(GENERATION, depth)
        self._generation_used = 0
        # The stage name the recipe gives its generation requests ("bootstrap", "alpaca", …):
        # known once one is built; what the forecast (selfinstruct.estimate) counts by.
        self.generation_stage: str | None = None
        # True once the recipe has nothing left to ask and no generation answer is pending
        # (evol-instruct with every parent evolved --generations times).
        self.generation_exhausted = False
        self.recipe = recipe_class(config.recipe)(self)
        self.dispatch.max_tokens.update(self.recipe.max_tokens)
        # The recipe's later stages, then the features' (turns, verification, preference):
        # each one look-ahead window, run in this order for every batch of new tasks. The
        # recipe's "instances" stage goes through the answer client when there is one.
        self.stages: list[Stage] = [
            RecipeStage(self.recipe, name, answer_client if name == "instances" else None)
            for name in self.recipe.stages]
        self.feature_stages: list[Stage] = features.stages(self)
        for stage in (*self.stages, *self.feature_stages):
            self.dispatch.window(stage.name, 2 * depth)

    # -- state the rest of the program reads ----------------------------------------------

    @property
    def client(self) -> Client:
        return self.dispatch.client

    @client.setter
    def client(self, client: Client) -> None:
        self.dispatch.client = client

    @property
    def funnel(self) -> Funnel:
        return self.ledger.funnel

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return self.ledger.rejected

    @property
    def usage(self) -> Usage:
        return self.dispatch.usage

    @property
    def requests_issued(self) -> int:
        return self.dispatch.requests_issued

    @property
    def budget_stop(self) -> str | None:
        return self.dispatch.budget_stop

    @property
    def price(self) -> dict[str, float] | None:
        return self.dispatch.price

    @property
    def in_flight(self) -> int:
        return self.dispatch.in_flight

    def settle(self, timeout: float | None = None) -> None:
        self.dispatch.settle(timeout)

    def complete(self, requests: list[Request],
                 client: Client | None = None) -> list[Completion]:
        return self.dispatch.complete(requests, client)

    @property
    def target(self) -> int:
        return self.config.num_instructions

    @property
    def usable(self) -> int:
        """Tasks with at least one valid instance: what --num-instructions counts."""
        return sum(1 for task in self.tasks if task.instances)

    @property
    def bootstrapping_done(self) -> bool:
        return (len(self.tasks) >= self.accept_target or self.cannot_bootstrap
                or self.generation_exhausted)

    @property
    def cannot_bootstrap(self) -> bool:
        """--max-rounds or the stall limit forbid further bootstrap rounds."""
        return (self.round >= self.config.max_rounds
                or self.stalled_rounds >= self.config.stall_rounds)

    @property
    def stop_reason(self) -> str:
        if self.usable >= self.target:
            return "target reached"
        if self.generation_exhausted:
            return "the recipe has nothing left to generate from"
        if self.stalled_rounds >= self.config.stall_rounds:
            return f"no new instruction in {self.stalled_rounds} rounds in a row"
        if self.round >= self.config.max_rounds:
            return f"max rounds ({self.config.max_rounds}) reached"
        return "stopped before the target"

    def _progress(self, stage: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self, stage)

    def top_up(self) -> bool:
        """Mark the tasks so far as finished; True if bootstrapping must go on for more.

        Called after the instance and quality stages: the shortfall of usable tasks becomes
        new instructions to accept, unless a round, stall or budget limit forbids it.
        """
        self.finished_tasks = len(self.tasks)
        missing = self.target - self.usable
        if missing <= 0 or self.cannot_bootstrap or self.budget_stop \
                or self.generation_exhausted:
            return False
        self.accept_target = len(self.tasks) + missing
        return True

    # -- bootstrap -------------------------------------------------------------------------

    def bootstrap_round(self) -> int:
        """Use the next `requests_per_round` generation answers; return how many were kept.

        New requests are issued as answers are used, so the endpoint stays busy across
        rounds. When bootstrapping ends, answers still in flight are used too (they were
        paid for): their candidates are recorded as over the target.
        """
        self.round += 1
        before = len(self.tasks)
        for _ in range(self.config.requests_per_round or 1):
            self._fill_generation_window()
            if not self._generation:
                break
            item, completion = self._generation.pop()
            self._generation_used += 1
            self.recipe.read_generation(item, self.dispatch.used(item, completion))
        accepted = len(self.tasks) - before
        self.stalled_rounds = 0 if accepted else self.stalled_rounds + 1
        if self.bootstrapping_done:
            while self._generation:
                item, completion = self._generation.pop()
                self.recipe.read_generation(item, self.dispatch.used(item, completion))
        self.journal.sync()
        self._progress("bootstrap")
        if self.budget_stop and not self._generation and not self.bootstrapping_done:
            self.dispatch.stop_for_budget()
        return accepted

    def _fill_generation_window(self) -> None:
        cursors = self.dispatch.cursors
        while not self._generation.full and self._want_generation():
            built = self.recipe.generation_request(f"gen-{cursors[GENERATION]}")
            if built is None:  # nothing to ask now; for good if nothing is pending either
                self.generation_exhausted = not self._generation
                return
            request, context = built
            self.generation_stage = request.stage
            item = self.dispatch.issue(request, context)
            if item is None:
                return
            cursors[GENERATION] += 1
            self._generation.push(item)

    def _want_generation(self) -> bool:
        """Issue another generation request only if the target may still need it.

        Sized from the yield so far (accepted per answer, with a 25% margin) so the end of
        bootstrapping does not pay for answers that could only be "over_target". It depends
        only on the answers used so far, so it is as deterministic as the rest.
        """
        remaining = self.accept_target - len(self.tasks)
        if remaining <= 0 or self.bootstrapping_done:
            return False
        max_requests = self.config.max_rounds * (self.config.requests_per_round or 1)
        if self.dispatch.cursors[GENERATION] >= max_requests:
            return False
        if not self._generation_used or not self.tasks:
            return True
        per_answer = len(self.tasks) / self._generation_used
        return len(self._generation) < math.ceil(1.25 * remaining / per_answer)

    # -- the recipe's later stages ---------------------------------------------------------

    def batches(self, tasks: list[Task]) -> list[list[Task]]:
        """Coarse batches of tasks: one progress update / one Prefect task each."""
        size = max(16, 4 * (self.config.concurrency or 1))
        return [tasks[start:start + size] for start in range(0, len(tasks), size)]

    def instance_request(self, task: Task) -> Request | None:
        return self.recipe.stage_request("instances", task)

    def stage_batch(self, name: str, tasks: list[Task]) -> None:
        """One stage (a recipe's or a feature's) for a batch of tasks, in task order."""
        stage = next(s for s in (*self.stages, *self.feature_stages) if s.name == name)
        self.dispatch.run_ahead(name, tasks, self.tasks, stage.request, stage.read,
                                stage.client)
        self._progress(name)

    def persona_for(self, nonce: str) -> Persona | None:
        """The persona a generation request is conditioned on (None without --personas)."""
        return pick(self.personas, self.config.seed or 0, nonce) if self.personas else None

    def make_client(self, model: str, *, base_url: str | None = None,
                    api_key_env: str | None = None, api: str | None = None) -> Client:
        """A client for another model (a verifier, a response model), closed with the run."""
        if self._client_factory is None:
            raise RuntimeError("this engine was built without a client factory")
        return self._client_factory(model, base_url, api_key_env, api)

    @property
    def quality_checks(self) -> bool:
        return self.filter_settings.consistency or self.filter_settings.judge_model is not None

    def quality_batch(self, tasks: list[Task]) -> None:
        """Label consistency, then the LLM judge, for these tasks (`engine.review`)."""
        review(self, tasks)
        self.journal.sync()
        self._progress("quality")

    # -- output ----------------------------------------------------------------------------

    def write_version(self) -> str:
        """Write the immutable version folder and mark the run finished (`output`)."""
        from selfinstruct.output import write_version

        return write_version(self)
