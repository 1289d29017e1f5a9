"""ROUGE-L similarity and an exact, fast novelty index for near-duplicate removal.

Self-Instruct and Alpaca keep a generated instruction only if its ROUGE-L F-measure against
every instruction already kept (seeds included) is at most 0.7. Their loop scores every pair
with rouge_score's pure-Python LCS (~78 µs a pair), which is ~32 CPU-hours for a 52K run.
This module makes the same decisions orders of magnitude faster, and adds a tokenizer under
which Japanese text has tokens at all.

Tokenizers (``language``)
-------------------------
``"en"``
    rouge_score's tokenizer, bit for bit, on any input: lowercase, then keep the runs of
    ``[a-z0-9]`` (``RougeScorer(["rougeL"], use_stemmer=False)``). Japanese text has no
    tokens under it, and "café" becomes "caf": kept for Alpaca compatibility.
``"ja"`` and ``"auto"``
    NFKC, lowercase, then one token per CJK character (Han, Hiragana, Katakana with the
    prolonged sound mark ー and the iteration marks; CJK punctuation such as 、。・「」 is not
    a token) and one token per run of other letters, digits and combining marks in any
    script ("ＡＩ" → "ai", "café" → "café", Hindi words keep their vowel signs). On ASCII
    text this is exactly rouge_score's tokenizer (NFKC changes no ASCII character; the
    letters and digits of ASCII are ``[A-Za-z0-9]``; "_" separates in both), so ASCII text
    takes rouge_score's code path and English decisions do not depend on the choice between
    "en" and "auto". Every text of one index goes through the same function, so a pair
    mixing English and Japanese is scored consistently (shared words such as "ai" match,
    nothing else does). Scripts written without spaces other than Chinese and Japanese
    (Thai, Khmer, ...) get one token per space-separated run: a known limitation.
The two non-"en" values differ only in their default threshold.

Thresholds
----------
``DEFAULT_THRESHOLDS``: "en" and "auto" keep Alpaca's 0.7. Character-level ROUGE-L on
Japanese rises on shared function material alone (次の…を…してください。), so Japanese has its
own default, measured on the 74 distinct hand-written tasks of seeds/ja_general.jsonl and on
40 hand-written near-duplicates of them (reworded endings, a synonym or a number swapped, a
clause rephrased); section 4 of bench/rouge_dedup.py prints these numbers:

- each seed's max ROUGE-L against the other seeds: median 0.43, 90th percentile 0.51,
  max 0.55 (two "explain the meaning of a word" tasks);
- the near-duplicate pairs: min 0.57, 10th percentile 0.76, median 0.84;
- seeds rejected when added in order / near-duplicates dropped: 0.50 → 4 / 40 of 40,
  0.55 → 1 / 40, 0.60 → 0 / 39, 0.65 → 0 / 39, 0.70 → 0 / 38, 0.80 → 0 / 27.
Every threshold from 0.57 to 0.67 rejects no seed and drops 39 of 40 near-duplicates; 0.65
sits near the top of that range, leaving distinct tasks the most room as the pool grows (the
pair it keeps rephrases a whole clause: at 0.567 it is barely above the closest seeds). For
comparison, the 176 English seeds of seeds/en_general.jsonl under "en": median 0.31, max
0.54, 0.16 below Alpaca's 0.7; 0.65 leaves the Japanese seeds 0.10.

Exactness
---------
Only the LCS length L comes from rapidfuzz (bit-parallel LCS on strings in which every
distinct token is one code point); F is rouge_score's own float expression
``p = L/n; r = L/m; 2*p*r/(p+r)``, evaluated in the same order in Python or numpy (IEEE
operations, correctly rounded either way). Computing ``2L/(m+n)`` instead differs in the
last bit: (m, n, L) = (12, 8, 7) gives 0.7000000000000001 > 0.7 in rouge_score.
A candidate is "not novel" iff max F over the pool > threshold, as in Alpaca's loop.

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
   the first n − α(n) + 1 of Y. The index lists each pooled text under the elements of its
   prefix; a candidate looks up only its own prefix. A pair that can exceed t always meets.
4. Positional (count) bound. If e is at 1-based position i in X and j in Y, every common
   element is at or after it: L ≤ O ≤ min(m − i + 1, n − j + 1) =: U(i, j). Keep a pooled
   text only if 2U > τ(m+n). Looking up the prefix in order, e is the first element met,
   and U only shrinks for later common elements, so "some lookup hit of y passes" is the
   same as "the hit at e passes": each hit is tested on its own, vectorised. At i = j = 1
   this is the length window (1), so (1) needs no separate pass.
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
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct.fileio import atomic_write

Language = Literal["en", "ja", "auto"]

DEFAULT_THRESHOLDS: dict[str, float] = {"en": 0.7, "ja": 0.65, "auto": 0.7}

_SLACK = 1e-9
_SAVE_FORMAT = "selfinstruct-novelty-index"
_SAVE_VERSION = 1

# One code point per distinct token, skipping the surrogates (U+D800–U+DFFF) that a Python
# str may hold but rapidfuzz should never see: 1,112,064 distinct tokens per index.
_SURROGATES = 0x800
_MAX_SYMBOLS = 0x110000 - _SURROGATES
# Element (token, k-th occurrence) as one int: symbol code point + k * _OCCURRENCE.
_OCCURRENCE = 0x110000
# A posting packs (pooled text id, elements left from this one to the end) into an int64.
_REST_BITS = 32
_REST_MASK = (1 << _REST_BITS) - 1
# Pool sizes below this are not worth a frequency rebuild.
_FIRST_REBUILD = 128

_EN_TOKEN = re.compile(r"[a-z0-9]+")

# Characters that are one token each: Han, kana and the marks that act as letters.
_CJK = (
    "\u3005-\u3007"  # 々 〆 〇
    "\u3021-\u3029\u3031-\u3035\u3038-\u303c"  # Hangzhou numerals, kana repeat marks, 〻 〼
    "\u3041-\u3096\u309d-\u309f"  # Hiragana, ゝ ゞ ゟ
    "\u30a1-\u30fa\u30fc-\u30ff"  # Katakana, ー ヽ ヾ ヿ (not the middle dot ・)
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han: extension A, unified, compatibility
    "\U0001b000-\U0001b16f"  # Kana supplement, extended-A, small kana extension
    "\U00020000-\U0003ffff"  # Han: extensions B and later (planes 2 and 3)
)


def _char_class(codepoints: Iterable[int]) -> str:
    """Regex character-class body for sorted code points, merged into ranges."""
    parts: list[str] = []
    start = prev = -2
    for cp in (*codepoints, -2):
        if cp == prev + 1:
            prev = cp
            continue
        if start >= 0:
            last = "-" + re.escape(chr(prev)) if prev > start else ""
            parts.append(re.escape(chr(start)) + last)
        start = prev = cp
    return "".join(parts)


@cache
def _unicode_token_re() -> re.Pattern[str]:
    """Pattern of the "ja"/"auto" tokenizer, built on first use (scanning takes ~40 ms).

    Python's ``\\w`` lacks combining marks (Mn, Mc, Me), so without them Hindi or Thai words
    would break at every vowel sign; all marks live below U+30000 except the variation
    selectors supplement.
    """
    marks = _char_class(
        cp for cp in (*range(0x30000), *range(0xE0100, 0xE01F0))
        if unicodedata.category(chr(cp)).startswith("M")
    )
    return re.compile(f"[{_CJK}][{marks}]*|(?:[^\\W_{_CJK}]|[{marks}])+")


def _tokenize_en(text: str) -> list[str]:
    """rouge_score's tokenizer: its ``sub(r"[^a-z0-9]+", " ")`` + split keeps these runs."""
    return _EN_TOKEN.findall(text.lower())


