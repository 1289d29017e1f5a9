"""Who answers, and which pair is kept: the pure decisions of --preference.

Response slots. `--responses K` answers per instruction. Without `--response-models` every
slot is the generating model, at K temperatures spread evenly over [0.2, 1.0] (K = 2: 0.2
and 1.0), labelled `same_model` on each pair: one model's answers at two temperatures are a
weaker contrast than two models' (AlpacaFarm ranks several models' outputs), but need no
second endpoint. With `--response-models M1,M2,…` slot k is model k mod M; a model that
fills several slots gets temperatures spread the same way, a model with one slot answers at
0.7.

Ranking (for K > 2 every pair is judged, in both orders; `selfinstruct.pairwise`). Each
response scores the comparisons it won, a tie counting half (a round robin, the Copeland
rule); unreadable or failed comparisons count for neither. The kept pair is chosen over
rejected where the judge decided their own comparison for the chosen one (both orders
agreeing) AND chosen scores higher than rejected; among such pairs the widest score gap, then
the first in slot order. So with K = 2 a decided comparison is the pair; a tie (the orders
disagree, the position bias the swap cancels) or a cycle among three gives no pair — a
contrast the judge could not make is not training signal. Two identical responses are a tie
without asking the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

SINGLE_TEMPERATURE = 0.7
_LOW, _HIGH = 0.2, 1.0


@dataclass(frozen=True)
class Slot:
    """One response per instruction: which model answers, and at which temperature."""

    model: str
    temperature: float


def spread(count: int) -> list[float]:
    """`count` temperatures evenly over [0.2, 1.0]; one slot gets 0.7."""
    if count == 1:
        return [SINGLE_TEMPERATURE]
    return [round(_LOW + (_HIGH - _LOW) * k / (count - 1), 3) for k in range(count)]


def slots(responses: int, models: list[str], generating_model: str) -> list[Slot]:
    """The response slots of a run (see the module docstring)."""
    names = [models[k % len(models)] for k in range(responses)] if models \
        else [generating_model] * responses
    temperatures = {name: iter(spread(names.count(name))) for name in dict.fromkeys(names)}
    return [Slot(name, next(temperatures[name])) for name in names]


def pairs(count: int) -> list[tuple[int, int]]:
    """Every pair of slots, (i, j) with i < j, in slot order: one comparison each."""
    return list(combinations(range(count), 2))


@dataclass(frozen=True)
class Ranking:
    """Scores per slot and the kept (chosen, rejected) slots, or None with the reason."""

    scores: dict[int, float]
    chosen: int | None
    rejected: int | None
    why: str  # for no pair: what the judge said; for a pair: its scores

    @property
    def paired(self) -> bool:
        return self.chosen is not None


def rank(usable: list[int], winners: Mapping[tuple[int, int], str]) -> Ranking:
    """Rank the `usable` slots from the decided comparisons.

    `winners[(i, j)]` (i < j) is "a" (slot i won), "b" (slot j won) or "tie"; a comparison
    that is missing was unreadable, failed or never asked.
    """
    scores = {slot: 0.0 for slot in usable}
    for (i, j), winner in winners.items():
        points = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}[winner]
        scores[i] += points[0]
        scores[j] += points[1]
    candidates = []
    for (i, j), winner in winners.items():
        if winner == "tie":
            continue
        won, lost = (i, j) if winner == "a" else (j, i)
        if scores[won] > scores[lost]:
            candidates.append((-(scores[won] - scores[lost]), min(i, j), max(i, j), won, lost))
    shown = ", ".join(f"response {slot}: {score:g}" for slot, score in scores.items())
    if not candidates:
        decided = sum(1 for w in winners.values() if w != "tie")
        why = (f"every comparison was a tie ({len(winners)} judged)" if not decided
               else f"no response beat another it outscored (a cycle); scores {shown}")
        return Ranking(scores, None, None, why)
    _, _, _, chosen, rejected = min(candidates)
    return Ranking(scores, chosen, rejected, f"scores {shown}")
