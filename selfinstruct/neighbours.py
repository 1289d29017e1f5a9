"""Provenance of an accepted row: its k nearest pooled texts and its mean ROUGE-L, exactly.

Alpaca stores, on every kept instruction, the 10 pooled texts with the highest ROUGE-L F
(ties: earliest first) and the mean F over the whole pool (``np.mean``). Scoring every
pooled text costs one LCS per pair; here only the pooled texts that share a token with the
candidate are scored, and top-k scores only as many as its bound needs.

Overlap and the bound (notation of selfinstruct.novelty: candidate x with m tokens, pooled
text y with n tokens, L = LCS(x, y))
--------------------------------------------------------------------------------------
Every pooled text is listed under each of its elements (token, k-th occurrence), so one
``np.bincount`` over the candidate's postings gives O(y) = Σ_w min(c_x(w), c_y(w)) for every
y. O ≥ L (an LCS is a common sub-multiset), and O ≥ 1 iff L ≥ 1 (one shared token is a
common subsequence). So:

* O(y) = 0  ⇒  F(x, y) = 0.0 exactly (rouge_score's F for L = 0; also every empty text);
* O(y) ≥ 1  ⇒  F(x, y) ≤ 2L/(m+n) + 1e-15 ≤ 2·O/(m+n) + 1e-15 (the float F is within a few
  ulps of 2L/(m+n), see selfinstruct.rouge), and the float bound B(y) = 2·O/(m+n) + 1e-9
  exceeds it despite its own rounding (~1e-16 relative): F(x, y) < B(y).

Top-k. Score exactly the texts with the highest B first (a batch, doubled while needed).
Let s be the k-th best (score, earliest id) among the scored ones. If every unscored y with
O ≥ 1 has B(y) ≤ s, then F(y) < B(y) ≤ s: each ranks strictly after the k-th, whatever its
id, so the k best of the scored set are the k best of the pool in the brute-force order
(score descending, insertion order on ties). Texts with O = 0 score 0.0 and come last,
earliest first, exactly as in the brute-force order when fewer than k texts score above 0.

Mean. The brute-force array of F has 0.0 wherever O = 0, so scattering the exact F of the
O ≥ 1 texts into a zero array of the pool's size rebuilds it bit for bit and ``np.mean``
gives the same bits. It stays Θ(pool) per row: an exact mean needs every L with O ≥ 1.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct.rouge import f_measure_array

_SLACK = 1e-9
_FIRST_BATCH = 64  # texts scored exactly in the first top-k round (then doubled)


@dataclass(slots=True)
class Query:
    """One candidate against the pool at one size: its encoding and O(y) for every y."""

    code: str
    size: int
    overlaps: np.ndarray  # int64, one per pooled text in insertion order
    scores: np.ndarray | None = None  # every F, once mean_similarity needed them


class ElementPostings:
    """Every pooled text id listed under each of its elements: overlap counts in one pass."""

    def __init__(self) -> None:
        self._postings: dict[int, array[int]] = {}

    def add(self, item: int, elements: list[int]) -> None:
        postings = self._postings
        for element in elements:
            posting = postings.get(element)
            if posting is None:
                postings[element] = array("i", (item,))
            else:
                posting.append(item)

    def overlaps(self, elements: list[int], size: int) -> np.ndarray:
        """O(x, y) for every pooled text y < size (int64, insertion order)."""
        hits = [self._postings[e] for e in elements if e in self._postings]
        if not hits:
            return np.zeros(size, dtype=np.int64)
        ids = np.concatenate([np.frombuffer(h, dtype=np.int32) for h in hits])
        return np.bincount(ids, minlength=size)[:size]


def _exact(query: Query, ids: np.ndarray, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """ROUGE-L F of the candidate against the pooled texts ``ids`` (all with O ≥ 1)."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.float64)
    lcs = process.cdist(
        [query.code], codes[ids], scorer=LCSseq.similarity, dtype=np.int32, workers=1
    )[0]
    return f_measure_array(lcs, len(query.code), lengths[ids])


def all_scores(query: Query, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """F against every pooled text in insertion order, equal bit for bit to scoring each."""
    if query.scores is None:
        scores = np.zeros(query.size, dtype=np.float64)
        shared = np.flatnonzero(query.overlaps)
        scores[shared] = _exact(query, shared, codes, lengths)
        query.scores = scores
    return query.scores


def top_k(
    query: Query, k: int, codes: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and scores of the k best pooled texts, best first, ties earliest first (see above)."""
    k = min(k, query.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if query.scores is not None:
        ids, scores = np.arange(query.size), query.scores
    else:
        ids, scores = _pruned(query, k, codes, lengths)
    best = np.lexsort((ids, -scores))[:k]
    ids, scores = ids[best], scores[best]
    if ids.size < k:  # fewer than k texts share a token: the rest score 0.0, earliest first
        zero = np.flatnonzero(query.overlaps == 0)[: k - ids.size]
        ids = np.concatenate([ids, zero])
        scores = np.concatenate([scores, np.zeros(zero.size)])
    return ids, scores


def _pruned(
    query: Query, k: int, codes: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A set of scored texts with O ≥ 1 that holds the k best (the bound argument above)."""
    shared = np.flatnonzero(query.overlaps)
    m = len(query.code)
    bound = 2 * query.overlaps[shared] / (m + lengths[shared]) + _SLACK
    batch = max(_FIRST_BATCH, 4 * k)
    while True:
        if batch >= shared.size:
            return shared, _exact(query, shared, codes, lengths)
        cut = shared.size - batch
        order = np.argpartition(bound, cut)
        chosen, rest = order[cut:], order[:cut]
        ids = shared[chosen]
        scores = _exact(query, ids, codes, lengths)
        kth = np.sort(scores)[-k] if ids.size >= k else -1.0
        if bound[rest].max() <= kth:
            return ids, scores
        batch *= 2


def prefix_means(
    queries: list[tuple[str, int]], codes: np.ndarray, lengths: np.ndarray
) -> list[float]:
    """``np.mean`` of each candidate's F against the first ``size`` pooled texts.

    One ``cdist`` call for all candidates: rapidfuzz converts every pooled text once per call,
    which dominates a single-candidate call (~90 ns a pair against ~16 ns a pair for 8
    candidates, measured at a 300K pool), so a batch of rows costs a fraction of one call
    each. Each row's array holds the same F values in the same places as ``all_scores`` at
    that size (0.0 where L = 0), so its mean has the same bits. Memory: one int32 and one
    float64 per (candidate, pooled text).
    """
    size = max((s for _, s in queries), default=0)
    if size == 0:
        return [0.0] * len(queries)
    lcs = process.cdist(
        [code for code, _ in queries], codes[:size], scorer=LCSseq.similarity, dtype=np.int32,
        workers=1,
    )
    means = []
    for row, (code, prefix) in zip(lcs, queries, strict=True):
        scores = np.zeros(prefix, dtype=np.float64)
        hit = np.flatnonzero(row[:prefix])
        if code and hit.size:
            scores[hit] = f_measure_array(row[hit], len(code), lengths[hit])
        means.append(float(np.mean(scores)) if prefix else 0.0)
    return means