def _tokenize_unicode(text: str) -> list[str]:
    """NFKC + lowercase; a token per CJK character, a token per run of other word characters."""
    return _unicode_token_re().findall(unicodedata.normalize("NFKC", text).lower())


def _tokenize_auto(text: str) -> list[str]:
    # Same result as _tokenize_unicode on ASCII text (see the module docstring), 3x faster.
    return _tokenize_en(text) if text.isascii() else _tokenize_unicode(text)


_TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "en": _tokenize_en,
    "ja": _tokenize_auto,
    "auto": _tokenize_auto,
}


def _check_language(language: str) -> str:
    if language not in _TOKENIZERS:
        raise ValueError(f"language must be one of {sorted(_TOKENIZERS)}, got {language!r}")
    return language


def tokenize(text: str, language: Language = "auto") -> list[str]:
    """Tokens that ROUGE-L compares for ``language`` (see the module docstring)."""
    return _TOKENIZERS[_check_language(language)](text)


def default_threshold(language: Language) -> float:
    """The measured default ROUGE-L threshold for ``language``."""
    return DEFAULT_THRESHOLDS[_check_language(language)]


def _symbol(index: int) -> str:
    """The ``index``-th code point that is not a surrogate."""
    if index >= _MAX_SYMBOLS:
        raise OverflowError(f"more than {_MAX_SYMBOLS} distinct tokens in one index")
    return chr(index if index < 0xD800 else index + _SURROGATES)


