"""Confidence of an answer from its token log-probabilities (``--confidence``, issue 15).

Why: the Self-Instruct authors found only 58 % of generated outputs correct. A model that
writes junk, loops or drifts off its task usually does so with low token probabilities, so the
log-probs the endpoint already computes are a free first screen. With ``--confidence`` the
answer stages ask for them (`wire.request_body` translates the neutral ``logprobs`` marker
per API) and every answer that produces outputs gets these figures (`Figures`):

* ``confidence``: the geometric mean of the token probabilities, ``exp(mean log-prob)`` —
  the inverse of the answer's perplexity, a number in (0, 1] whatever the answer's length;
* ``mean_logprob`` and ``min_logprob``: natural-log figures as the endpoint sent them;
* ``low_share``: the share of tokens below ``LOW_TOKEN_PROB`` (p < 0.1, log-prob < ln 0.1 ≈
  −2.303): how much of the answer the model was guessing, even when the mean looks fine;
* ``tokens``: how many tokens the figures are of.

``[filters] min_confidence`` is a threshold on ``confidence`` (a probability, so the same
number means the same thing for a 5-token and a 500-token answer): an answer below it has
its instances dropped with reason ``low_confidence`` and the figures in the detail. The
figures are of the whole answer: for Self-Instruct's few-shot instance answers and for an
Alpaca answer of 20 items, every instance read from one answer shares its figures.

Rows carry the figures as flat provenance fields (`PROVENANCE_FIELDS`: ``confidence``,
``logprob_mean``, ``logprob_min``, ``logprob_low_share``, ``logprob_tokens``), flat so that a
version without ``--confidence`` simply lacks them and every reader sees plain columns.

An endpoint that sends no log-probs gives no figures: the answer is "unavailable", kept as it
is (rows carry ``confidence: null``), never dropped and never given a made-up number; the
gate warns once per run and `confidence_summary` reports the status for the manifest.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from selfinstruct.filters import Drop

LOW_TOKEN_PROB = 0.1  # a token below this probability counts as guessed (`low_share`)
LOW_TOKEN_LOGPROB = math.log(LOW_TOKEN_PROB)
# Stages whose answers are a row's outputs: direct answers, few-shot instances, Alpaca items.
LOGPROB_STAGES = frozenset({"instances", "answer", "alpaca"})
DROP_REASON = "low_confidence"
HISTOGRAM_BINS = 10  # equal-width bins of `confidence` over [0, 1]
# Figures field -> the row's provenance field.
PROVENANCE_FIELDS = {"confidence": "confidence", "mean_logprob": "logprob_mean",
                     "min_logprob": "logprob_min", "low_share": "logprob_low_share",
                     "tokens": "logprob_tokens"}
# The provenance of an answer without log-probs: every field null, never a made-up number.
UNAVAILABLE: dict[str, Any] = dict.fromkeys(PROVENANCE_FIELDS.values())
_DETAIL = re.compile(r"^confidence (\d+(?:\.\d+)?) < ")


@dataclass(frozen=True)
class Figures:
    """The confidence figures of one answer (see the module docstring); rounded to 4
    decimals so a row reads well and a resume writes the very same digits."""

    confidence: float
    mean_logprob: float
    min_logprob: float
    low_share: float
    tokens: int

    def provenance(self) -> dict[str, Any]:
        """The row's provenance fields (`PROVENANCE_FIELDS`)."""
        return {PROVENANCE_FIELDS[name]: value for name, value in asdict(self).items()}

    def describe(self) -> str:
        """The figures in words, for a drop's detail."""
        return (f"mean log-prob {self.mean_logprob:.4f}, min {self.min_logprob:.4f}, "
                f"{self.low_share:.0%} of {self.tokens} tokens below p={LOW_TOKEN_PROB:g}")


def figures(logprobs: Sequence[float] | None) -> Figures | None:
    """The figures of an answer's token log-probs; None when there are none to compute from
    (the endpoint sent no log-probs, or an empty list)."""
    if not logprobs:
        return None
    mean = math.fsum(logprobs) / len(logprobs)
    low = sum(1 for value in logprobs if value < LOW_TOKEN_LOGPROB)
    return Figures(
        confidence=round(math.exp(mean), 4),
        mean_logprob=round(mean, 4),
        min_logprob=round(min(logprobs), 4),
        low_share=round(low / len(logprobs), 4),
        tokens=len(logprobs),
    )


