"""Test-server answers to the response prompt of --preference (prompts/*/respond.j2).

Why: preference pairs need responses that differ, and differ in quality, so the pairwise judge
(kind_pairwise.py: worthless = refusal, generic reply or a copy of the instruction; else longer
and more on-topic is better) has something to rank. The server's answer is a pure function of
the request material, which includes the temperature, model and seed, so the K responses of
one prompt (other slots: other temperatures or models, other nonces) are independent draws.

Clean: a refusal (`REFUSAL_RATE`), the instruction copied back (`COPY_RATE`), else an on-topic
answer of 1 to 5 short sentences, half of them restating the request — longer and more
on-topic answers score higher with the judge, so two good answers usually have a winner.
About 30 % of K = 2 pairs are still ties: the judge's 25 % position bias (which the swap turns
into a tie) and answers of equal worth. Messy, on top: chat preambles and closing remarks
(styled.decorate), the whole prompt copied back including its first line
(`PROMPT_COPY_RATE`), a repetition loop (`LOOP_RATE`), and the unreadable outcomes every messy
kind has (content null, content_filter, junk), which the pipeline must turn into rows.
"""

from __future__ import annotations

import random

from tests.servers.instances import find_topic
from tests.servers.styled import Builder, StyledAnswer, decorate, draw

HEADERS: tuple[tuple[str, str, str], ...] = (
    ("respond", "en",
     "Respond to the request below as a helpful assistant. Reply with the answer only."),
    ("respond", "ja",
     "次の依頼に、役に立つアシスタントとして応答してください。回答だけを書いてください。"),
)
REFUSAL_RATE = 0.12
COPY_RATE = 0.08
PROMPT_COPY_RATE = 0.04
LOOP_RATE = 0.04

REFUSALS = {"en": "I'm sorry, but I can't help with that request.",
            "ja": "申し訳ありませんが、その依頼にはお答えできません。"}
# Short sentences, so answers stay under kind_pairwise.FULL_LENGTH (600 characters) and two
# good answers of different lengths score differently (equal scores are ties).
SENTENCES = {
    "en": ("Start with the main idea of {topic}.",
           "Be clear and specific about {topic}.",
           "Cover the essentials of {topic} first.",
           "Add one concrete example.",
           "End with a short summary of {topic}."),
    "ja": ("{topic}の要点から説明します。",
           "{topic}について具体的に述べます。",
           "{topic}の基本を先に押さえます。",
           "例を一つ挙げます。",
           "最後に{topic}を短くまとめます。"),
}
# Half of the good answers restate the request, which makes them more relevant to the judge.
RESTATE = {"en": "To {request}:", "ja": "「{request}」について："}


def request_of(text: str) -> str:
    """The request (instruction, then input) below the template's first line."""
    _, _, rest = text.lstrip().partition("\n")
    return rest.strip()


def _good(request: str, lang: str, rng: random.Random) -> str:
    first_line = request.splitlines()[0] if request else ""
    topic = find_topic(first_line, lang, rng)
    picked = rng.sample(SENTENCES[lang], rng.randint(1, len(SENTENCES[lang])))
    parts = [s.format(topic=topic) for s in picked]
    if rng.random() < 0.5:
        restated = first_line.rstrip(".。") if lang == "ja" else \
            first_line[:1].lower() + first_line[1:].rstrip(".")
        parts.insert(0, RESTATE[lang].format(request=restated))
    return ("" if lang == "ja" else " ").join(parts)


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """A refusal, the instruction copied back, or an on-topic answer (see the docstring)."""
    request = request_of(text)
    roll = rng.random()
    if roll < REFUSAL_RATE:
        answer = REFUSALS[lang]
    elif roll < REFUSAL_RATE + COPY_RATE:
        answer = request.splitlines()[0] if request else ""
    else:
        answer = _good(request, lang, rng)
    return answer if chat else "\n" + answer


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean answer, or a copied prompt or a loop; chat answers get wrappers."""
    shapes: list[str] = []
    defect = draw((("prompt_copy", PROMPT_COPY_RATE), ("loop", LOOP_RATE)), rng)
    answer = clean(kind, text, lang, rng, True)
    if defect == "prompt_copy":
        answer = text.strip()
    elif defect == "loop":
        answer = " ".join([answer] * 8)
    if defect is not None:
        shapes.append(f"respond:{defect}")
    body = Builder()
    body.add(answer)
    out = decorate(body, lang, rng, chat, shapes)
    return StyledAnswer(kind, lang, out.text() if chat else "\n" + out.text(), shapes=shapes)
