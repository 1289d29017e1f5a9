"""What a run accumulates: accepted tasks and the funnel of candidates per stage."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


@dataclass
class Instance:
    """One (input, output) example of a task, with the judge's scores when a judge ran.

    Scores live here, on the instance they belong to, so dropping an instance drops its
    scores with it (they used to be a list kept parallel to `Task.instances`).
    """

    input: str
    output: str
    clarity: int | None = None
    correctness: int | None = None
    # What later checks learnt about this answer (confidence figures, verifier agreement):
    # merged into the row's provenance.
    extra: dict[str, Any] = field(default_factory=dict)
    # The whole conversation (role/content dicts, first user turn = instruction and input)
    # when the run makes multi-turn rows (--turns); the row's `messages` field.
    messages: list[dict[str, str]] | None = None


class Neighbours(Sequence[tuple[str, float]]):
    """A task's nearest pooled instructions with their ROUGE-L F, nearest first.

    Read like the list of (instruction, score) pairs it is made from, but stored as one tuple
    of texts (the pool's own strings, not copies) and one array of float64 scores: ~300
    bytes instead of ~940 for 10 neighbours, ~30 MB less for a 52K-instruction run, with
    exactly the same floats.
    """

    __slots__ = ("_scores", "_texts")

    def __init__(self, pairs: Iterable[tuple[str, float]] = ()) -> None:
        pairs = list(pairs)
        self._texts = tuple(text for text, _ in pairs)
        self._scores = array("d", [score for _, score in pairs])  # exact size, unlike a generator

    def __len__(self) -> int:
        return len(self._texts)

    @overload
    def __getitem__(self, index: int) -> tuple[str, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, float]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, float] | list[tuple[str, float]]:
        if isinstance(index, slice):
            return list(zip(self._texts[index], self._scores[index], strict=True))
        return self._texts[index], self._scores[index]

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self._texts, self._scores, strict=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"Neighbours({list(self)!r})"


@dataclass
class Task:
    """An accepted machine-generated instruction and what is learnt about it later."""

    id: str
    instruction: str
    round: int
    prompt_hash: str
    request_id: str | None
    most_similar: Sequence[tuple[str, float]]  # (instruction, ROUGE-L F), nearest first
    avg_similarity: float | None
    is_classification: bool | None = None
    instances: list[Instance] = field(default_factory=list)
    instance_prompt_hash: str | None = None
    instance_request_id: str | None = None
    # Recipe and feature provenance of the instruction (persona_id; evol-instruct's
    # parent_id, mutation, generation): merged into each row's provenance.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Stored compactly whatever sequence it was given (see `Neighbours`).
        if not isinstance(self.most_similar, Neighbours):
            self.most_similar = Neighbours(self.most_similar)


ANSWERS = "answers"
ANSWER_UNPARSEABLE = "unparseable"
ANSWER_FAILED = "failed"


@dataclass
class Funnel:
    """Candidates in, kept, and drops by reason, per stage (the manifest's funnel)."""

    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, stage: str, drop: str | None = None) -> None:
        entry = self.stages.setdefault(stage, {"in": 0, "kept": 0, "drops": {}})
        entry["in"] += 1
        if drop is None:
            entry["kept"] += 1
        else:
            entry["drops"][drop] = entry["drops"].get(drop, 0) + 1

    def answer(self, outcome: str | None) -> None:
        """Account for one model answer used by the run, whatever its stage.

        The "answers" line is the request-level check of the funnel: answers received =
        answers parsed + unparseable + failed requests. `outcome` is None for an answer that
        was read, else ANSWER_UNPARSEABLE or ANSWER_FAILED.
        """
        self.count(ANSWERS, outcome)

    def drops(self) -> dict[str, int]:
        """All drop reasons of candidates across stages, for the progress display.

        The "answers" line counts answers, not candidates: an unparseable answer also has its
        rejected row in the parse stage, so adding it here would count it twice.
        """
        totals: dict[str, int] = {}
        for stage, entry in self.stages.items():
            if stage == ANSWERS:
                continue
            for reason, n in entry["drops"].items():
                totals[reason] = totals.get(reason, 0) + n
        return totals

    def top_drops(self, n: int) -> str:
        """The `n` most frequent drop reasons as "reason count, …" (ties by name), or "none":
        what the progress line and the no-usable-row message show."""
        ranked = sorted(self.drops().items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return ", ".join(f"{reason} {count}" for reason, count in ranked) or "none"


# What each funnel stage counts, in pipeline order: the one order every renderer (progress
# table, dataset card, report chart, flow run report) shows. The "answers" line comes first
# because it is the request-level check (received = read + unparseable + failed), not a
# stage candidates pass through. Stages a future pipeline adds follow, in manifest order.
FUNNEL_STAGES: dict[str, str] = {
    ANSWERS: "answers", "request": "requests", "parse": "instructions",
    "filter": "instructions", "target": "instructions", "novelty": "instructions",
    "evol_check": "tasks", "classify": "tasks", "instance_filter": "instances",
    "instances": "tasks", "consistency": "instances", "judge": "instances",
    "verify": "instances", "responses": "responses", "preference": "tasks",
    "turns": "instances",
}


@dataclass(frozen=True)
class FunnelRow:
    """One funnel line as every renderer shows it, so they cannot disagree on a number.

    `seen` is the manifest's "in" (a keyword in Python); `drops` is sorted most frequent
    first, ties by reason, so the order is the same in a table, a card and a chart.
    """

    stage: str
    counts: str
    seen: int
    kept: int
    dropped: int
    drops: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        """The stage with what it counts; the answers line says it is not about candidates.

        A stage this version does not know (from a newer manifest) shows its name alone.
        """
        if self.stage == ANSWERS:
            return "answers (model answers, not candidates)"
        if self.stage not in FUNNEL_STAGES:
            return self.stage
        return f"{self.stage} ({self.counts})"


def funnel_rows(funnel: dict[str, Any]) -> list[FunnelRow]:
    """The manifest's funnel (`Funnel.stages`) as rows in the documented stage order."""
    names = [n for n in FUNNEL_STAGES if n in funnel] + [n for n in funnel
                                                        if n not in FUNNEL_STAGES]
    rows = []
    for name in names:
        entry = funnel[name]
        seen, kept = int(entry.get("in", 0)), int(entry.get("kept", 0))
        drops = sorted(((str(r), int(n)) for r, n in (entry.get("drops") or {}).items()),
                       key=lambda item: (-item[1], item[0]))
        rows.append(FunnelRow(name, FUNNEL_STAGES.get(name, "items"), seen, kept, seen - kept,
                              tuple(drops)))
    return rows
