"""An exact, fast novelty index: "is this text a ROUGE-L near-duplicate of the pool?"

Self-Instruct and Alpaca keep a generated instruction only if its ROUGE-L F-measure against
every instruction already kept (seeds included) is at most the threshold. Their loop scores
every pair with rouge_score's pure-Python LCS (~78 µs a pair), ~32 CPU-hours for a 52K run;
this index makes the same decisions orders of magnitude faster (F itself: selfinstruct.rouge).

Pruning bounds (each never drops a pair whose F could exceed t)
----------------------------------------------------------------
Notation: candidate x with m tokens, pooled text y with n tokens, L = LCS(x, y), threshold
t, τ = t − 1e-9. In exact arithmetic F = 2PR/(P+R) = 2L/(m+n), and the float F is within a
few ulps (< 1e-15) of that, so F > t implies

    (B0)  2L > τ(m + n).

Every rule below discards a pair only when an upper bound U ≥ L has 2U ≤ τ(m+n), which
contradicts B0. The 1e-9 slack dwarfs the ~1e-16 relative rounding of evaluating the bounds
in floats, so rounding can only admit a pair to the exact check, never drop one.

1. Length window. L ≤ min(m, n), so B0 needs n > m·τ/(2−τ) and n < m·(2−τ)/τ.
2. Overlap bound. An LCS is a common sub-multiset, so L ≤ O = Σ_w min(c_x(w), c_y(w)).
   Renaming the k-th occurrence of token w to the element (w, k) turns each text into a set
   with |X ∩ Y| = O. With L ≤ n, B0 gives 2L > τ(m + L), i.e. O ≥ L > τm/(2−τ), and
   symmetrically O > τn/(2−τ). F > t ≥ 0 also needs L ≥ 1. So
   O ≥ α(m) := max(1, ⌊τm/(2−τ)⌋ + 1), and O ≥ α(n).
3. Prefix filter. Fix one total order of elements (rarest first) and sort each text's
   elements by it. Let e be the smallest common element. All O common elements are at or
   after e in both lists, so e is among the first m − O + 1 ≤ m − α(m) + 1 elements of X and
   the first n − α(n) + 1 of Y: a pair that can exceed t shares an element of the prefixes.
   The index goes one step further (the 2-prefix, proved in selfinstruct.prefixes): every
   text is listed under one more element, and a candidate with α(m) ≥ 2 must meet a pooled
   text in TWO lookups, which drops the texts that share one popular word and nothing else.
4. Positional bound. At the h-th common element, with r_x and r_y elements left in X and Y
   from it on, O ≤ h − 1 + min(r_x, r_y); at h = 1 and 2 this gives 2(1 + min(r_x, r_y)) >
   τ(m+n) for F > t, which also implies the length window (1). Only entries passing it are
   read: the postings are sorted so that they form key ranges (selfinstruct.prefixes).
Survivors get the exact L (one ``process.cdist`` call per candidate) and the exact F.

The order only has to be the same for the index and the lookup. Ranks come from element
frequencies at the last rebuild; an element first seen later is ranked rarer than every
known one (its rank never changes until the next rebuild); a candidate's unseen elements
rank rarer still (they can match nothing, and any placement of them is consistent). The
index is rebuilt with fresh frequencies whenever the pool has doubled, so rebuilding costs
O(1) amortised per text.

Measured with bench/rouge_dedup.py (one core of a shared 2-core machine, three runs,
generated instruction-like English texts of 16 tokens on average): at a 20K pool 8,000 to
12,000 candidates/s against ~1/s for Alpaca's loop (8,400x to 10,400x); the 52K-accepted
job 7.8 to 10.7 CPU-s; that index peaks at 34 MB (tracemalloc). Character-level
Japanese is harder for the filters (longer token strings, a few very common kana): on a
deliberately overlapping synthetic Japanese stream, ~900 candidates/s at a 20K pool.
Past 52K (bench/rouge_dedup.py --million, 2026-11-30, 2 cores, load average ~9): with one
shared prefix element the cost per candidate grew about linearly with the pool (~750
exact LCS per candidate at 200K, texts sharing one popular word): 700K accepted took 1,246
CPU-s, 1M extrapolated to ~40 min. The 2-prefix cuts that to ~105 exact LCS and reads
~2,000 sorted entries instead of ~11,000 list entries: at a 200K pool 2,450 candidates/s
(119x the exhaustive rule in the same run; 1.5x to 1.7x the one-element prefix on the same
candidates, identical verdicts); the job reached 200K accepted in 112 CPU-s and 300K in 191
(the one-element prefix: 200K in ~137). The whole 1M job ran with an earlier version
(tail merged at 1/16, 1.26x slower at 300K): 1,629,558 candidates in 1,166 CPU-s (19.4
min; ~150 s per 100K accepted at the end), peak RSS 940 MB, 327 sampled decisions
identical to the exhaustive rule, check() 1,336 candidates/s at the 1M pool; this version
projects to ~15 min: better than 40, not the 10 wanted.
Below 2^19 entries (~50K texts) the lists are read entry by entry as before (20K pool:
7,700 candidates/s in bench --quick). Provenance (most_similar, mean):
selfinstruct.neighbours.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct import neighbours
from selfinstruct.fileio import atomic_write
from selfinstruct.prefixes import PrefixPostings
from selfinstruct.rouge import AUTO, Language, f_measure_array, resolve, symbol_for

_SLACK = 1e-9
_SAVE_FORMAT = "selfinstruct-novelty-index"
_SAVE_VERSION = 1

# Element (token, k-th occurrence) as one int: symbol code point + k * _OCCURRENCE.
_OCCURRENCE = 0x110000
# Pool sizes below this are not worth a frequency rebuild.
_FIRST_REBUILD = 128


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a candidate is novel; if not, its most similar pooled text and that score.

    ``score`` is the maximum ROUGE-L F over the pool (ties: the earliest pooled text), the
    number Alpaca's loop compares with the threshold.
    """

    novel: bool
    neighbour: str | None = None
    score: float | None = None


