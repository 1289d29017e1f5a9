"""Magpie (Xu et al. 2024): instructions sampled from an aligned model's own chat template.

A generation request is only the text the model's chat template writes before a user's
message (selfinstruct.chat_template); the model continues it with what a user would write
and ends the user turn. That continuation is the instruction: it goes through the same gate
as every recipe's (filters, novelty). The "answer" stage then sends the whole templated
conversation (user = the instruction, then the assistant's opening) to the same model, also
as a raw completion, and its answer, cut at the end of the assistant turn, is the output.
No seeds are needed; given seeds only seed the novelty index.

The system message (prompts/<lang>/magpie_system.j2) carries a persona when the run has
--personas and, for Japanese, a hint that the conversation is in Japanese: Magpie steers what
users "write" only through the system prompt. A template without a system role (Gemma's)
gets none; an empty render keeps the template's default system message (pure Magpie).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import ParsedInstance
from selfinstruct.personas import Persona
from selfinstruct.prompts import sha256_text
from selfinstruct.records import Task
from selfinstruct.window import InFlight

if TYPE_CHECKING:
    from selfinstruct.chat_template import ChatTemplate
    from selfinstruct.engine.core import Engine

GENERATION = "magpie"
ANSWER = "answer"


class Magpie:
    name: ClassVar[str] = "magpie"
    stages: ClassVar[tuple[str, ...]] = (ANSWER,)
    templates: ClassVar[dict[str, dict[str, Any]]] = {
        "magpie_system": {"persona": {"id": "sample",
                                      "description": "A retired teacher who keeps bees."}},
    }
    # (remote, embedded). An instruction that has not ended after 512 tokens is a ramble;
    # the embedded 135M model's good ones end within ~60. Answers are cut off (and dropped)
    # at max_tokens, so theirs is generous; the embedded model's fits its 2,048-token context.
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {GENERATION: (512, 128),
                                                        ANSWER: (2048, 512)}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        template = engine.chat_template
        if template is None:
            raise ValueError("the magpie recipe needs the run's chat template "
                             "(selfinstruct.chat_template.load_chat_template)")
        self.template: ChatTemplate = template
        # The system message each accepted task's instruction was written under: its answer
        # is asked under the same one. Rebuilt by replay on resume, like the tasks.
        self._system: dict[str, str | None] = {}

    def _system_message(self, persona: Persona | None) -> str | None:
        text = self.engine.prompts.render("magpie_system", persona=persona).strip()
        return text or None

    # -- generation ------------------------------------------------------------------------

    def generation_request(self, nonce: str) -> tuple[Request, tuple[Persona | None,
                                                                      str | None]]:
        """The pre-query prefix (with the persona's system message), and what it used."""
        engine = self.engine
        persona = engine.persona_for(nonce) if self.template.has_system else None
        system = self._system_message(persona) if self.template.has_system else None
        params = engine.dispatch.params(GENERATION, temperature=1.0, top_p=1.0,
                                        stop=list(self.template.user_stops))
        prompt = self.template.pre_query(system)
        return engine.dispatch.request(GENERATION, prompt, params, nonce), (persona, system)

    def read_generation(self, item: InFlight, completion: Completion) -> None:
        engine, request = self.engine, item.request
        if engine.ledger.request_failed(request, completion):
            return
        instruction, ended = self.template.cut(completion.text or "")
        instruction = instruction.strip()
        if not instruction:
            engine.ledger.unparseable(request, completion, "instruction before the end of "
                                                           "the user turn")
            return
        engine.funnel.answer(None)
        reason, detail = None, ""
        if completion.finish_reason == "length" and not ended:
            reason = "truncated"
            detail = (f"the instruction never ended: no {self.template.user_stops[0]!r} "
                      f"within max_tokens ({request.params.get('max_tokens')})")
        task = engine.gate.consider(instruction, reason, detail, sha256_text(request.prompt),
                                    completion.request_id)
        if task is None:
            return
        persona, system = item.context
        if persona is not None:
            task.extra["persona_id"] = persona.id
        self._system[task.id] = system

    # -- the answer stage ------------------------------------------------------------------

    def stage_request(self, stage: str, task: Task) -> Request:
        if stage != ANSWER:
            raise ValueError(f"the magpie recipe has no {stage} stage")
        engine = self.engine
        prompt = self.template.answer_prompt(task.instruction, self._system.get(task.id))
        params = engine.dispatch.params(ANSWER, temperature=0.0, top_p=1.0,
                                        stop=list(self.template.assistant_stops))
        return engine.dispatch.request(ANSWER, prompt, params, f"{ANSWER}-{task.id}")

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        engine = self.engine
        if not engine.gate.answer_arrived(task, request, completion, "answer"):
            return
        answer, ended = self.template.cut(completion.text or "")
        answer = answer.strip()
        if not answer:
            engine.ledger.unparseable(request, completion, "answer", task.instruction)
            engine.gate.no_instances(task, "its answer was empty")
            return
        engine.funnel.answer(None)
        parsed = ParsedInstance("", answer)
        if completion.finish_reason == "length" and not ended:
            parsed = ParsedInstance("", answer, "truncated",
                                    "the answer was cut off at max_tokens")
        engine.gate.keep_instances(task, [parsed], completion=completion)
