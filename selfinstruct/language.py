"""Which language a text is in, as far as the pipeline needs to know (English or Japanese)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

_JAPANESE_PREFIXES = ("CJK UNIFIED", "HIRAGANA", "KATAKANA", "CJK COMPATIBILITY IDEO")


def is_japanese_char(ch: str) -> bool:
    """Kanji, hiragana or katakana (the letters a Japanese sentence is written in)."""
    return unicodedata.name(ch, "").startswith(_JAPANESE_PREFIXES)


def japanese_share(text: str) -> float:
    """Share of letters that are Japanese; 0.0 for a text without letters."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(map(is_japanese_char, letters)) / len(letters)


def detect_language(texts: Iterable[str]) -> str:
    """'ja' when most texts are mainly Japanese, else 'en' (used to default --language)."""
    texts = list(texts)
    japanese = sum(1 for t in texts if japanese_share(t) > 0.3)
    return "ja" if texts and japanese * 2 > len(texts) else "en"
