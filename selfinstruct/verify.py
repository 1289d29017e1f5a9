"""Multi-model agreement (`--verify-model`, `[[verify]]`): other models answer the same tasks.

Errors differ between models, so an answer that another model reproduces on its own is more
likely to be right (issue 15). Each verifier gets two stages, run after the quality checks:

* ``verify_<i>``: the verifier answers the task's instruction for every kept instance's input
  (prompts/<lang>/verify_answer.j2; one request per task covers all its instances, because
  an instance is one input of the task and a verifier never sees our outputs), through its
  own client (`Engine.make_client`: own base URL, own API key environment variable);
* ``agree_<i>``: each answer is compared with the row's (`selfinstruct.agreement`): exactly
  for classification labels, numerically for bare numbers, and otherwise by the judge
  (prompts/<lang>/same_answer.j2, `--judge-model` or else the run's model), whose rationale is
  kept. One request per task for the pairs left to the judge; none when nothing is.

Each instance gets one entry per verifier in ``provenance.agreement``: the verifier's label,
kind ("model", or "same-model" for the generating model at another temperature: a weaker
check, since a model shares its own blind spots), agreed (True/False, None when nothing
readable came back), method (exact, numeric, judge, unanswered), rationale and the verifier's
answer. After the last verifier, ``[filters] min_agreement`` drops instances whose share of
agreeing verifiers is below it (reason ``models_disagree``, stage ``verify``); a verifier
with no readable answer counts as not agreeing, because the gate is a confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfinstruct.agreement import (
    JUDGE,
    UNANSWERED,
    Verdict,
    compare,
    parse_answers,
    parse_verdicts,
    share_agreeing,
    summarize,
)
from selfinstruct.engine.ledger import Where
from selfinstruct.filters import Drop
from selfinstruct.llm import Client, Completion, Request
from selfinstruct.parse_text import snippet
from selfinstruct.records import Instance, Task

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine
    from selfinstruct.engine.stages import Stage

_SAMPLE_INSTRUCTION = "Is the review positive or negative?"
TEMPLATES: dict[str, dict[str, Any]] = {
    "verify_answer": {"instruction": _SAMPLE_INSTRUCTION, "inputs": ["Great film!", ""],
                      "options": ["Negative", "Positive"]},
    "same_answer": {"instruction": _SAMPLE_INSTRUCTION,
                    "pairs": [{"input": "Great film!", "reference": "Positive",
                               "answer": "Positive."},
                              {"input": "", "reference": "Apple", "answer": "A banana"}]},
}
DROP_STAGE = "verify"
DROP_REASON = "models_disagree"
# The generating model as its own verifier must sample differently from its greedy answers.
SAME_MODEL_TEMPERATURE = 0.7
# max_tokens (remote, embedded): answers to up to 5 inputs; a one-line verdict per pair.
VERIFY_MAX_TOKENS = (1500, 512)
AGREE_MAX_TOKENS = (400, 200)
ANSWER_CHARS = 300  # how much of a verifier's answer a row keeps


def enabled(config: GenerateConfig) -> bool:
    return bool(config.verify)


@dataclass
class Verifier:
    """One verifier model, its client, and the answers it gave to the tasks of this run."""

    index: int  # 1-based: the stage names verify_<index>, agree_<index>
    label: str
    kind: str  # "model" or "same-model"
    model: str
    temperature: float
    client: Client
    answers: dict[str, list[str | None]] = field(default_factory=dict)  # task id -> per input
    request_ids: dict[str, str | None] = field(default_factory=dict)
    # Every agreement entry made, kept or later dropped: what `run_summary` counts.
    entries: list[dict[str, Any]] = field(default_factory=list)


def verifiers(engine: Engine) -> list[Verifier]:
    """The run's verifiers from `config.verify`, with their clients.

    A label is the model name, suffixed with the verifier's number when two verifiers share a
    model (e.g. two temperatures of one model).
    """
    config = engine.config
    specs = config.verify
    models = [spec["model"] for spec in specs]
    found = []
    for index, spec in enumerate(specs, start=1):
        model = spec["model"]
        same = model == config.model and spec.get("base_url") in (None, config.base_url)
        temperature = spec.get("temperature")
        if temperature is None:
            temperature = SAME_MODEL_TEMPERATURE if same else 0.0
        label = model if models.count(model) == 1 else f"{model}#{index}"
        client = engine.make_client(model, base_url=spec.get("base_url"),
                                    api_key_env=spec.get("api_key_env"))
        found.append(Verifier(index, label, "same-model" if same else "model", model,
                              float(temperature), client))
    return found


def stages(engine: Engine) -> list[Stage]:
    """verify_1, agree_1, verify_2, agree_2, …; the last agree stage applies min_agreement."""
    found = verifiers(engine)
    result: list[Stage] = []
    for verifier in found:
        last = verifier is found[-1]
        result += [VerifyStage(engine, verifier), AgreeStage(engine, verifier, last)]
    return result


def _where(task: Task) -> Where:
    """Rows and drops point at the instance answer the verdict is about."""
    return Where(task.instruction, task.instance_prompt_hash, task.instance_request_id)


class VerifyStage:
    """The verifier's own answers to a task's inputs (it never sees the dataset's outputs)."""

    def __init__(self, engine: Engine, verifier: Verifier) -> None:
        self.engine = engine
        self.verifier = verifier
        self.name = f"verify_{verifier.index}"
        self.client: Client | None = verifier.client
        engine.dispatch.max_tokens.setdefault(self.name, VERIFY_MAX_TOKENS)
        engine.dispatch.stage_models[self.name] = verifier.model  # priced as the verifier

    def request(self, task: Task) -> Request | None:
        if not task.instances:
            return None
        engine = self.engine
        labels = sorted({inst.output for inst in task.instances})
        options = labels if task.is_classification and len(labels) > 1 else []
        prompt = engine.prompts.render("verify_answer", instruction=task.instruction,
                                       inputs=[inst.input for inst in task.instances],
                                       options=options)
        params = engine.dispatch.params(self.name, temperature=self.verifier.temperature,
                                        top_p=1.0)
        return engine.dispatch.request(self.name, prompt, params, f"{self.name}-{task.id}")

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        ledger, count = self.engine.ledger, len(task.instances)
        self.verifier.request_ids[task.id] = completion.request_id
        if ledger.request_failed(request, completion, task.instruction):
            self.verifier.answers[task.id] = [None] * count
            return
        answers = parse_answers(completion.text or "", count)
        if all(answer is None for answer in answers):
            ledger.unparseable(request, completion, "numbered answer", task.instruction)
        else:
            self.engine.funnel.answer(None)
        self.verifier.answers[task.id] = answers


class AgreeStage:
    """Compare the verifier's answers with the rows'; the judge decides what rules cannot."""

    def __init__(self, engine: Engine, verifier: Verifier, last: bool) -> None:
        self.engine = engine
        self.verifier = verifier
        self.last = last
        self.name = f"agree_{verifier.index}"
        self.client: Client | None = engine.judge_client
        if engine.judge_client is not engine.client:  # --judge-model: priced as the judge
            engine.dispatch.stage_models[self.name] = engine.judge_client.model
        # (position, verifier's answer) of each task's instances whose pair went to the judge.
        self.judged: dict[str, list[tuple[int, str]]] = {}
        engine.dispatch.max_tokens.setdefault(self.name, AGREE_MAX_TOKENS)

    def request(self, task: Task) -> Request | None:
        """Decide what exact/numeric rules can now; ask the judge about the rest, if any.

        Called once per task, in task order, after every answer of ``verify_<i>`` was read
        (the engine runs stages one after the other), so deciding here is deterministic.
        """
        answers = self.verifier.answers.pop(task.id, None)
        if not task.instances or answers is None:
            return None
        pending = []
        for k, (inst, answer) in enumerate(zip(task.instances, answers, strict=True)):
            if answer is None:
                self._record(task, inst, Verdict(None, UNANSWERED,
                                                 "no readable answer from the verifier"), None)
                continue
            verdict = compare(inst.output, answer, classification=bool(task.is_classification))
            if verdict is None:
                pending.append((k, answer))
            else:
                self._record(task, inst, verdict, answer)
        if not pending:
            self._finish(task)
            return None
        self.judged[task.id] = pending
        engine = self.engine
        pairs = [{"input": task.instances[k].input, "reference": task.instances[k].output,
                  "answer": answer} for k, answer in pending]
        prompt = engine.prompts.render("same_answer", instruction=task.instruction, pairs=pairs)
        params = engine.dispatch.params(self.name, temperature=0.0, top_p=1.0)
        return engine.dispatch.request(self.name, prompt, params, f"{self.name}-{task.id}")

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        ledger = self.engine.ledger
        pending = self.judged.pop(task.id)
        verdicts: list[tuple[bool, str] | None] = [None] * len(pending)
        if not ledger.request_failed(request, completion, task.instruction):
            verdicts = parse_verdicts(completion.text or "", len(pending))
            if all(v is None for v in verdicts):
                ledger.unparseable(request, completion, "numbered SAME/DIFFERENT verdict",
                                   task.instruction)
            else:
                self.engine.funnel.answer(None)
        for (k, answer), found in zip(pending, verdicts, strict=True):
            verdict = (Verdict(found[0], JUDGE, found[1]) if found is not None
                       else Verdict(None, JUDGE, "no readable verdict from the judge"))
            self._record(task, task.instances[k], verdict, answer)
        self._finish(task)

    def _record(self, task: Task, inst: Instance, verdict: Verdict, answer: str | None) -> None:
        verifier = self.verifier
        entry = {
            "verifier": verifier.label, "kind": verifier.kind, "model": verifier.model,
            "agreed": verdict.agreed, "method": verdict.method, "rationale": verdict.rationale,
            "answer": None if answer is None else snippet(answer, ANSWER_CHARS),
            "request_id": verifier.request_ids.get(task.id),
        }
        inst.extra.setdefault("agreement", []).append(entry)
        verifier.entries.append(entry)

    def _finish(self, task: Task) -> None:
        """After the last verifier: drop the instances below ``[filters] min_agreement``."""
        threshold = self.engine.filter_settings.min_agreement
        if not self.last or threshold is None:
            return
        ledger, where = self.engine.ledger, _where(task)
        kept = []
        for inst in task.instances:
            entries = inst.extra.get("agreement", [])
            share = share_agreeing(entries)
            drop = None
            if share < threshold:
                said = "; ".join(f"{e['verifier']} {_said(e)}" for e in entries)
                drop = Drop(DROP_REASON, f"{share:.2f} of verifiers agree (min_agreement "
                                         f"{threshold:g}): {said}")
            if ledger.record(DROP_STAGE, drop, where, input=inst.input, output=inst.output):
                kept.append(inst)
        task.instances = kept


def _said(entry: dict[str, Any]) -> str:
    """How one verifier decided, for a drop's detail: "disagreed (judge: …)"."""
    outcome = {True: "agreed", False: "disagreed", None: "undecided"}[entry["agreed"]]
    return f"{outcome} ({entry['method']}: {snippet(entry['rationale'], 80)})"


def run_summary(engine: Engine) -> dict[str, Any]:
    """Agreement per verifier over every instance checked in this run, kept or dropped by
    min_agreement (the manifest's figure; `agreement.agreement_summary` counts kept rows)."""
    return summarize(entry for stage in engine.feature_stages if isinstance(stage, AgreeStage)
                     for entry in stage.verifier.entries)
