"""Evol-Instruct (WizardLM, Xu et al. 2023): harder instructions by evolving existing ones.

Each generation request applies ONE mutation to one parent instruction: in depth (add a
constraint, deepen, concretize, ask for more reasoning steps, complicate the input) or, less
often, in breadth (a new, rarer instruction of the same domain), with the paper's prompts
adapted (prompts/<lang>/evol_depth.j2, evol_breadth.j2). Parents start as the seed
instructions (or, with --from-version, the instructions of an earlier version:
selfinstruct.evol_parents) at generation 0; an accepted evolved instruction becomes a parent
of the next generation while its generation is below --generations.

Parent choice cycles over the parents in a fixed order: the starting instructions (shuffled
once by the run's RNG: seed files are grouped by kind), then each accepted evolved
instruction, appended as it is accepted. One pass over that list is WizardLM's epoch: every
instruction evolved once, so a pass reaches the evolved ones after all the starting ones, and
lineages grow breadth-first; the next pass evolves each again with a new mutation drawn. A
parent eliminated by the later stages is skipped from then on. Mutation kinds come from the
run's RNG, so the whole order is a pure function of the seed and the answers used
(resumable).

Elimination (the paper's rules, every drop a rejected row with its reason):
* parse: the evolved text copies the prompt's words (`copied_prompt`), an in-depth rewrite
  lost its parent (`unrelated_to_parent`), or was cut at max_tokens (`truncated`); then the
  gate (our filters, refusals included, and the novelty index);
* stage "evol_check": the model judges it Equal to its parent (`no_information_gain`,
  prompts/<lang>/evol_equal.j2); an unreadable verdict keeps it (`unreadable_verdict` row);
* stage "instances": the model answers the instruction (prompts/<lang>/answer.j2, through
  the answer client when the run has one, like Self-Instruct's answer mode); answers that
  are too short or a short "sorry" are dropped as instance_filter rows
  (`answer_too_short`, `answer_sorry`), then our instance filters.
An instruction eliminated by the later stages is not evolved further (it may already have
children from before its elimination: the later stages run after each bootstrapping phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from selfinstruct import languages
from selfinstruct.engine.ledger import Where, raw_answer
from selfinstruct.evol_parents import Parent, seed_parents, version_parents
from selfinstruct.evol_text import (
    answer_drop,
    copied_prompt,
    parse_equal,
    parse_evolved,
    unrelated_to_parent,
)
from selfinstruct.filters import Drop
from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import ParsedInstance
from selfinstruct.prompts import sha256_text
from selfinstruct.records import ANSWER_UNPARSEABLE, Task
from selfinstruct.text_filters import RefusalFilter
from selfinstruct.window import InFlight

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine

# Mutation kinds and their weights: the five in-depth kinds equally often, in-breadth rarer
# (the paper uses in-breadth to widen topics, in-depth to make most of the data harder).
MUTATIONS: tuple[tuple[str, int], ...] = (
    ("add_constraints", 17), ("deepen", 17), ("concretize", 17), ("reasoning_steps", 17),
    ("complicate_input", 17), ("breadth", 15),
)
BREADTH = "breadth"
EVOLVE = "evolve"  # the generation requests' stage (usage, journal, forecast)
CHECK = "evol_check"
# The answer stage is the engine's "instances" stage: it goes through the answer client when
# the run has one (the embedded model answers in chat), like Self-Instruct's answer mode.
ANSWER = "instances"


@dataclass(frozen=True)
class Evolution:
    """What one generation request asked: which parent, which mutation, whose point of view."""

    parent: Parent
    mutation: str
    persona_id: str | None


class EvolInstruct:
    name: ClassVar[str] = "evol-instruct"
    stages: ClassVar[tuple[str, ...]] = (CHECK, ANSWER)
    templates: ClassVar[dict[str, dict[str, Any]]] = {
        "evol_depth": {"instruction": "Name a fruit.", "mutation": "add_constraints",
                       "persona": "A retired teacher who grows tomatoes on her balcony."},
        "evol_breadth": {"instruction": "Name a fruit.",
                         "persona": "A retired teacher who grows tomatoes on her balcony."},
        "evol_equal": {"first": "Name a fruit.",
                       "second": "Name a tropical fruit and say where it grows."},
    }
    # An evolved instruction is its parent plus 10-20 words (a table or code at most); an
    # answer to a harder instruction is longer than a plain one; a verdict is two words.
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {
        EVOLVE: (512, 256), CHECK: (16, 16), "answer": (1024, 512)}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        config = engine.config
        self.max_generation: int = config.generations
        if config.from_version is not None:
            starting = version_parents(config.from_version)
            for parent in starting:  # the earlier version's instructions count as "seen"
                engine.gate.index.add(parent.instruction)
        else:
            starting = seed_parents(engine.seeds)
        # Shuffled once (the run's RNG): seed files are grouped by kind, and a small run
        # should not evolve only the first kind.
        engine.rng.shuffle(starting)
        self.parents: list[Parent] = starting
        self.cursor = 0  # where the next pass over `parents` continues
        self.parent_of: dict[str, Parent] = {}  # task id -> the parent it was evolved from
        self.eliminated: set[str] = set()  # task ids dropped by evol_check or the answer
        self.unit = languages.get(engine.language).length_unit
        self.refusal = RefusalFilter()
        self.names = [name for name, _ in MUTATIONS]
        self.weights = [weight for _, weight in MUTATIONS]

    # -- generation ------------------------------------------------------------------------

    def _next_parent(self) -> Parent:
        """The next parent in the cycle that has not been eliminated.

        A starting instruction is never eliminated, so there always is one.
        """
        while True:
            parent = self.parents[self.cursor % len(self.parents)]
            self.cursor = self.cursor % len(self.parents) + 1
            if parent.id not in self.eliminated:
                return parent

    def generation_request(self, nonce: str) -> tuple[Request, Evolution]:
        engine = self.engine
        parent = self._next_parent()
        mutation = engine.rng.choices(self.names, self.weights)[0]
        persona = engine.persona_for(nonce)
        description = persona.description if persona is not None else None
        if mutation == BREADTH:
            prompt = engine.prompts.render("evol_breadth", instruction=parent.text,
                                           persona=description)
        else:
            prompt = engine.prompts.render("evol_depth", instruction=parent.text,
                                           mutation=mutation, persona=description)
        params = engine.dispatch.params(EVOLVE, temperature=1.0, top_p=1.0)
        if engine.config.api == "completions":
            # A raw completion runs on into another "#Rewritten Prompt#:" block (the embedded
            # model did in 16 of 29 answers): stop at the prompt's own answer label, its last
            # line. Chat answers are left whole: a chat model may open with that label.
            params["stop"] = [prompt.rsplit("\n", 1)[-1].rstrip(":：").strip()]
        request = engine.dispatch.request(EVOLVE, prompt, params, nonce)
        return request, Evolution(parent, mutation, persona.id if persona else None)

    def read_generation(self, item: InFlight, completion: Completion) -> None:
        engine, request = self.engine, item.request
        evolution: Evolution = item.context
        found = engine.ledger.read(request, completion,
                                   lambda text: [e] if (e := parse_evolved(text)) else [],
                                   "rewritten instruction")
        if not found:
            return
        text = found[0]
        drop = self._parse_drop(text, evolution, completion)
        task = engine.gate.consider(text, drop.reason if drop else None,
                                    drop.detail if drop else "", sha256_text(request.prompt),
                                    completion.request_id)
        if task is None:
            return
        generation = evolution.parent.generation + 1
        task.extra = {"parent_id": evolution.parent.id, "mutation": evolution.mutation,
                      "generation": generation}
        if evolution.persona_id is not None:
            task.extra["persona_id"] = evolution.persona_id
        self.parent_of[task.id] = evolution.parent
        if generation < self.max_generation:
            self.parents.append(Parent(task.id, task.instruction, generation, task.instruction))

    def _parse_drop(self, text: str, evolution: Evolution,
                    completion: Completion) -> Drop | None:
        """The paper's rules on the evolved text itself, before the gate's filters."""
        if completion.finish_reason == "length":
            return Drop("truncated", "the rewritten instruction was cut off at max_tokens")
        copied = copied_prompt(text)
        # A refusal shares nothing with its parent either; it is left to the gate's refusal
        # filter, so it is counted under the reason every recipe uses.
        if copied is not None or evolution.mutation == BREADTH or self.refusal.check(text):
            return copied
        return unrelated_to_parent(text, evolution.parent.text)

    # -- later stages ----------------------------------------------------------------------

    def stage_request(self, stage: str, task: Task) -> Request | None:
        engine = self.engine
        if stage == CHECK:
            prompt = engine.prompts.render("evol_equal", first=self.parent_of[task.id].text,
                                           second=task.instruction)
            params = engine.dispatch.params(CHECK, temperature=0.0, top_p=1.0)
            return engine.dispatch.request(CHECK, prompt, params, f"{CHECK}-{task.id}")
        if task.id in self.eliminated:
            return None  # no information gain: nothing to answer
        prompt = engine.prompts.render("answer", instruction=task.instruction)
        params = engine.dispatch.params("answer", temperature=0.0, top_p=1.0)
        return engine.dispatch.request(ANSWER, prompt, params, f"{ANSWER}-{task.id}")

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        if stage == CHECK:
            self._read_check(task, request, completion)
        else:
            self._read_answer(task, request, completion)

    def _read_check(self, task: Task, request: Request, completion: Completion) -> None:
        """Equal to its parent: no information gain, the task is dropped (not answered)."""
        engine = self.engine
        if engine.ledger.request_failed(request, completion, task.instruction):
            return  # like an unreadable verdict: no reason to lose the task
        where = Where(task.instruction, sha256_text(request.prompt), completion.request_id)
        verdict = parse_equal(completion.text or "")
        if verdict is None:
            engine.funnel.answer(ANSWER_UNPARSEABLE)
            engine.ledger.record(CHECK, Drop("unreadable_verdict",
                                             f"no Equal/Not Equal verdict in the answer "
                                             f"(finish_reason={completion.finish_reason}); the "
                                             f"task is kept"),
                                 where, output=raw_answer(completion))
            return
        engine.funnel.answer(None)
        if not verdict:
            engine.ledger.record(CHECK, None, where)
            return
        self.eliminated.add(task.id)
        parent = self.parent_of[task.id]
        engine.ledger.record(CHECK, Drop("no_information_gain",
                                         f"the model judged it Equal to its parent "
                                         f"{parent.id} ({parent.text[:80]!r})"),
                             where, output=raw_answer(completion))

    def _read_answer(self, task: Task, request: Request, completion: Completion) -> None:
        engine = self.engine
        if not engine.gate.answer_arrived(task, request, completion, "answer"):
            self.eliminated.add(task.id)
            return
        answer = (completion.text or "").strip()
        if not answer:
            self.eliminated.add(task.id)
            engine.ledger.unparseable(request, completion, "answer", task.instruction)
            engine.gate.no_instances(task, "its answer was empty")
            return
        engine.funnel.answer(None)
        if completion.finish_reason == "length":
            drop: Drop | None = Drop("truncated", "the answer was cut off at max_tokens")
        else:
            drop = answer_drop(answer, self.unit)
        parsed = ParsedInstance("", answer, drop.reason, drop.detail) if drop else \
            ParsedInstance("", answer)
        engine.gate.keep_instances(task, [parsed], completion=completion)
        if not task.instances:
            self.eliminated.add(task.id)
