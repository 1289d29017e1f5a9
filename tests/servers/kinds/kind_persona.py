"""Persona-conditioned generation prompts (``--personas``): instructions that show the persona.

Why: a persona-conditioned bootstrap or Alpaca prompt keeps its template's first line, so it
is still a ``bootstrap`` / ``alpaca`` prompt and has no kind of its own (``HEADERS`` is
empty). What changes is what a model writes: the instructions should be ones that person
would ask. The test server shows that by putting one word of the persona into every good
instruction it writes for such a prompt (`rewriter`), so a test can check that each row's
instruction came from a prompt conditioned on the persona its provenance names.

The word is the persona's longest ASCII word of at least 4 letters (en) or its longest run
of kanji or of katakana, at least 2 characters (ja), the first one on ties (`persona_word`).
Nothing here draws from the answer's RNG, so answers to prompts without a persona keep
their bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

HEADERS: tuple[tuple[str, str, str], ...] = ()

# The persona sentence of prompts/{en,ja}/bootstrap.j2 and alpaca.j2, up to the description.
_PERSONA_LINE = {
    "en": re.compile(r"that this person would ask an AI assistant: (.+)$", re.MULTILINE),
    "ja": re.compile(r"次の人物がAIアシスタントに頼みそうな\S*?にしてください：(.+)$",
                     re.MULTILINE),
}
_WORDS = {
    "en": re.compile(r"[A-Za-z]{4,}"),
    "ja": re.compile(r"[\u4e00-\u9fff]{2,}|[\u30a0-\u30ff]{2,}"),
}


def persona_description(prompt: str, lang: str) -> str | None:
    """The persona description a generation prompt is conditioned on, if any."""
    found = _PERSONA_LINE[lang].search(prompt) if lang in _PERSONA_LINE else None
    return found.group(1).strip() if found else None


def persona_word(description: str, lang: str) -> str | None:
    """The word of a persona that the server's instructions for it carry."""
    words = _WORDS[lang].findall(description)
    return max(words, key=len) if words else None  # max keeps the first of equal lengths


def rewriter(prompt: str, lang: str) -> Callable[[str], str] | None:
    """How good instructions for this prompt are rewritten: None without a persona."""
    description = persona_description(prompt, lang)
    word = persona_word(description, lang) if description else None
    if word is None:
        return None
    if lang == "ja":
        return lambda instruction: f"{word}の立場で、{instruction}"

    def english(instruction: str) -> str:
        body = instruction.rstrip(".?!")
        return f"{body}, with {word} in mind{instruction[len(body):]}"

    return english
