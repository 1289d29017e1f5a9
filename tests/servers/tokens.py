"""The server's token rule, and how ``stop`` and ``max_tokens`` cut an answer.

Why a module of its own: the clean answers, the styled answers and the response builder all
cut and count text the same way, so the rule lives in one place (documented in
tests/servers/openai_server.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CJK_RANGES = (
    "\u3000-\u303f"  # CJK symbols and punctuation (、。「」)
    "\u3040-\u309f"  # hiragana
    "\u30a0-\u30ff"  # katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # half-width and full-width forms (？！：)
)
_TOKEN_RE = re.compile(rf"[{CJK_RANGES}]|[^\s{CJK_RANGES}]+")


def count_tokens(text: str) -> int:
    """Count tokens with the documented cheap rule (one per CJK char, one per other word).

    A real tokenizer is not needed: tests only need a stable, monotone measure so that
    ``max_tokens`` truncation and ``usage`` are predictable in both English and Japanese.
    """
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """Return the prefix of ``text`` holding exactly ``max_tokens`` tokens (original spacing)."""
    if max_tokens <= 0:
        return ""
    end = 0
    for i, match in enumerate(_TOKEN_RE.finditer(text)):
        if i == max_tokens:
            return text[:end]
        end = match.end()
    return text


def apply_stop_and_max_tokens(
    text: str, stop: Sequence[str] | None, max_tokens: int | None
) -> tuple[str, str]:
    """Cut ``text`` like the OpenAI API: at the first stop string (excluded), then at max_tokens.

    Returns ``(text, finish_reason)``; the reason is ``"length"`` only when ``max_tokens``
    removed something, which is what the pipeline's "drop truncated answers" filter keys on.
    """
    cut = len(text)
    for s in stop or ():
        if s:
            pos = text.find(s)
            if pos != -1 and pos < cut:
                cut = pos
    text = text[:cut]
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return truncate_tokens(text, max_tokens), "length"
    return text, "stop"


def token_pieces(text: str) -> list[str]:
    """The tokens of ``text`` as a real tokenizer reports them: each with the whitespace before
    it (``" world"``), the text's trailing whitespace on the last one, so joined they give the
    text back. As many as :func:`count_tokens` counts (a whitespace-only text has none), which
    keeps ``usage.completion_tokens`` equal to the number of log-probs an answer carries.
    """
    pieces: list[str] = []
    start = 0
    for match in _TOKEN_RE.finditer(text):
        pieces.append(text[start:match.end()])
        start = match.end()
    if pieces and start < len(text):
        pieces[-1] += text[start:]
    return pieces