def _f_measure(lcs: int, m: int, n: int) -> float:
    """rouge_score's F for target length m > 0 and prediction length n > 0, same operations."""
    precision = lcs / n
    recall = lcs / m
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _f_measure_array(lcs: np.ndarray, m: int, n: np.ndarray) -> np.ndarray:
    """``_f_measure`` for m > 0 and every L > 0, as numpy: the same IEEE operations, in order."""
    precision = lcs / n
    recall = lcs / m
    return 2 * precision * recall / (precision + recall)


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a non-empty array; 5x faster than np.unique on ~100 values."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def rouge_l(a: str, b: str, language: Language = "auto") -> float:
    """ROUGE-L F-measure of ``b`` (prediction) against ``a`` (target).

    Equals ``RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure`` bit for bit with
    language="en" on any input, and with "auto" on ASCII input.
    """
    tokenizer = _TOKENIZERS[_check_language(language)]
    ta, tb = tokenizer(a), tokenizer(b)
    if not ta or not tb:
        return 0.0
    symbols: dict[str, str] = {}
    for token in (*ta, *tb):
        if token not in symbols:
            symbols[token] = _symbol(len(symbols))
    code_a = "".join(map(symbols.__getitem__, ta))
    lcs = LCSseq.similarity(code_a, "".join(map(symbols.__getitem__, tb)))
    return _f_measure(lcs, len(ta), len(tb))


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

    def __init__(self, threshold: float | None = None, language: Language = "auto") -> None:
        self._language = _check_language(language)
        if threshold is None:
            threshold = DEFAULT_THRESHOLDS[language]
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self._threshold = float(threshold)
        self._tau = self._threshold - _SLACK
        self._tokenize = _TOKENIZERS[language]
        self._texts: list[str] = []
        # Per pooled text: its tokens as one code point each, and its token count. numpy
        # arrays (doubled when full) so that survivors are gathered without a Python loop.
        self._codes = np.empty(1024, dtype=object)
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._symbols: dict[str, str] = {}
        self._ranks: dict[int, int] = {}  # element -> position in the global order
        self._next_new_rank = -1  # elements first seen after a rebuild rank rarer than all
        self._postings: dict[int, array[int]] = {}
        self._rebuild_at = _FIRST_REBUILD
        self._scores_cache: tuple[str, int, np.ndarray] | None = None

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], threshold: float | None = None, language: Language = "auto"
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

        Ties keep insertion order. Scores every pooled text: one ``process.cdist`` call, shared
        with a following ``mean_similarity`` of the same text.
        """
        scores = self._all_scores(text)
        if k <= 0 or scores.size == 0:
            return []
        if k < scores.size:
            kth = np.partition(scores, scores.size - k)[scores.size - k]
            above = np.flatnonzero(scores > kth)
            ties = np.flatnonzero(scores == kth)[: k - above.size]
            top = np.concatenate([above, ties])
        else:
            top = np.arange(scores.size)
        top = top[np.lexsort((top, -scores[top]))]
        return [(self._texts[i], float(scores[i])) for i in top]

    def mean_similarity(self, text: str) -> float:
        """Mean ROUGE-L of ``text`` against the pool (``np.mean`` as in Alpaca); 0.0 if empty."""
        scores = self._all_scores(text)
        return float(np.mean(scores)) if scores.size else 0.0

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
                        new[token] = _symbol(len(symbols) + (0 if learn else len(new)))
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

    def _index(self, item: int) -> None:
        """List a pooled text under the elements of its prefix (bound 3)."""
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
        postings = self._postings
        for j in range(n - _min_overlap(n, self._tau) + 1):
            entry = (item << _REST_BITS) | (n - j)
            posting = postings.get(elements[j])
            if posting is None:
                postings[elements[j]] = array("q", (entry,))
            else:
                posting.append(entry)

    def _rebuild(self) -> None:
        """Re-rank elements by current frequency (rarest first) and re-index every text."""
        size = len(self._texts)
        counts = Counter(e for code in self._codes[:size] for e in self._elements(code))
        ordered = sorted(counts, key=lambda e: (counts[e], e))
        self._ranks = {e: r for r, e in enumerate(ordered)}
        self._next_new_rank = -1
        self._postings = {}
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
        prefix = m - _min_overlap(m, self._tau) + 1
        first = m - len(known)
        postings = self._postings
        hits: list[array[int]] = []
        rest_x: list[int] = []
        for i in range(first, prefix):
            posting = postings.get(known[i - first])
            if posting is not None:
                hits.append(posting)
                rest_x.append(m - i)
        if not hits:
            return Verdict(True)
        entries = np.concatenate(hits)
        items = entries >> _REST_BITS
        n = self._lengths[items]
        bound = np.minimum(np.repeat(rest_x, [len(h) for h in hits]), entries & _REST_MASK)
        passing = items[2 * bound > self._tau * (m + n)]  # bound 4
        if passing.size == 0:
            return Verdict(True)
        survivors = _unique(passing)
        # Survivors share an element with the candidate, so L >= 1 and F is well defined.
        lcs = process.cdist(
            [code], self._codes[survivors], scorer=LCSseq.similarity, dtype=np.int32, workers=1
        )[0]
        scores = _f_measure_array(lcs, m, self._lengths[survivors])
        best = int(np.argmax(scores))
        if scores[best] > self._threshold:
            return Verdict(False, self._texts[survivors[best]], float(scores[best]))
        return Verdict(True)

    def _all_scores(self, text: str) -> np.ndarray:
        """ROUGE-L of ``text`` against every pooled text, in insertion order.

        Remembers the last answer, so most_similar + mean_similarity on one row cost one pass.
        """
        size = len(self._texts)
        cached = self._scores_cache
        if cached is not None and cached[0] == text and cached[1] == size:
            return cached[2]
        tokens = self._tokenize(text)
        scores = np.zeros(size, dtype=np.float64)
        if tokens and size:
            lcs = process.cdist(
                [self._encode(tokens, learn=False)], self._codes[:size], scorer=LCSseq.similarity,
                dtype=np.int32, workers=1,
            )[0]
            hit = lcs > 0  # L = 0 (also every empty pooled text) scores 0.0 in rouge_score
            scores[hit] = _f_measure_array(lcs[hit], len(tokens), self._lengths[:size][hit])
        self._scores_cache = (text, size, scores)
        return scores
