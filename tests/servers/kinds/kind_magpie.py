"""Magpie prompts: raw completions of the test server's own chat template (ChatML).

Why: `--recipe magpie` sends the model only its chat template's text before a user message
and takes the continuation as an instruction, then sends the whole templated conversation for
the answer. The server reports that template at ``GET /props`` (as llama.cpp's server does,
tests/servers/http_handler.py), so the recipe and this plugin agree on it by construction.

Detection: such a prompt starts with ``<|im_start|>`` (the first line of every ChatML render).
One ending in the user opener ``<|im_start|>user\\n`` asks for an instruction; one ending in
``<|im_start|>assistant\\n`` asks for the answer to its last user message. The language is
the prompt's (a Japanese system message gives Japanese instructions), not the header's.

A clean answer is what a well-aligned model writes: one instruction (or answer), then the end
of the turn. Messy answers are what magpie meets on real models: an instruction that never
ends, the next turn leaking after it without the end-of-turn token, the header repeated,
refusals, a chatty assistant voice instead of a user's, an empty turn; answers cut off,
refused, empty, or running into a made-up next user turn.
"""

from __future__ import annotations

import random
import re

from tests.servers.instances import fill_template, find_topic
from tests.servers.instructions import generate_instruction
from tests.servers.styled import StyledAnswer, draw
from tests.servers.tokens import CJK_RANGES
from tests.servers.vocab_en import EN_OUTPUTS
from tests.servers.vocab_ja import GENERIC_ANSWERS_EN, GENERIC_ANSWERS_JA, JA_OUTPUTS

START, END = "<|im_start|>", "<|im_end|>"
USER_OPENER = f"{START}user\n"
ASSISTANT_OPENER = f"{START}assistant\n"
# Qwen2-style ChatML: a default system message when the conversation has none.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# What llama.cpp's GET /props reports (the fields magpie reads, and a few others).
PROPS = {
    "chat_template": CHAT_TEMPLATE, "bos_token": "<|endoftext|>", "eos_token": END,
    "model_path": "models/test-model.gguf", "total_slots": 1,
    "build_info": "selfinstruct-test-server",
    "default_generation_settings": {"n_ctx": 4096, "temperature": 0.8},
}

HEADERS: tuple[tuple[str, str, str], ...] = (("magpie", "en", START),)

_CJK = re.compile(f"[{CJK_RANGES}]")
_LAST_USER = re.compile(rf"{re.escape(USER_OPENER)}(.*?){re.escape(END)}", re.DOTALL)

_REFUSALS = {
    "en": "I'm sorry, but as an AI language model I cannot help with that request.",
    "ja": "申し訳ありませんが、AIアシスタントとしてそのご依頼にはお応えできません。",
}
_CHATTY = {
    "en": "Sure! Here is a question a user might ask: ",
    "ja": "もちろんです！ユーザーが尋ねそうな質問はこちらです：",
}
_FOLLOW_UPS = {"en": "Thanks! Can you make it shorter?", "ja": "ありがとう！もっと短くできますか？"}
_RAMBLE = {
    "en": "and then there is also the matter of how everything connects to everything else ",
    "ja": "そしてそれがまた別のことにつながっていくのですが、",
}


def _lang(prompt: str) -> str:
    return "ja" if _CJK.search(prompt) else "en"


def _instruction(lang: str, rng: random.Random) -> str:
    """What a user "writes": the server's instruction generator, its bad items included, so
    the filters see real traffic."""
    return generate_instruction(lang, rng, ())[0]


def _answer(prompt: str, lang: str, rng: random.Random) -> str:
    """A short on-topic answer to the prompt's last user message."""
    asked = _LAST_USER.findall(prompt)
    topic = find_topic(asked[-1] if asked else "", lang, rng)
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    sentences = [fill_template(t, topic) for t in rng.sample(outputs, rng.choice((1, 2, 3)))]
    return (" " if lang == "en" else "").join(sentences)


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> str:
    lang = _lang(text)
    if text.endswith(USER_OPENER):
        return _instruction(lang, rng) + END
    if text.endswith(ASSISTANT_OPENER):
        return _answer(text, lang, rng) + END
    return rng.choice(GENERIC_ANSWERS_EN if lang == "en" else GENERIC_ANSWERS_JA)


_INSTRUCTION_SHAPES: tuple[tuple[str, float], ...] = (
    ("never_ends", 0.07), ("leaked_turn", 0.07), ("repeated_header", 0.05),
    ("refusal", 0.05), ("chatty", 0.05), ("empty", 0.04),
)
_ANSWER_SHAPES: tuple[tuple[str, float], ...] = (
    ("cut_off", 0.07), ("refusal", 0.06), ("leaked_turn", 0.06), ("empty", 0.04),
)


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    lang = _lang(text)
    if text.endswith(USER_OPENER):
        shape = draw(_INSTRUCTION_SHAPES, rng)
        body = _instruction(lang, rng)
        out = {
            # No end-of-turn token ever: max_tokens cuts it ("length").
            "never_ends": body + " " + _RAMBLE[lang] * 400,
            # The stop string never comes: the model writes on into the assistant's turn.
            "leaked_turn": f"{body}\n{ASSISTANT_OPENER}{_answer(text, lang, rng)}",
            # The model repeats the user header before writing (nothing before the marker).
            "repeated_header": f"{USER_OPENER}{body}{END}",
            "refusal": _REFUSALS[lang] + END,
            "chatty": _CHATTY[lang] + body + END,
            "empty": END,
        }.get(shape or "", body + END)
    elif text.endswith(ASSISTANT_OPENER):
        shape = draw(_ANSWER_SHAPES, rng)
        body = _answer(text, lang, rng)
        out = {
            "cut_off": body + " " + _RAMBLE[lang] * 400,
            "refusal": _REFUSALS[lang] + END,
            "leaked_turn": f"{body}\n{USER_OPENER}{_FOLLOW_UPS[lang]}",
            "empty": END,
        }.get(shape or "", body + END)
    else:
        shape, out = None, clean(kind, text, lang, rng, chat)
    return StyledAnswer(kind, lang, out, unreadable=shape == "empty",
                        shapes=[shape] if shape else [])
