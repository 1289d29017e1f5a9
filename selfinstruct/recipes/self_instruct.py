"""Self-Instruct (Wang et al. 2022), as in the paper's code.

Prompts list 6 human + 2 machine instructions and ask for more; new instructions pass the
gate (heuristic filters, exact ROUGE-L novelty against seeds + pool); then each is classified
(classification task or not, few-shot Yes/No) and gets instances, output-first for
classification tasks so labels are balanced, input-first otherwise. In answer mode (an
`answer_client`, for the embedded model) an instance is the model's direct answer instead.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

from selfinstruct.engine.ledger import Where, raw_answer
from selfinstruct.filters import Drop
from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import (
    ParsedInstance,
    parse_instances,
    parse_numbered_list,
    parse_yes_no,
)
from selfinstruct.personas import conditioned
from selfinstruct.prompts import sha256_text
from selfinstruct.recipes.base import prompt_instruction
from selfinstruct.records import ANSWER_UNPARSEABLE, Task
from selfinstruct.seeds import SeedSet, SeedTask
from selfinstruct.window import InFlight

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine


def few_shot_examples(rng: random.Random, seeds: SeedSet, config: GenerateConfig
                      ) -> tuple[list[SeedTask], dict[bool, list[dict[str, Any]]]]:
    """The fixed few-shot sets of the later stages, drawn once at the start of a run.

    Classification: a balanced Yes/No set. Instances: per kind (classification or not), at
    most `instance_examples` seed tasks with at most 2 instances each, to keep prompts short.
    """
    k = config.classify_examples
    yes = [t for t in seeds.tasks if t.is_classification is True]
    no = [t for t in seeds.tasks if t.is_classification is False]
    picked = rng.sample(yes, min(len(yes), k // 2))
    picked += rng.sample(no, min(len(no), k - len(picked)))
    rng.shuffle(picked)
    instances: dict[bool, list[dict[str, Any]]] = {}
    for classification in (False, True):
        pool = [t for t in seeds.tasks
                if t.instances and bool(t.is_classification) == classification]
        chosen = rng.sample(pool, min(len(pool), config.instance_examples))
        instances[classification] = [
            {"instruction": prompt_instruction(t.instruction),
             "instances": [{"input": i.input, "output": i.output} for i in t.instances[:2]]}
            for t in chosen]
    return picked, instances


class SelfInstruct:
    name: ClassVar[str] = "self-instruct"
    stages: ClassVar[tuple[str, ...]] = ("classify", "instances")
    # Its templates and stages are the shared ones (selfinstruct.prompts, engine.dispatch);
    # the persona sentence of --personas is the personas feature's (selfinstruct.features).
    templates: ClassVar[dict[str, dict[str, Any]]] = {}
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clf_examples, self.instance_examples = few_shot_examples(
            engine.rng, engine.seeds, engine.config)

    # -- generation ------------------------------------------------------------------------

    def generation_request(self, nonce: str) -> tuple[Request, int]:
        """The request, and the number its answer's first new item carries."""
        engine, cfg = self.engine, self.engine.config
        machine = engine.rng.sample(engine.tasks, min(cfg.machine_examples, len(engine.tasks)))
        wanted = cfg.seed_examples + cfg.machine_examples - len(machine)
        human = engine.rng.sample(engine.seed_texts, min(wanted, len(engine.seed_texts)))
        examples = [prompt_instruction(t.instruction) for t in machine] + human
        engine.rng.shuffle(examples)
        first = len(examples) + 1
        stop_at = first + 7  # at most 7 new items per answer, as in Self-Instruct
        stop = ([f"\n{stop_at}.", f"{stop_at}."] if cfg.api == "chat"
                else ["\n\n", f"\n{stop_at}", f"{stop_at}.", f"{stop_at} ."])
        params = engine.dispatch.params("bootstrap", temperature=0.7, top_p=0.5,
                                        presence_penalty=2.0, stop=stop)
        prompt = conditioned(engine, engine.prompts.render("bootstrap", instructions=examples),
                             nonce)
        return engine.dispatch.request("bootstrap", prompt, params, nonce), first

    def read_generation(self, item: InFlight, completion: Completion) -> None:
        engine, request = self.engine, item.request
        items = engine.ledger.read(
            request, completion,
            lambda text: parse_numbered_list(text, item.context,
                                             continuation=engine.config.api == "completions",
                                             truncated=completion.finish_reason == "length"),
            "numbered or bulleted list item")
        prompt_hash = sha256_text(request.prompt)
        persona = engine.persona_for(request.nonce)  # the one generation_request rendered
        for parsed in items:
            task = engine.gate.consider(parsed.text, parsed.reason, parsed.detail, prompt_hash,
                                        completion.request_id)
            if task is not None and persona is not None:
                task.extra["persona_id"] = persona.id

    # -- later stages ----------------------------------------------------------------------

    def stage_request(self, stage: str, task: Task) -> Request:
        if stage == "classify":
            return self.classification_request(task)
        return self.instance_request(task)

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        if stage == "classify":
            self.read_classification(task, request, completion)
        else:
            self.read_instances(task, request, completion)

    def classification_request(self, task: Task) -> Request:
        """The few-shot Yes/No request for one task (temperature 0)."""
        engine, labels = self.engine, self.engine.prompts.labels
        prompt = engine.prompts.render("classify", examples=self.clf_examples,
                                       instruction=task.instruction)
        params = engine.dispatch.params("classify", temperature=0.0, top_p=0.0,
                                        stop=["\n", f"{labels.task}:"])
        return engine.dispatch.request("classify", prompt, params, f"classify-{task.id}")

    def read_classification(self, task: Task, request: Request,
                            completion: Completion) -> None:
        engine = self.engine
        if engine.ledger.request_failed(request, completion, task.instruction):
            task.is_classification = False
            return
        verdict = parse_yes_no(completion.text or "", engine.prompts.labels)
        task.is_classification = bool(verdict)
        where = Where(task.instruction, sha256_text(request.prompt), completion.request_id)
        if verdict is not None:
            engine.funnel.answer(None)
            engine.ledger.record("classify", None, where)
            return
        # An unreadable verdict is not a reason to lose the task: it goes on as a generation
        # task, and the answer is kept as a classify row so it is not lost from the accounts.
        engine.funnel.answer(ANSWER_UNPARSEABLE)
        engine.ledger.record("classify", Drop("unreadable_verdict",
                                              f"no Yes/No verdict in the answer (finish_reason="
                                              f"{completion.finish_reason}); the task goes on "
                                              f"as a generation task"),
                             where, output=raw_answer(completion))

    def instance_request(self, task: Task) -> Request:
        """Output-first for classification tasks (balanced labels), input-first otherwise."""
        engine = self.engine
        if engine.answer_client is not None:
            prompt = engine.prompts.render("answer", instruction=task.instruction)
            params = engine.dispatch.params("answer", temperature=0.0, top_p=1.0)
            return engine.dispatch.request("instances", prompt, params, f"instances-{task.id}")
        labels = engine.prompts.labels
        name = "instances_output_first" if task.is_classification else "instances_input_first"
        prompt = engine.prompts.render(
            name, examples=self.instance_examples[bool(task.is_classification)],
            instruction=task.instruction) + "\n"
        params = engine.dispatch.params("instances", temperature=0.0, top_p=0.0,
                                        stop=[f"{labels.example} 6", f"{labels.task}:"])
        return engine.dispatch.request("instances", prompt, params, f"instances-{task.id}")

    def read_instances(self, task: Task, request: Request, completion: Completion) -> None:
        engine = self.engine
        if not engine.gate.answer_arrived(task, request, completion, "instance"):
            return
        if engine.answer_client is not None:
            answer = (completion.text or "").strip()
            parsed = [ParsedInstance("", answer)] if answer else []
            if parsed and completion.finish_reason == "length":
                parsed = [ParsedInstance("", answer, "truncated",
                                         "the answer was cut off at max_tokens")]
        else:
            parsed = parse_instances(completion.text or "", engine.prompts.labels,
                                     output_first=bool(task.is_classification),
                                     truncated=completion.finish_reason == "length")
        if not parsed:
            engine.ledger.unparseable(request, completion, "example", task.instruction)
            engine.gate.no_instances(task, "no example could be read from its instance answer")
            return
        engine.funnel.answer(None)
        engine.gate.keep_instances(task, parsed, completion)
