"""ROUGE-L between two texts, exactly as rouge_score computes it, and each language's tokens.

`language` is a registered language code (selfinstruct.languages: the profile names the
tokenizer and the default threshold) or "auto": the unicode tokenizer of
selfinstruct.tokenizers, any script, with Alpaca's threshold 0.7.

Exactness
---------
Only the LCS length L comes from rapidfuzz (bit-parallel LCS on strings in which every
distinct token is one code point); F is rouge_score's own float expression
``p = L/n; r = L/m; 2*p*r/(p+r)``, evaluated in the same order in Python or numpy (IEEE
operations, correctly rounded either way). Computing ``2L/(m+n)`` instead differs in the
last bit: (m, n, L) = (12, 8, 7) gives 0.7000000000000001 > 0.7 in rouge_score.
A candidate is "not novel" iff max F over the pool > threshold, as in Alpaca's loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
from rapidfuzz.distance import LCSseq

from selfinstruct import languages
from selfinstruct.tokenizers import Tokenizer, tokenize_auto

Language = str  # a registered language code (selfinstruct.languages) or AUTO
AUTO = "auto"
_AUTO_THRESHOLD = 0.7  # Alpaca's

# One code point per distinct token, skipping the surrogates (U+D800–U+DFFF) that a Python
# str may hold but rapidfuzz should never see: 1,112,064 distinct tokens per index.
_SURROGATES = 0x800
MAX_SYMBOLS = 0x110000 - _SURROGATES


def resolve(language: Language) -> tuple[Tokenizer, float]:
    """The tokenizer and default threshold of `language`; ValueError for an unknown one."""
    if language == AUTO:
        return tokenize_auto, _AUTO_THRESHOLD
    if language not in languages.codes():
        raise ValueError(f"language must be one of {sorted([*languages.codes(), AUTO])}, "
                         f"got {language!r}")
    profile = languages.get(language)
    return profile.tokenizer, profile.rouge_threshold


class _Thresholds(Mapping[str, float]):
    """The default threshold of every known language and "auto", read from the registry
    (so a language registered later is listed too)."""

    def __getitem__(self, language: str) -> float:
        try:
            return resolve(language)[1]
        except ValueError:
            raise KeyError(language) from None

    def __iter__(self) -> Iterator[str]:
        return iter((*languages.codes(), AUTO))

    def __len__(self) -> int:
        return len(languages.codes()) + 1


DEFAULT_THRESHOLDS: Mapping[str, float] = _Thresholds()


def tokenize(text: str, language: Language = AUTO) -> list[str]:
    """Tokens that ROUGE-L compares for ``language`` (see selfinstruct.tokenizers)."""
    return resolve(language)[0](text)


def default_threshold(language: Language) -> float:
    """The measured default ROUGE-L threshold for ``language``."""
    return resolve(language)[1]


def symbol_for(index: int) -> str:
    """The ``index``-th code point that is not a surrogate."""
    if index >= MAX_SYMBOLS:
        raise OverflowError(f"more than {MAX_SYMBOLS} distinct tokens in one index")
    return chr(index if index < 0xD800 else index + _SURROGATES)


def f_measure(lcs: int, m: int, n: int) -> float:
    """rouge_score's F for target length m > 0 and prediction length n > 0, same operations."""
    precision = lcs / n
    recall = lcs / m
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def f_measure_array(lcs: np.ndarray, m: int, n: np.ndarray) -> np.ndarray:
    """``f_measure`` for m > 0 and every L > 0, as numpy: the same IEEE operations, in order."""
    precision = lcs / n
    recall = lcs / m
    return 2 * precision * recall / (precision + recall)


def rouge_l(a: str, b: str, language: Language = AUTO) -> float:
    """ROUGE-L F-measure of ``b`` (prediction) against ``a`` (target).

    Equals ``RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure`` bit for bit with
    language="en" on any input, and with "auto" on ASCII input.
    """
    tokenizer = resolve(language)[0]
    ta, tb = tokenizer(a), tokenizer(b)
    if not ta or not tb:
        return 0.0
    symbols: dict[str, str] = {}
    for token in (*ta, *tb):
        if token not in symbols:
            symbols[token] = symbol_for(len(symbols))
    code_a = "".join(map(symbols.__getitem__, ta))
    lcs = LCSseq.similarity(code_a, "".join(map(symbols.__getitem__, tb)))
    return f_measure(lcs, len(ta), len(tb))
