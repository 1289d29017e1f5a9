"""How much of a text is written in a script: the evidence the language checks weigh."""

from __future__ import annotations

import re

# Hiragana, katakana (incl. half-width), kanji (CJK unified + extension A + compatibility),
# 々〆〇 and the prolonged sound mark; a regex, because this runs on every candidate and output.
_JAPANESE = re.compile(r"[\u3005-\u3007\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"
                       r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d]")
_LETTER = re.compile(r"[^\W\d_]")


def japanese_share(text: str) -> float:
    """Share of letters that are Japanese; 0.0 for a text without letters."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return 0.0
    return len(_JAPANESE.findall(text)) / letters
