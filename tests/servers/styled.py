"""What a non-clean answer style returns, and the wrappers every messy answer kind shares.

Why a separate type: the clean server returns plain text, but the messy and recorded styles
must also say what they *offered* (the instruction items embedded in the answer, for the
accounting hook), whether the answer was deliberately unreadable, and sometimes force a
``finish_reason`` or a ``content: null``. Stop sequences and ``max_tokens`` cut the text after
it is built, so every offered item remembers where its text ends: only items that survive the
cut whole are reported as offered (:meth:`StyledAnswer.offered_within`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Chat answers that open with a preamble, end with a closing remark, or sit in a code fence.
PREAMBLE_RATE = 0.35
CLOSING_RATE = 0.20
FENCE_RATE = 0.06

PREAMBLES: dict[str, tuple[str, ...]] = {
    "en": ("Sure! Here are more tasks:", "Certainly! Here you go:",
           "Here are some examples:", "Of course. Below is the continuation:"),
    "ja": ("もちろんです！以下をご覧ください：", "承知しました。続きは次のとおりです。",
           "はい、こちらが例です："),
}
CLOSINGS: dict[str, tuple[str, ...]] = {
    "en": ("Let me know if you need more tasks!", "I hope these are helpful.",
           "Let me know if you would like any changes."),
    "ja": ("他にも必要でしたらお知らせください。", "お役に立てば幸いです。"),
}


@dataclass
class StyledAnswer:
    """One answer of the messy or recorded style, before stop and max_tokens cut it.

    ``text`` None is a ``content: null`` answer. ``items`` holds ``(end, clean_text)`` for every
    instruction item embedded in the text, ``end`` being the offset just after the item's last
    character; None when they are unknown (a replayed real answer). ``finish_reason``
    overrides "stop" when the text was not cut. ``shapes`` names every deliberate deviation,
    so tests can count their frequencies.
    """

    kind: str
    lang: str
    text: str | None
    items: list[tuple[int, str]] | None = field(default_factory=list)
    finish_reason: str | None = None
    unreadable: bool = False
    shapes: list[str] = field(default_factory=list)

    def offered_within(self, length: int) -> list[str] | None:
        """Clean texts of the items that lie wholly inside the first ``length`` characters."""
        if self.items is None:
            return None
        return [text for end, text in self.items if end <= length]


def draw(rates: tuple[tuple[str, float], ...], rng: random.Random) -> str | None:
    """One name of ``(name, probability)`` pairs, or None with the remaining probability."""
    roll, acc = rng.random(), 0.0
    for name, rate in rates:
        acc += rate
        if roll < acc:
            return name
    return None


class Builder:
    """Accumulate the text of an answer piece by piece, remembering where items end."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.items: list[tuple[int, str]] = []

    def add(self, text: str, item: str | None = None) -> None:
        """Append ``text``; when it carries an instruction item, record the item's clean text."""
        self.parts.append(text)
        self.size += len(text)
        if item is not None:
            self.items.append((self.size, item))

    def text(self) -> str:
        return "".join(self.parts)


def decorate(body: Builder, lang: str, rng: random.Random, chat: bool,
             shapes: list[str]) -> Builder:
    """Wrap a chat answer in a preamble, a closing remark and/or a code fence.

    Completions continue the prompt, so they get none of these (a preamble would break the
    continuation the prompt primes). Item offsets move with the added prefix.
    """
    if not chat:
        return body
    prefix, suffix = "", ""
    if rng.random() < FENCE_RATE:
        prefix, suffix = rng.choice(("```\n", "```markdown\n", "```text\n")), "\n```"
        shapes.append("fence")
    if rng.random() < PREAMBLE_RATE:
        prefix = rng.choice(PREAMBLES[lang]) + "\n\n" + prefix
        shapes.append("preamble")
    if rng.random() < CLOSING_RATE:
        suffix += "\n\n" + rng.choice(CLOSINGS[lang])
        shapes.append("closing")
    out = Builder()
    out.add(prefix)
    for end, item in body.items:
        out.items.append((end + len(prefix), item))
    out.parts.append(body.text())
    out.size += body.size
    out.add(suffix)
    return out


# Whole answers with nothing readable in them: the pipeline must turn each into a rejected row.
NULL_RATE = 0.02
CONTENT_FILTER_RATE = 0.02
JUNK_RATE = 0.03

_JUNK_PROSE: dict[str, tuple[str, ...]] = {
    "en": ("Creating diverse tasks is a great way to evaluate a model, and there are many "
           "directions you could take depending on your goals and the domain you care about.",
           "I'm sorry, but I can't help with that request.",
           "Hmm, that is an interesting question which I will think about carefully."),
    "ja": ("多様なタスクを考えることは、モデルを評価するうえでとても大切な作業だと思います。",
           "申し訳ありませんが、そのご依頼にはお答えできません。",
           "興味深いご質問ですね。少し考えてみます。"),
}


def unreadable_answer(kind: str, lang: str, rng: random.Random, chat: bool,
                      junk: str) -> StyledAnswer | None:
    """With a small probability, an answer that carries nothing readable at all.

    ``content: null`` (chat only: completions say "" instead), ``finish_reason:
    "content_filter"`` with empty text, or a junk paragraph with no list and no fields (a
    completion starts it on a new line, so the continued item stays empty). ``junk`` is
    random syllables the caller made. Returns None for the (usual) readable case.
    """
    roll = rng.random()
    if roll < NULL_RATE:
        return StyledAnswer(kind, lang, None if chat else "", unreadable=True,
                            shapes=["content_null"])
    if roll < NULL_RATE + CONTENT_FILTER_RATE:
        return StyledAnswer(kind, lang, "", finish_reason="content_filter", unreadable=True,
                            shapes=["content_filter"])
    if roll < NULL_RATE + CONTENT_FILTER_RATE + JUNK_RATE:
        text = rng.choice((*_JUNK_PROSE[lang], junk))
        return StyledAnswer(kind, lang, text if chat else "\n" + text, unreadable=True,
                            shapes=["junk"])
    return None
