"""Test-server answers to the response prompt of --preference (prompts/*/respond.j2).

Why: preference pairs need responses that differ, and differ in quality, so the pairwise judge
(kind_pairwise.py: worthless = refusal, generic reply or a copy of the instruction; else longer
and more on-topic is better) has something to rank. The server's answer is a pure function of
the request material, which includes the temperature, model and seed, so the K responses of
one prompt (other slots: other temperatures or models, other nonces) are independent draws.

Clean: a refusal (`REFUSAL_RATE`), the instruction copied back (`COPY_RATE`), else an on-topic
answer of 1 to 6 sentences that reuses the instruction's words — longer answers score higher
with the judge, so two good answers still usually have a winner. Messy, on top: chat
preambles and closing remarks (styled.decorate), the whole prompt copied back including its
first line (`PROMPT_COPY_RATE`), a repetition loop (`LOOP_RATE`), and the unreadable outcomes
every messy kind has (content null, content_filter, junk), which the pipeline must turn into
rows.
"""

from __future__ import annotations

import random

from tests.servers.instances import find_topic
from tests.servers.instructions import cap_first
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
SENTENCES = {
    "en": ("To {request}, start with the main idea of {topic}.",
           "The key point about {topic} is to be clear and specific.",
           "A good answer to this request about {topic} covers the essentials first.",
           "Then add one concrete example so the answer about {topic} is easy to follow.",
           "Finally, check the result against the request: {request}.",
           "{Topic} is easier to explain with a short summary at the end."),
    "ja": ("{topic}について、まず要点を説明します。",
           "{topic}では、具体的で分かりやすい説明が大切です。",
           "この依頼に答えるには、{topic}の基本から順に述べます。",
           "例を一つ挙げると、{topic}の考え方がよく分かります。",
           "最後に、依頼の内容「{request}」に沿っているか確認します。",
           "{topic}の説明は、最後に短くまとめると伝わりやすくなります。"),
}


def request_of(text: str) -> str:
    """The request (instruction, then input) below the template's first line."""
    _, _, rest = text.lstrip().partition("\n")
    return rest.strip()


def _good(request: str, lang: str, rng: random.Random) -> str:
    first_line = request.splitlines()[0] if request else ""
    topic = find_topic(first_line, lang, rng)
    count = rng.randint(1, len(SENTENCES[lang]))
    picked = rng.sample(SENTENCES[lang], count)
    request_text = first_line.rstrip(".。") if lang == "ja" else \
        first_line[:1].lower() + first_line[1:].rstrip(".")
    sep = "" if lang == "ja" else " "
    return sep.join(s.format(topic=topic, Topic=cap_first(topic), request=request_text)
                    for s in picked)


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
