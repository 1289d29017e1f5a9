"""Answer styles of the test server: ``clean``, ``messy`` and ``recorded``.

Why: the clean style answers exactly in the format our prompts ask for, which proves the
pipeline only against itself. ``messy`` writes what real chat and completion models write
(tests/servers/messy_lists.py, messy_fields.py, shared DESIGN.md §10); ``recorded`` replays
real answers of the embedded SmolLM2-135M model (tests/servers/recorded.py). Both keep the
clean style's determinism: an answer is a pure function of the same request material (endpoint,
prompt or messages, model, temperature, top_p, seed, choice index), so stop and max_tokens
still cut a prefix of one fixed text. See docs/test-server.md.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from typing import Any

from tests.servers import answers, hashing, kinds, messy_fields, messy_lists, prompt_kinds, recorded
from tests.servers.styled import StyledAnswer, unreadable_answer

_MESSY: dict[str, Callable[[str, str, random.Random, bool], StyledAnswer]] = {
    "bootstrap": messy_lists.bootstrap_answer,
    "alpaca": messy_lists.alpaca_answer,
    "classify": messy_fields.classify_answer,
    "instances_input_first": messy_fields.instances_answer,
    "instances_output_first": messy_fields.output_first_answer,
    "judge": messy_fields.judge_answer,
    "label": messy_fields.label_answer,
}


def messy_answer(prompt: str, chat: bool, material: dict[str, Any]) -> StyledAnswer:
    """The messy answer for one choice: first the rare unreadable outcomes, else the kind's.

    The RNG is the clean style's RNG for the same material (so the content underneath is
    drawn the same way) after one draw that picks the unreadable outcome.
    """
    kind, lang = prompt_kinds.detect_prompt(prompt)
    rng = hashing.rng_for({"style": "messy", **material})
    if kind in _MESSY:
        broken = unreadable_answer(kind, lang, rng, chat, answers.junk_text(rng))
        if broken is not None:
            return broken
        return _MESSY[kind](prompt, lang, rng, chat)
    plugin = kinds.messy_answerer(kind, material["model"])
    if plugin is not None:
        broken = unreadable_answer(kind, lang, rng, chat, answers.junk_text(rng))
        return broken if broken is not None else plugin(prompt, lang, rng, chat)
    clean = kinds.clean_answerer(kind, material["model"]) or answers.generic_answer
    return StyledAnswer(kind, lang, clean(prompt, lang, rng, chat))


def styled_answer(style: str, prompt: str, chat: bool, material: dict[str, Any]) -> StyledAnswer:
    """The answer of ``style`` ("messy" or "recorded") for one choice, before stop/max_tokens."""
    if style == "messy":
        return messy_answer(prompt, chat, material)
    return recorded.replay(prompt, chat, material)


# Item lines of the clean style's bootstrap and Alpaca answers (a completion's first line is
# the continued item): "9. item" or "**9.** item", and "12. Instruction: item".
_CLEAN_ITEM = {
    "bootstrap": re.compile(r"^(?:\*\*)?\d+\.(?:\*\*)? (.+)$", re.MULTILINE),
    "alpaca": re.compile(r"^\d+\. (?:Instruction|指示): (.+)$", re.MULTILINE),
}


def clean_offered(kind: str, text: str, chat: bool, finish_reason: str) -> list[str]:
    """The items a clean-style answer carries, read back from its fixed format.

    The clean generator writes items on lines of their own, so the answer's grammar is known
    exactly; when max_tokens cut the answer ("length"), an item on its last line may be partial
    and is left out.
    """
    pattern = _CLEAN_ITEM.get(kind)
    if pattern is None:
        return []
    lines = text.split("\n")
    items = [(match.end(), match.group(1)) for match in pattern.finditer(text)]
    if not chat and lines[0].strip():
        items.insert(0, (len(lines[0]), lines[0].strip()))
    if finish_reason == "length":
        items = [(end, item) for end, item in items if end < len(text)]
    return [item for _, item in items]


# Messy latency: most requests take a fraction of the base delay, ~1 % take 25-75 times it.
LATENCY_BASE_MS = 4.0
LATENCY_TAIL_RATE = 0.01


def messy_latency_ms(fingerprint: str, base_ms: float) -> float:
    """A heavy-tailed delay that is a pure function of the request body's fingerprint.

    With the default base of 4 ms (``latency_ms`` 0): mean ~5 ms, 99 % under 6 ms, and 1 %
    between 100 and 300 ms — the stragglers a real endpoint has, which a windowed client must
    not wait on. A ``latency_ms`` option scales the whole distribution.
    """
    digest = hashlib.sha256(f"latency:{fingerprint}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    base = base_ms or LATENCY_BASE_MS
    if rng.random() < LATENCY_TAIL_RATE:
        return base * rng.uniform(25.0, 75.0)
    return base * rng.uniform(0.1, 1.5)
