"""Alpaca (Taori et al. 2023): one request yields up to 20 (instruction, input, output) items.

Each prompt shows `alpaca_examples` seed tasks with their first instance; an answer's items go
through the same gate as Self-Instruct's instructions, and an accepted item's instance through
the same instance checks. No later stages: the items carry their instances, and no
classification label (`is_classification` stays None).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import ParsedInstance, parse_alpaca
from selfinstruct.personas import conditioned
from selfinstruct.prompts import sha256_text
from selfinstruct.recipes.base import NoLaterStages, prompt_instruction
from selfinstruct.recipes.self_instruct import few_shot_examples
from selfinstruct.window import InFlight

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine


class Alpaca(NoLaterStages):
    name: ClassVar[str] = "alpaca"
    templates: ClassVar[dict[str, dict[str, Any]]] = {
        "alpaca": {"num_tasks": 3, "tasks": [
            {"instruction": "Sort the numbers.", "input": "3, 1, 2", "output": "1, 2, 3"},
            {"instruction": "Name a fruit.", "input": "", "output": "Apple"}]},
    }
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {"alpaca": (3072, 1024)}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Unused here, but drawn as every run has drawn them since the first release: skipping
        # the draws would shift every later prompt, so a journal written before could not be
        # resumed (its request keys would no longer match).
        few_shot_examples(engine.rng, engine.seeds, engine.config)

    def generation_request(self, nonce: str) -> tuple[Request, int]:
        """The request, and the number its answer's first new item carries."""
        engine, cfg = self.engine, self.engine.config
        with_instances = [t for t in engine.seeds.tasks if t.instances]
        picked = engine.rng.sample(with_instances,
                                   min(cfg.alpaca_examples, len(with_instances)))
        shown = [{"instruction": prompt_instruction(t.instruction),
                  "input": t.instances[0].input, "output": t.instances[0].output}
                 for t in picked]
        prompt = conditioned(engine, engine.prompts.render("alpaca", num_tasks=cfg.alpaca_tasks,
                                                           tasks=shown), nonce)
        n = cfg.alpaca_tasks
        params = engine.dispatch.params("alpaca", temperature=1.0, top_p=1.0,
                                        stop=[f"\n{n}", f"{n}.", f"{n} ."])
        return engine.dispatch.request("alpaca", prompt, params, nonce), len(shown) + 1

    def read_generation(self, item: InFlight, completion: Completion) -> None:
        engine, request = self.engine, item.request
        items = engine.ledger.read(
            request, completion,
            lambda text: parse_alpaca(text, engine.prompts.labels, item.context,
                                      continuation=engine.config.api == "completions",
                                      truncated=completion.finish_reason == "length"),
            "instruction/input/output item")
        prompt_hash = sha256_text(request.prompt)
        persona = engine.persona_for(request.nonce)  # the one generation_request rendered
        for parsed in items:
            task = engine.gate.consider(parsed.instruction, parsed.reason, parsed.detail,
                                        prompt_hash, completion.request_id)
            if task is not None:
                if persona is not None:
                    task.extra["persona_id"] = persona.id
                task.instance_prompt_hash = prompt_hash
                task.instance_request_id = completion.request_id
                engine.gate.keep_instances(task, [ParsedInstance(parsed.input, parsed.output)],
                                          completion)
