"""Token log-probabilities of the server's answers: deterministic, and low where it is bad.

Why: ``--confidence`` (selfinstruct.confidence) must be tested against an endpoint whose
log-probs mean something, so the server's are a pure function of the answer (and its request
material) with one property a real model also has: the deliberately bad parts of an answer
are written with low token probabilities. Which parts are bad is read from the answer's own
lines, the same way for every style and kind:

* the whole answer when it is junk (the messy style's junk paragraphs, the ``garbage``
  fault): ``whole_bad``;
* a line with a refusal ("As an AI language model", "I'm sorry", 申し訳, AIとして, ...);
* a line that loops: one word 4-gram (Japanese: 4 characters) three times or more (a line
  repeating an earlier one is not bad in itself: the clean generator's outputs come from a
  small pool, so good answers repeat lines);
* a line in the other language: CJK characters in an English answer, or mostly English
  words in a Japanese one.

A fluent token costs −0.01 to −0.4 (``GOOD``), with ``DIP_RATE`` of them −0.7 to −1.6 (a
content word with alternatives, as in real answers); a bad token −2.5 to −8 (``BAD``). So a
clean answer's confidence, exp(mean log-prob), is about 0.7–0.8 and an answer whose bad
lines are more than a few percent of its tokens falls below 0.6.

Asked for as OpenAI does (chat ``logprobs: true``, completions ``logprobs: N``), returned as
OpenAI does: chat ``choices[i].logprobs.content`` = [{token, logprob, bytes, top_logprobs}],
completions ``choices[i].logprobs`` = {tokens, token_logprobs, top_logprobs, text_offset}.
A model whose name contains ``NO_LOGPROBS_MARK`` ignores the request (``logprobs: null``),
like an endpoint without log-prob support; one whose name contains ``REFUSES_LOGPROBS_MARK``
answers a request that asks for them with OpenAI's 400 for reasoning models ("Unsupported
parameter: 'logprobs' is not supported with this model.").
"""

from __future__ import annotations

import re
from typing import Any

from tests.servers.hashing import rng_for
from tests.servers.tokens import CJK_RANGES, token_pieces

NO_LOGPROBS_MARK = "no-logprobs"
REFUSES_LOGPROBS_MARK = "refuses-logprobs"
REFUSAL_MESSAGE = "Unsupported parameter: 'logprobs' is not supported with this model."
GOOD = (0.01, 0.4)
DIP = (0.7, 1.6)
DIP_RATE = 0.05
BAD = (2.5, 8.0)
_REFUSAL = re.compile(r"As an AI|I'm sorry|I cannot|I can't|AIとして|申し訳|お答えできません")
_CJK = re.compile(rf"[{CJK_RANGES}]")
_ASCII_WORD = re.compile(r"[A-Za-z]{2,}")
_LOOP_N = 4
_LOOP_TIMES = 3


def asks_logprobs(body: dict[str, Any], chat: bool) -> bool:
    """Whether the request asks for log-probs (chat ``true``, completions a number)."""
    value = body.get("logprobs")
    if chat:
        return value is True
    return isinstance(value, int) and not isinstance(value, bool)


def refuses_logprobs(body: dict[str, Any], chat: bool) -> bool:
    """Whether this request must get the 400 of a model that does not support log-probs."""
    return REFUSES_LOGPROBS_MARK in str(body.get("model", "")) and asks_logprobs(body, chat)


def wants_logprobs(body: dict[str, Any], chat: bool) -> bool:
    """Whether the request asked for log-probs and the model is one that gives them."""
    return NO_LOGPROBS_MARK not in str(body.get("model", "")) and asks_logprobs(body, chat)


def choice_logprobs(text: str, lang: str, chat: bool, material: Any,
                    whole_bad: bool) -> dict[str, Any]:
    """The ``logprobs`` object of one choice whose (already cut) text is ``text``."""
    pieces = token_pieces(text)
    values = token_logprobs(pieces, text, lang, material, whole_bad)
    if chat:
        return {"content": [{"token": piece, "logprob": value,
                             "bytes": list(piece.encode("utf-8")), "top_logprobs": []}
                            for piece, value in zip(pieces, values, strict=True)],
                "refusal": None}
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {"tokens": pieces, "token_logprobs": values,
            "top_logprobs": [{piece: value} for piece, value in zip(pieces, values, strict=True)],
            "text_offset": offsets}


def token_logprobs(pieces: list[str], text: str, lang: str, material: Any,
                   whole_bad: bool) -> list[float]:
    """One log-prob per token piece: `BAD` on bad lines (or everywhere if `whole_bad`)."""
    rng = rng_for({"logprobs": material})
    bad_lines = _bad_lines(text, lang)
    values: list[float] = []
    line = 0
    for piece in pieces:
        # A piece belongs to the line its token (after leading whitespace) is on.
        line += piece[:len(piece) - len(piece.lstrip())].count("\n")
        if whole_bad or line in bad_lines:
            low, high = BAD
        else:
            low, high = DIP if rng.random() < DIP_RATE else GOOD
        values.append(-round(rng.uniform(low, high), 6))
        line += piece.lstrip().count("\n")
    return values


def _bad_lines(text: str, lang: str) -> set[int]:
    """Numbers of the lines of `text` that are refusals, loops or in the other language."""
    return {number for number, line in enumerate(text.split("\n"))
            if _REFUSAL.search(line) or _loops(line, lang) or _other_language(line, lang)}


def _loops(line: str, lang: str) -> bool:
    # Words, or for Japanese the characters (it has no spaces between words).
    units = list(line.replace(" ", "")) if lang == "ja" else line.split()
    counts: dict[tuple[str, ...], int] = {}
    for start in range(len(units) - _LOOP_N + 1):
        gram = tuple(units[start:start + _LOOP_N])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= _LOOP_TIMES:
            return True
    return False


def _other_language(line: str, lang: str) -> bool:
    cjk = len(_CJK.findall(line))
    if lang == "en":
        return cjk >= 2
    words = len(_ASCII_WORD.findall(line))
    return words >= 3 and words > cjk
