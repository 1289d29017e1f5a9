"""The tokens ROUGE-L compares: rouge_score's tokenizer, and one under which Japanese has tokens.

Language profiles (selfinstruct.languages) point at these functions; the similarity modules
score whatever tokens the profile's tokenizer gives. Nothing here knows about languages.

``tokenize_rouge_score``
    rouge_score's tokenizer, bit for bit, on any input: lowercase, then keep the runs of
    ``[a-z0-9]`` (``RougeScorer(["rougeL"], use_stemmer=False)``). Japanese text has no
    tokens under it, and "café" becomes "caf": kept for Alpaca compatibility (English).
``tokenize_unicode`` (and ``tokenize_auto``, the same tokens, faster on ASCII)
    NFKC, lowercase, then one token per CJK character (Han, Hiragana, Katakana with the
    prolonged sound mark ー and the iteration marks; CJK punctuation such as 、。・「」 is not
    a token) and one token per run of other letters, digits and combining marks in any
    script ("ＡＩ" → "ai", "café" → "café", Hindi words keep their vowel signs). On ASCII
    text this is exactly rouge_score's tokenizer (NFKC changes no ASCII character; the
    letters and digits of ASCII are ``[A-Za-z0-9]``; "_" separates in both), so ASCII text
    takes rouge_score's code path and English decisions do not depend on the choice. Every
    text of one index goes through the same function, so a pair mixing English and Japanese
    is scored consistently (shared words such as "ai" match, nothing else does). Scripts
    written without spaces other than Chinese and Japanese (Thai, Khmer, ...) get one token
    per space-separated run: a known limitation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache

Tokenizer = Callable[[str], list[str]]

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
    """Pattern of the unicode tokenizer, built on first use (scanning takes ~40 ms).

    Python's ``\\w`` lacks combining marks (Mn, Mc, Me), so without them Hindi or Thai words
    would break at every vowel sign; all marks live below U+30000 except the variation
    selectors supplement.
    """
    marks = _char_class(
        cp for cp in (*range(0x30000), *range(0xE0100, 0xE01F0))
        if unicodedata.category(chr(cp)).startswith("M")
    )
    return re.compile(f"[{_CJK}][{marks}]*|(?:[^\\W_{_CJK}]|[{marks}])+")


def tokenize_rouge_score(text: str) -> list[str]:
    """rouge_score's tokenizer: its ``sub(r"[^a-z0-9]+", " ")`` + split keeps these runs."""
    return _EN_TOKEN.findall(text.lower())


def tokenize_unicode(text: str) -> list[str]:
    """NFKC + lowercase; a token per CJK character, a token per run of other word characters."""
    return _unicode_token_re().findall(unicodedata.normalize("NFKC", text).lower())


def tokenize_auto(text: str) -> list[str]:
    """``tokenize_unicode``'s tokens; ASCII text takes rouge_score's path, 3x faster."""
    return tokenize_rouge_score(text) if text.isascii() else tokenize_unicode(text)
