"""Test-server answers of `--verify-model`: a verifier's own answers and the same-answer judge.

Why: the agreement check (selfinstruct/verify.py) needs verifiers that disagree at a known
rate, in every way it decides: a verifier names another class label (decided exactly),
another number (numerically) or writes a contrary text (decided by the judge). The model
``disagree-model`` disagrees on :data:`DISAGREE_RATE` of the inputs, any other model on
:data:`OTHER_RATE` (``MODEL_AWARE``: the server passes the request's model). Draws come from
the request's RNG, which is seeded by the model among the rest, so two verifiers disagree on
different inputs.

What the verifier recovers without seeing the row: a classification input's label
(``judge_label.label_for_input``, as the label-consistency answer does), the sum of the
numbers in the input when the task asks for a sum, else a text on the task's topic from the
same output templates the instance answers use. A disagreeing text is one of
:data:`CONTRARY` (on the same topic): the judge answers DIFFERENT exactly when answer B is one
of those (or a refusal), so the judge's verdicts follow the verifier's draws deterministically.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal

from tests.servers.instances import fill_template, find_topic, label_set
from tests.servers.judge_label import label_for_input
from tests.servers.prompt_kinds import NO_INPUT, last_task
from tests.servers.styled import Builder, StyledAnswer, decorate
from tests.servers.vocab_en import EN_OUTPUTS
from tests.servers.vocab_ja import JA_OUTPUTS

HEADERS: tuple[tuple[str, str, str], ...] = (
    ("verify_answer", "en", "Answer the task below yourself, once for each input."),
    ("verify_answer", "ja", "次のタスクに、入力ごとにあなた自身で答えてください。"),
    ("same_answer", "en", "Do these two answers say the same thing?"),
    ("same_answer", "ja", "次の二つの答えは同じことを言っていますか。"),
)
# The server passes `model=` to plugins that declare this (tests/servers/kinds/__init__.py).
MODEL_AWARE = True
DISAGREE_MODEL = "disagree-model"
DISAGREE_RATE = 0.30
OTHER_RATE = 0.05

CONTRARY: dict[str, tuple[str, ...]] = {
    "en": ("{Topic} is overrated; most people should not bother with it at all.",
           "Nothing about {topic} is worth learning: it never changes anything.",
           "{Topic} only works if you skip the basics and rush ahead."),
    "ja": ("{t}は過大評価されていて、ほとんどの人は取り組む必要がありません。",
           "{t}について学ぶ価値はなく、何も変わりません。",
           "{t}は基本を飛ばして急いだほうが上手くいきます。"),
}
REFUSALS: dict[str, str] = {
    "en": "I'm sorry, but I can't answer that without more context.",
    "ja": "申し訳ありませんが、情報が足りないためお答えできません。",
}
_WORDS = {
    "en": {"input": "Input", "options": "Possible answers", "answer": "Answer",
           "pair": "Pair", "a": "Answer A", "b": "Answer B", "same": "SAME",
           "different": "DIFFERENT", "footer_verify": '\n\nWrite "Answer',
           "footer_judge": "\n\nFor each pair,",
           "why_same": "both answers make the same point.",
           "why_different": "answer B contradicts answer A."},
    "ja": {"input": "入力", "options": "答えの候補", "answer": "回答", "pair": "ペア",
           "a": "答えA", "b": "答えB", "same": "同じ", "different": "異なる",
           "footer_verify": "\n\nそれぞれの答えの前に", "footer_judge": "\n\nペアごとに、",
           "why_same": "どちらも同じ内容を述べています。",
           "why_different": "答えBは答えAと逆のことを述べています。"},
}
_SUM_WORDS = {"en": re.compile(r"\b(?:sum|add|total)\b", re.I), "ja": re.compile(r"合計|足し")}
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?")


# -- reading our prompts back -----------------------------------------------------------------

def verify_prompt(text: str, lang: str) -> tuple[str, list[str], list[str]]:
    """``(instruction, offered labels, inputs)`` of a verify_answer prompt."""
    words = _WORDS[lang]
    end = text.rfind(words["footer_verify"])
    body = text if end == -1 else text[:end]
    options_line = re.search(rf"^{words['options']}:[ \t]*(.*)$", body, re.M)
    sep = ", " if lang == "en" else "、"
    options = options_line.group(1).split(sep) if options_line else []
    parts = re.split(rf"^{words['input']}\d+:[ \t]?|^{words['input']} \d+:[ \t]?", body,
                     flags=re.M)
    inputs = [part.strip() for part in parts[1:]]
    return last_task(text, lang), options, ["" if i == NO_INPUT else i for i in inputs]


def judge_pairs(text: str, lang: str) -> list[tuple[str, str]]:
    """``(answer A, answer B)`` of each pair of a same_answer prompt."""
    words = _WORDS[lang]
    end = text.rfind(words["footer_judge"])
    body = text if end == -1 else text[:end]
    pairs = []
    for block in re.split(rf"^{words['pair']} ?\d+[ \t]*$", body, flags=re.M)[1:]:
        match = re.search(rf"^{words['a']}:[ \t]?(.*?)\n{words['b']}:[ \t]?(.*)\Z", block.strip(),
                          flags=re.M | re.S)
        if match is not None:
            pairs.append((match.group(1).strip(), match.group(2).strip()))
    return pairs


# -- the verifier -----------------------------------------------------------------------------

def verifier_answers(text: str, lang: str, rng: random.Random, model: str) -> list[str]:
    """One answer per input of the prompt, each disagreeing with the row at the model's rate."""
    instruction, options, inputs = verify_prompt(text, lang)
    rate = DISAGREE_RATE if model == DISAGREE_MODEL else OTHER_RATE
    out = []
    for inp in inputs:
        disagree = rng.random() < rate
        label = label_for_input(instruction, lang, inp)
        numbers = _NUMBERS.findall(inp)
        if label is not None:
            pool = options or [name for name, _ in label_set(instruction, lang, rng)]
            others = [other for other in pool if other != label]
            out.append(rng.choice(others) if disagree and others else label)
        elif _SUM_WORDS[lang].search(instruction) and numbers:
            total = sum(Decimal(n) for n in numbers) + (1 if disagree else 0)
            out.append(str(total))
        else:
            topic = find_topic(instruction, lang, rng)
            texts = CONTRARY[lang] if disagree else (EN_OUTPUTS if lang == "en" else JA_OUTPUTS)
            out.append(fill_template(rng.choice(texts), topic))
    return out


