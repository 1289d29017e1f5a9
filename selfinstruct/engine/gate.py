"""The gate: what a candidate instruction passes before it becomes a task, and the instance checks.

Order (DESIGN.md §2): parse → PII mask → heuristic filters → target → novelty → accepted.
Each check is a `Step`; `ledger.run_steps` counts and writes the rejected rows, so this
module only says what each check decides. Instances (few-shot examples, direct answers,
Alpaca's inline ones) go through `filter_instances` and are recorded the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from selfinstruct import languages
from selfinstruct.confidence import ConfidenceCheck
from selfinstruct.engine.ledger import Ledger, Step, Where, run_steps
from selfinstruct.filters import Drop, filter_instances, first_drop, instruction_filters, mask_pii
from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import ParsedInstance
from selfinstruct.prompts import sha256_text
from selfinstruct.records import Instance, Task
from selfinstruct.similarity import Language, NoveltyIndex

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine


class FilterStep:
    """Self-Instruct's heuristic instruction filters (length, blacklist, punctuation, …)."""

    stage = "filter"
    counts_kept = True

    def __init__(self, engine: Engine) -> None:
        self.filters = instruction_filters(engine.language, settings=engine.filter_settings)

    def check(self, text: str) -> Drop | None:
        return first_drop(self.filters, text)


class TargetStep:
    """Over the target: judged by nothing, the run already has the instructions it needs."""

    stage = "target"
    counts_kept = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, text: str) -> Drop | None:
        accepted = len(self.engine.tasks)
        if accepted < self.engine.accept_target:
            return None
        return Drop("over_target", f"the run already had {accepted} accepted instructions, "
                                   f"all it needed at this point")


class NoveltyStep:
    """The exact ROUGE-L check against the seeds and every accepted instruction."""

    stage = "novelty"
    counts_kept = True

    def __init__(self, index: NoveltyIndex) -> None:
        self.index = index

    def check(self, text: str) -> Drop | None:
        verdict = self.index.check(text)
        if verdict.novel:
            return None
        return Drop("too_similar", f"rouge_l={verdict.score:.4f} > {self.index.threshold} "
                                   f"vs {verdict.neighbour!r}")


class Gate:
    """Candidates in, tasks out (appended to `engine.tasks`); drops recorded in the ledger."""

    def __init__(self, engine: Engine, ledger: Ledger, seed_texts: list[str]) -> None:
        self.engine = engine
        self.ledger = ledger
        config = engine.config
        self.index = NoveltyIndex(threshold=config.similarity_threshold or 0.7,
                                  language=cast(Language, engine.language))
        for text in seed_texts:
            self.index.add(text)
        self.steps: list[Step] = [FilterStep(engine), TargetStep(engine),
                                  NoveltyStep(self.index)]
        # --confidence: each answer's token log-probs, checked before its instances' filters.
        self.confidence = (ConfidenceCheck(config.filters.min_confidence,
                                           config.model or "(default)")
                           if config.confidence else None)

    def consider(self, text: str, parse_reason: str | None, parse_detail: str,
                 prompt_hash: str, request_id: str | None) -> Task | None:
        """Run one candidate instruction through the gate; the new task if it passed."""
        engine = self.engine
        if parse_reason is not None:
            detail = parse_detail or f"the item could not be read ({parse_reason})"
            self.ledger.record("parse", Drop(parse_reason, detail),
                               Where(text, prompt_hash, request_id))
            return None
        self.ledger.record("parse", None, Where(text, prompt_hash, request_id))
        text = mask_pii(text, engine.filter_settings)  # a no-op unless pii = "mask"
        if languages.get(engine.language).capitalise_first and text[:1].islower():
            text = text[0].upper() + text[1:]  # Self-Instruct capitalises the first letter
        if not run_steps(self.ledger, self.steps, text, Where(text, prompt_hash, request_id)):
            return None
        neighbours = self.index.most_similar(text, 10)
        task = Task(
            id=f"task-{len(engine.tasks) + 1:06d}", instruction=text, round=engine.round,
            prompt_hash=prompt_hash, request_id=request_id, most_similar=neighbours,
            avg_similarity=self.index.mean_similarity(text) if len(self.index) else None,
        )
        self.index.add(text)
        engine.tasks.append(task)
        self._note_accepted(task)
        return task

    def _note_accepted(self, task: Task) -> None:
        journal = self.engine.journal
        earlier = journal.accepted.get(task.id)
        if earlier is not None and earlier != task.instruction:
            raise RuntimeError(
                f"{journal.path}: replay accepted {task.instruction!r} as {task.id}, but "
                f"the journal recorded {earlier!r}: the seeds, prompts or selfinstruct changed "
                f"since this run started — start a new run instead of resuming")
        journal.record_accepted(task.id, task.instruction)

    def keep_instances(self, task: Task, parsed: list[ParsedInstance],
                       completion: Completion | None = None) -> None:
        """Filter a task's instances; a task left with none is a rejected `instances` row.

        `completion`: the answer they were read from. With ``--confidence`` its token
        log-probs are checked first (selfinstruct.confidence): every kept instance carries
        the answer's figures, and an answer below ``min_confidence`` loses all its instances
        to ``low_confidence`` — the figures are of the whole answer, so no instance of it is
        more trustworthy than another.
        """
        engine = self.engine
        where = Where(task.instruction, task.instance_prompt_hash, task.instance_request_id)
        answer_drop: Drop | None = None
        extra: dict[str, Any] = {}
        if self.confidence is not None and completion is not None:
            answer_drop, extra = self.confidence.check(completion.logprobs)
        if answer_drop is None:
            kept, dropped = filter_instances(parsed, engine.config.max_instances,
                                             instruction=task.instruction,
                                             language=engine.language,
                                             settings=engine.filter_settings)
        else:
            kept, dropped = [], [(inst, answer_drop) for inst in parsed]
        for inst, drop in dropped:
            self.ledger.record("instance_filter", drop, where, input=inst.input,
                               output=inst.output)
        for _ in kept:
            self.ledger.record("instance_filter", None, where)
        task.instances = [Instance(inst.input, inst.output, extra=dict(extra)) for inst in kept]
        if kept:
            self.ledger.record("instances", None, where)
            return
        reasons = sorted({drop.reason for _, drop in dropped})
        self.ledger.record("instances", Drop("no_valid_instances",
                                             f"all {len(dropped)} examples were dropped "
                                             f"({', '.join(reasons)})"), where)

    def answer_arrived(self, task: Task, request: Request, completion: Completion,
                       what: str) -> bool:
        """Note which request made the task's instances (their rows name it); False, with the
        task's `instances` row written, when that request failed (`what` names it)."""
        task.instance_prompt_hash = sha256_text(request.prompt)
        task.instance_request_id = completion.request_id
        if self.ledger.request_failed(request, completion, task.instruction):
            self.no_instances(task, f"its {what} request failed")
            return False
        return True

    def no_instances(self, task: Task, why: str) -> None:
        """A task whose instance answer gave nothing to filter (failed or unreadable)."""
        where = Where(task.instruction, task.instance_prompt_hash, task.instance_request_id)
        self.ledger.record("instances", Drop("no_valid_instances", why), where)
