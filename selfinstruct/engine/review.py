"""LLM quality checks on a batch of tasks: label consistency, then the judge.

Both cost requests, so both are opt-in ([filters] consistency / --judge-model). Their answers
go through the dispatcher like every other (journaled: a resumed run does not pay twice), and
their verdicts through the ledger (a drop is a rejected row of stage "consistency"/"judge").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfinstruct.engine.ledger import Where
from selfinstruct.filters import Drop
from selfinstruct.llm import Completion, Request
from selfinstruct.quality import Item, check_label_consistency, judge
from selfinstruct.records import ANSWER_UNPARSEABLE, Task

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine

UNREADABLE_JUDGEMENT = "unparseable_judgement"


def review(engine: Engine, tasks: list[Task]) -> None:
    """Run the enabled checks on `tasks`, dropping the instances they reject."""
    settings = engine.filter_settings
    dispatch = engine.dispatch
    if settings.consistency:
        checked = [t for t in tasks if t.is_classification and t.instances]
        answers: list[Completion] = []

        def complete_labels(requests: list[Request]) -> list[Completion]:
            return _kept(answers, dispatch.complete(requests))

        verdicts = check_label_consistency(
            _items(checked), prompts=engine.prompts, make_request=dispatch.request,
            complete=complete_labels, settings=settings)
        for answer in answers:  # a label answer is read as it is, whatever it says
            if answer.error is None:
                engine.funnel.answer(None)
        _apply_verdicts(engine, "consistency", checked, verdicts)
    if settings.judge_model is not None:
        judged = [t for t in tasks if t.instances]
        answers = []

        def complete_judgements(requests: list[Request]) -> list[Completion]:
            return _kept(answers, dispatch.complete(requests, client=engine.judge_client))

        results = judge(
            _items(judged), prompts=engine.prompts, make_request=dispatch.request,
            complete=complete_judgements, settings=settings)
        for answer, result in zip(answers, results, strict=True):
            if answer.error is None:
                unreadable = (result.drop is not None
                              and result.drop.reason == UNREADABLE_JUDGEMENT)
                engine.funnel.answer(ANSWER_UNPARSEABLE if unreadable else None)
        scores = iter(results)
        for task in judged:
            for inst in task.instances:
                result = next(scores)
                inst.clarity, inst.correctness = result.clarity, result.correctness
        _apply_verdicts(engine, "judge", judged, [r.drop for r in results])


def _apply_verdicts(engine: Engine, stage: str, tasks: list[Task],
                    verdicts: list[Drop | None]) -> None:
    """Keep the instances whose verdict is None; the ledger records the others."""
    verdict = iter(verdicts)
    for task in tasks:
        where = Where(task.instruction, task.instance_prompt_hash, task.instance_request_id)
        task.instances = [inst for inst in task.instances
                          if engine.ledger.record(stage, next(verdict), where,
                                                  input=inst.input, output=inst.output)]


def _kept(store: list[Completion], answers: list[Completion]) -> list[Completion]:
    """Keep a copy of a quality stage's answers for the request-level accounting."""
    store.extend(answers)
    return answers


def _items(tasks: list[Task]) -> list[Item]:
    """The instances of `tasks` as review items, keyed by their row id (stable nonces)."""
    return [Item(f"{t.id}-{k}", t.instruction, inst.input, inst.output)
            for t in tasks for k, inst in enumerate(t.instances)]