def _verify_clean(text: str, lang: str, rng: random.Random, chat: bool, model: str) -> str:
    word = _WORDS[lang]["answer"]
    body = "\n".join(f"{word} {k}: {answer}" for k, answer in
                     enumerate(verifier_answers(text, lang, rng, model), start=1))
    return body if chat else "\n" + body


# -- the judge --------------------------------------------------------------------------------

def same(answer_a: str, answer_b: str, lang: str) -> bool:
    """DIFFERENT exactly when B is a contrary text or a refusal; any topic fits the templates."""
    del answer_a  # the stand-in judges B's kind, which the verifier's draw decided
    if answer_b.strip() == REFUSALS[lang]:
        return False
    for template in CONTRARY[lang]:
        pattern = re.escape(template).replace(r"\{Topic\}", "(.+)").replace(r"\{topic\}", "(.+)")
        if re.fullmatch(pattern.replace(r"\{t\}", "(.+)"), answer_b.strip()):
            return False
    return True


def judge_verdicts(text: str, lang: str) -> list[bool]:
    return [same(a, b, lang) for a, b in judge_pairs(text, lang)]


def _judge_clean(text: str, lang: str, chat: bool) -> str:
    words = _WORDS[lang]
    lines = [f"{words['pair']} {k}: {words['same'] if ok else words['different']} - "
             f"{words['why_same'] if ok else words['why_different']}"
             for k, ok in enumerate(judge_verdicts(text, lang), start=1)]
    body = "\n".join(lines)
    return body if chat else "\n" + body


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool,
          model: str = "test-model") -> str:
    if kind == "verify_answer":
        return _verify_clean(text, lang, rng, chat, model)
    return _judge_clean(text, lang, chat)


# -- messy: what real models write ------------------------------------------------------------

# Shapes of one answer's markers (weights) and the rare whole-answer refusal.
_VERIFY_MARKERS = (("plain", 40), ("bold", 25), ("dash", 10), ("numbered", 15), ("heading", 10))
_JUDGE_MARKERS = (("plain", 50), ("bold", 25), ("lower", 15), ("paren", 10))
REFUSAL_RATE = 0.03
CHATTY_LABEL_RATE = 0.15


def _marker(shape: str, word: str, k: int, answer: str) -> str:
    return {"plain": f"{word} {k}: {answer}", "bold": f"**{word} {k}:** {answer}",
            "dash": f"{word} {k} - {answer}", "numbered": f"{k}. {answer}",
            "heading": f"### {word} {k}\n{answer}"}[shape]


def _pick(weights: tuple[tuple[str, int], ...], rng: random.Random) -> str:
    names, values = zip(*weights, strict=True)
    return rng.choices(names, weights=values)[0]


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool,
          model: str = "test-model") -> StyledAnswer:
    shapes: list[str] = []
    body = Builder()
    if kind == "verify_answer":
        answers = verifier_answers(text, lang, rng, model)
        if rng.random() < REFUSAL_RATE:
            shapes.append("refusal")
            body.add(REFUSALS[lang])
        else:
            shape = _pick(_VERIFY_MARKERS, rng)
            shapes.append(f"marker:{shape}")
            if rng.random() < CHATTY_LABEL_RATE:
                shapes.append("chatty")
                lead = "The answer is " if lang == "en" else "答えは"
                tail = "." if lang == "en" else "です。"
                answers = [f"{lead}{answer}{tail}" for answer in answers]
            sep = "\n\n" if shape == "heading" else "\n"
            body.add(sep.join(_marker(shape, _WORDS[lang]["answer"], k, answer)
                              for k, answer in enumerate(answers, start=1)))
    else:
        words = _WORDS[lang]
        shape = _pick(_JUDGE_MARKERS, rng)
        shapes.append(f"verdict:{shape}")
        lines = []
        for k, ok in enumerate(judge_verdicts(text, lang), start=1):
            word = words["same"] if ok else words["different"]
            why = words["why_same"] if ok else words["why_different"]
            lines.append({"plain": f"{words['pair']} {k}: {word} — {why}",
                          "bold": f"**{words['pair']} {k}:** {word}. {why}",
                          "lower": f"{words['pair'].lower()} {k}: {word.lower()}, {why}",
                          "paren": f"{words['pair']}{k}：{word}（{why}）"}[shape])
        body.add("\n".join(lines))
    wrapped = decorate(body, lang, rng, chat, shapes)
    out = wrapped.text()
    return StyledAnswer(kind, lang, out if chat else "\n" + out, shapes=shapes)