def _min_overlap(length: int, tau: float) -> int:
    """α(length): the fewest shared elements a pair with F > t can have (bound 2)."""
    return max(1, int(tau * length / (2 - tau)) + 1)


class NoveltyIndex:
    """A growing pool of texts that answers "is this text a ROUGE-L near-duplicate?" exactly.

    ``is_novel(x)`` is False iff some pooled text y has ROUGE-L F(x, y) > threshold, the
    decision of Alpaca's exhaustive loop, found by looking at a few pooled texts instead of
    all (see the module docstring). In the pipeline, add the seeds first, then every
    accepted instruction. For the provenance of an accepted row call ``most_similar`` and
    ``mean_similarity`` before ``add``: Alpaca scores a row against the pool it joins.
    """

    def __init__(self, threshold: float | None = None, language: Language = AUTO) -> None:
        tokenizer, default = resolve(language)
        self._language = language
        if threshold is None:
            threshold = default
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self._threshold = float(threshold)
        self._tau = self._threshold - _SLACK
        self._tokenize = tokenizer
        self._texts: list[str] = []
        # Per pooled text: its tokens as one code point each, and its token count. numpy
        # arrays (doubled when full) so that survivors are gathered without a Python loop.
        self._codes = np.empty(1024, dtype=object)
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._symbols: dict[str, str] = {}
        self._ranks: dict[int, int] = {}  # element -> position in the global order
        self._next_new_rank = -1  # elements first seen after a rebuild rank rarer than all
        self._prefixes = PrefixPostings(self._tau)
        self._rebuild_at = _FIRST_REBUILD
        self._element_postings = neighbours.ElementPostings()  # for most_similar and mean
        self._postings_upto = 0
        self._query_cache: tuple[str, neighbours.Query] | None = None

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], threshold: float | None = None, language: Language = AUTO
    ) -> NoveltyIndex:
        """An index holding ``texts`` in order (no novelty check), e.g. seeds + accepted rows."""
        index = cls(threshold, language)
        for text in texts:
            index._append(text, index._tokenize(text))
        index._rebuild()
        return index

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NoveltyIndex:
        """Restore an index written by ``save`` (rebuilt from its texts: ~0.5 s for 52K)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != _SAVE_FORMAT or data.get("version") != _SAVE_VERSION:
            raise ValueError(f"{path}: not a {_SAVE_FORMAT} v{_SAVE_VERSION} file")
        return cls.from_texts(data["texts"], data["threshold"], data["language"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write threshold, language and the texts in insertion order (atomic replace)."""
        payload = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "language": self._language,
            "threshold": self._threshold,
            "texts": self._texts,
        }
        atomic_write(path, json.dumps(payload, ensure_ascii=False))

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def language(self) -> str:
        return self._language

    @property
    def texts(self) -> list[str]:
        """The pooled texts in insertion order (a copy)."""
        return list(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        """Pool ``text`` unconditionally (seeds, or rows restored from a journal)."""
        self._add(text, self._tokenize(text))

    def check(self, text: str) -> Verdict:
        """Novel or not; for a rejected text also its closest pooled text and max F."""
        return self._check(self._tokenize(text))

    def is_novel(self, text: str) -> bool:
        """False iff some pooled text has ROUGE-L F > threshold against ``text``."""
        return self.check(text).novel

    def add_if_novel(self, text: str) -> bool:
        """Pool ``text`` if it is novel; return whether it was."""
        tokens = self._tokenize(text)
        novel = self._check(tokens).novel
        if novel:
            self._add(text, tokens)
        return novel

    def most_similar(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` pooled texts with the highest ROUGE-L against ``text``, best first.

        Ties keep insertion order. Exactly the brute-force answer, scoring only the texts
        whose token overlap can reach the k-th score (the bound: selfinstruct.neighbours).
        """
        ids, scores = neighbours.top_k(self._query(text), k, self._codes, self._lengths)
        return [(self._texts[i], float(s)) for i, s in zip(ids, scores, strict=True)]

    def mean_similarity(self, text: str) -> float:
        """Mean ROUGE-L of ``text`` against the pool (``np.mean`` as in Alpaca); 0.0 if empty.

        Bit for bit the mean over every pooled text; texts sharing no token are not scored.
        """
        scores = neighbours.all_scores(self._query(text), self._codes, self._lengths)
        return float(np.mean(scores)) if scores.size else 0.0

    def mean_similarities(self, rows: list[tuple[str, int]]) -> list[float]:
        """``mean_similarity`` of each text against the first ``size`` pooled texts, batched.

        For rows accepted one after another, pass (text, len(index) when it was accepted):
        each result equals, bit for bit, ``mean_similarity(text)`` called at that moment, and
        the batch shares one LCS pass over the pool (several times cheaper per row).
        """
        encoded = []
        for text, size in rows:
            if not 0 <= size <= len(self._texts):
                raise ValueError(f"size {size} outside the pool (0..{len(self._texts)})")
            encoded.append((self._encode(self._tokenize(text), learn=False), size))
        return neighbours.prefix_means(encoded, self._codes, self._lengths)

    # Internals -----------------------------------------------------------------------------

    def _encode(self, tokens: list[str], *, learn: bool) -> str:
        """Tokens as one code point each; ``learn`` adds new tokens to the index's alphabet.

        Without ``learn`` (a lookup), unknown tokens get distinct code points past the
        alphabet, so they match nothing in the pool and the alphabet does not grow.
        """
        symbols = self._symbols
        encoded = [symbols.get(token) for token in tokens]
        if None in encoded:
            new = symbols if learn else {}
            for i, token in enumerate(tokens):
                if encoded[i] is None:
                    if token not in new:
                        new[token] = symbol_for(len(symbols) + (0 if learn else len(new)))
                    encoded[i] = new[token]
        return "".join(encoded)  # type: ignore[arg-type]

    @staticmethod
    def _elements(code: str) -> list[int]:
        """Each token occurrence as the element (token, k-th occurrence), as one int."""
        seen: dict[str, int] = {}
        elements = []
        for symbol in code:
            k = seen.get(symbol, 0)
            seen[symbol] = k + 1
            elements.append(ord(symbol) + k * _OCCURRENCE)
        return elements

    def _append(self, text: str, tokens: list[str]) -> int:
        """Store a text and its encoding; return its id. Indexing is separate."""
        item = len(self._texts)
        if item == self._lengths.size:
            self._codes = np.concatenate([self._codes, np.empty_like(self._codes)])
            self._lengths = np.concatenate([self._lengths, np.zeros_like(self._lengths)])
        self._texts.append(text)
        self._codes[item] = self._encode(tokens, learn=True)
        self._lengths[item] = len(tokens)
        return item

    def _prefix_length(self, length: int) -> int:
        """How many of a text's first elements the 2-prefix holds: length − α + min(2, α)."""
        alpha = _min_overlap(length, self._tau)
        return length - alpha + min(2, alpha)

    def _index(self, item: int) -> None:
        """List a pooled text under the elements of its 2-prefix (selfinstruct.prefixes)."""
        code = self._codes[item]
        n = len(code)
        if n == 0:
            return  # scores 0.0 against everything: never a reason to reject
        ranks = self._ranks
        elements = self._elements(code)
        for element in elements:
            if element not in ranks:
                ranks[element] = self._next_new_rank
                self._next_new_rank -= 1
        elements.sort(key=ranks.__getitem__)
        self._prefixes.add(item, n, elements[: self._prefix_length(n)])

    def _rebuild(self) -> None:
        """Re-rank elements by current frequency (rarest first) and re-index every text."""
        size = len(self._texts)
        counts = Counter(e for code in self._codes[:size] for e in self._elements(code))
        ordered = sorted(counts, key=lambda e: (counts[e], e))
        self._ranks = {e: r for r, e in enumerate(ordered)}
        self._next_new_rank = -1
        self._prefixes.clear()
        for item in range(size):
            self._index(item)
        self._rebuild_at = max(_FIRST_REBUILD, 2 * size)

    def _add(self, text: str, tokens: list[str]) -> None:
        item = self._append(text, tokens)
        if len(self._texts) >= self._rebuild_at:
            self._rebuild()
        else:
            self._index(item)

    def _check(self, tokens: list[str]) -> Verdict:
        m = len(tokens)
        if m == 0 or not self._texts:
            return Verdict(True)
        code = self._encode(tokens, learn=False)
        ranks = self._ranks
        known = [e for e in self._elements(code) if e in ranks]
        known.sort(key=ranks.__getitem__)
        # Unknown elements rank first (rarest); they match nothing, so only skip past them.
        first = m - len(known)
        probe = [(known[i - first], m - i) for i in range(first, self._prefix_length(m))]
        survivors = self._prefixes.candidates(
            m, probe, _min_overlap(m, self._tau) >= 2, self._lengths
        )
        if survivors.size == 0:
            return Verdict(True)
        # Survivors share an element with the candidate, so L >= 1 and F is well defined.
        lcs = process.cdist(
            [code], self._codes[survivors], scorer=LCSseq.similarity, dtype=np.int32, workers=1
        )[0]
        scores = f_measure_array(lcs, m, self._lengths[survivors])
        best = int(np.argmax(scores))
        if scores[best] > self._threshold:
            return Verdict(False, self._texts[survivors[best]], float(scores[best]))
        return Verdict(True)

    def _query(self, text: str) -> neighbours.Query:
        """``text`` against the pool as it is now; the last one is remembered, so that
        most_similar + mean_similarity on one row share the encoding and the overlaps.

        The element postings are built on first use and caught up here, so a pipeline that
        never asks for provenance does not pay for them.
        """
        size = len(self._texts)
        cached = self._query_cache
        if cached is not None and cached[0] == text and cached[1].size == size:
            return cached[1]
        for item in range(self._postings_upto, size):
            self._element_postings.add(item, self._elements(self._codes[item]))
        self._postings_upto = size
        code = self._encode(self._tokenize(text), learn=False)
        overlaps = self._element_postings.overlaps(self._elements(code), size)
        query = neighbours.Query(code, size, overlaps)
        self._query_cache = (text, query)
        return query