def wants_logprobs(enabled: bool, stage: str) -> dict[str, Any]:
    """The request parameter that asks a stage's answers for log-probs: ``{"logprobs":
    True}`` when ``--confidence`` is on and the stage produces outputs, else nothing (so a
    run without ``--confidence`` keeps its request keys, and its journal, unchanged)."""
    return {"logprobs": True} if enabled and stage in LOGPROB_STAGES else {}


def decide(found: Figures, min_confidence: float | None) -> Drop | None:
    """The drop of an answer below ``min_confidence``, or None (also when no threshold)."""
    if min_confidence is None or found.confidence >= min_confidence:
        return None
    return Drop(DROP_REASON, f"confidence {found.confidence:.4f} < min_confidence "
                             f"{min_confidence:g} ({found.describe()})")


class ConfidenceCheck:
    """The gate's check of one answer: its provenance fields, and its drop if too unsure.

    Holds the one piece of state the check needs: whether the run has already said that the
    endpoint sends no log-probs (said once, on stderr, however many answers lack them).
    """

    def __init__(self, min_confidence: float | None, model: str) -> None:
        self.min_confidence = min_confidence
        self.model = model
        self.warned = False

    def check(self, logprobs: Sequence[float] | None) -> tuple[Drop | None, dict[str, Any]]:
        """(drop or None, the row's provenance fields) for an answer's token log-probs."""
        found = figures(logprobs)
        if found is None:
            if not self.warned:
                self.warned = True
                print(f"selfinstruct: warning: --confidence: model '{self.model}' returned no "
                      f"token log-probabilities; confidence is unavailable for its answers: "
                      f"they are kept unscored (confidence: null) and min_confidence drops "
                      f"nothing", file=sys.stderr)
            return None, dict(UNAVAILABLE)
        return decide(found, self.min_confidence), found.provenance()


def confidence_summary(rows: Iterable[Mapping[str, Any]],
                       rejected: Iterable[Mapping[str, Any]] = (),
                       min_confidence: float | None = None) -> dict[str, Any]:
    """The manifest's and the report's view of confidence in a version.

    `rows`: train rows (``provenance.confidence`` is a number or None); `rejected`: the
    version's rejected rows (those with reason ``low_confidence`` carry the confidence in
    their detail). Counts are of rows (instances), like the rest of the manifest.

    ``status`` is ``"available"`` (every row scored), ``"unavailable"`` (no row scored: the
    endpoint sent no log-probs; loud in the manifest, never a made-up number) or
    ``"partial"``. ``bins`` is the histogram of confidence over [0, 1] in
    `HISTOGRAM_BINS` equal bins, kept and dropped rows apart, so a chart can show where the
    threshold cut.
    """
    kept: list[float] = []
    unscored = 0
    for row in rows:
        provenance = row.get("provenance") or {}
        found = provenance.get("confidence") if isinstance(provenance, Mapping) else None
        if isinstance(found, (int, float)) and not isinstance(found, bool):
            kept.append(float(found))
        else:
            unscored += 1
    dropped = [value for value in (_dropped_confidence(r) for r in rejected)
               if value is not None]
    scored = len(kept) + len(dropped)
    if scored == 0 and unscored:
        status = "unavailable"
    elif unscored:
        status = "partial"
    else:
        status = "available"
    return {
        "status": status,
        "measure": "geometric-mean token probability, exp(mean token log-prob)",
        "threshold": min_confidence,
        "rows_scored": len(kept),
        "rows_unscored": unscored,
        "dropped": len(dropped),
        "median": round(statistics.median(kept), 4) if kept else None,
        "bins": _histogram(kept, dropped),
    }


def _dropped_confidence(row: Mapping[str, Any]) -> float | None:
    if row.get("reason") != DROP_REASON:
        return None
    match = _DETAIL.match(str(row.get("detail") or ""))
    return float(match.group(1)) if match else None


def _histogram(kept: list[float], dropped: list[float]) -> list[dict[str, Any]]:
    width = 1 / HISTOGRAM_BINS
    bins = [{"low": round(i * width, 4), "high": round((i + 1) * width, 4), "kept": 0,
             "dropped": 0} for i in range(HISTOGRAM_BINS)]
    for values, side in ((kept, "kept"), (dropped, "dropped")):
        for value in values:
            bins[min(int(value * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)][side] += 1
    return bins
