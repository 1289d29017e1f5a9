"""The step base: every candidate a stage sees is counted, and every drop leaves a row.

Datatrove's rule, made ours: a check returns nothing (keep) or a `Drop(reason, detail)`, and
only `Ledger.record` turns that into the funnel count and the rejected row, so the two can
never disagree and no stage writes either by hand. `Step` is the shape of one check of the
candidate gate; `run_steps` runs them in order and stops at the first drop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from selfinstruct.filters import Drop
from selfinstruct.llm import Completion, Request
from selfinstruct.prompts import sha256_text
from selfinstruct.records import ANSWER_UNPARSEABLE, Funnel

T = TypeVar("T")

# A parse-stage rejected row keeps this much of an unreadable answer (enough to see why).
RAW_ANSWER_CHARS = 2000
UNPARSEABLE_ANSWER = "unparseable_answer"


@dataclass(frozen=True)
class Where:
    """What a rejected row says about where its candidate came from."""

    instruction: str = ""
    prompt_hash: str | None = None
    request_id: str | None = None


def raw_answer(completion: Completion) -> str:
    """An unread answer's text for its rejected row, cut at `RAW_ANSWER_CHARS` (marked …)."""
    text = completion.text or ""
    return text if len(text) <= RAW_ANSWER_CHARS else text[:RAW_ANSWER_CHARS] + "…"


class Ledger:
    """The funnel and the rejected rows of one run, written only through `record`."""

    def __init__(self) -> None:
        self.funnel = Funnel()
        self.rejected: list[dict[str, Any]] = []

    def record(self, stage: str, drop: Drop | None, where: Where, *, input: str | None = None,
               output: str | None = None) -> bool:
        """Count one candidate of `stage`; a drop also becomes a rejected row. True if kept."""
        self.funnel.count(stage, None if drop is None else drop.reason)
        if drop is None:
            return True
        self.rejected.append({
            "stage": stage, "reason": drop.reason, "instruction": where.instruction,
            "input": input, "output": output, "detail": drop.detail,
            "prompt_hash": where.prompt_hash, "request_id": where.request_id,
        })
        return False

    def request_failed(self, request: Request, completion: Completion,
                       instruction: str = "") -> bool:
        """Record a request that failed after its retries as a rejected row; True if it did."""
        if completion.error is None:
            return False
        kind, _, message = completion.error.partition(":")
        detail = message.strip() or f"the {request.stage} request failed ({kind})"
        self.record("request", Drop(kind, f"{request.stage}: {detail}"),
                    Where(instruction, sha256_text(request.prompt), completion.request_id))
        return True

    def unparseable(self, request: Request, completion: Completion, what: str,
                    instruction: str = "") -> None:
        """Record an answer nothing could be read from: a parse-stage row with the raw text."""
        self.funnel.answer(ANSWER_UNPARSEABLE)
        text = completion.text or ""
        finish = completion.finish_reason
        why = "an empty answer" if not text.strip() else f"no {what} in the answer"
        detail = f"{request.stage}: {why} (finish_reason={finish}, {len(text)} chars)"
        self.record("parse", Drop(UNPARSEABLE_ANSWER, detail),
                    Where(instruction, sha256_text(request.prompt), completion.request_id),
                    output=raw_answer(completion))


    def read(self, request: Request, completion: Completion, parse: Callable[[str], list[T]],
             what: str) -> list[T]:
        """The items `parse` finds in an answer, with the answer accounted for: a failed
        request is a request row and an answer with no `what` in it an unparseable row (both
        give no items); any other answer counts as read."""
        if self.request_failed(request, completion):
            return []
        items = parse(completion.text or "")
        if not items:
            self.unparseable(request, completion, what)
            return []
        self.funnel.answer(None)
        return items


class Step(Protocol):
    """One check of the candidate gate: its funnel stage, and keep (None) or a Drop.

    `counts_kept` is False for a check that only ever reports drops (the target: a candidate
    under the target was not judged by it).
    """

    stage: str
    counts_kept: bool

    def check(self, text: str) -> Drop | None: ...


def run_steps(ledger: Ledger, steps: Sequence[Step], text: str, where: Where) -> bool:
    """Run `steps` in order on one candidate; the first drop ends it. True if all kept."""
    for step in steps:
        drop = step.check(text)
        counted = drop is not None or step.counts_kept
        if counted and not ledger.record(step.stage, drop, where):
            return False
    return True
