"""The pairwise judge prompt (prompts/*/pairwise.j2): a judge with a known taste and a known bias.

Why: ``selfinstruct.pairwise`` asks every pair in both orders to cancel the judge's position
bias, and ``selfinstruct compare`` turns the verdicts into win rates. To test that, the judge
here must prefer one answer for a reason a test can compute, and be biased in a way the swap
must cancel:

* **Taste** (`answer_quality`): an empty answer, a refusal, the server's own generic reply or
  a copy of the instruction is worthless (0); any other answer scores 1 + the share of the
  instruction's words it uses + up to 1 for length (600 characters and more). The higher
  score is better: "longer and relevant", the length taste real judges have, so the
  length-controlled win rate has something to control.
* **Position bias**: for `FIRST_BIAS_RATE` of prompts the judge names the answer shown first
  whatever the answers say (and it does for equal scores too). The draw is a hash of the
  prompt alone, so the A/B and B/A prompts of one pair draw independently, and the verdict,
  like a judge at temperature 0, does not depend on the seed: the clean and messy styles
  give the same verdict and differ only in how it is written.

Messy answers write that verdict the ways judges do (``**B**``, ``Output (a)``, "Answer A is
better", JSON, 「B」, 回答Bの方が…), plus realistically bad ones: the prompt's format line copied
back (``Better: A or B``), a refusal, a tie statement, a walk-through that names both answers.
"""

from __future__ import annotations

import json
import random
import re

from tests.servers.hashing import rng_for
from tests.servers.styled import StyledAnswer
from tests.servers.vocab_ja import GENERIC_ANSWERS_EN, GENERIC_ANSWERS_JA

HEADERS = (
    ("pairwise", "en",
     "Compare two answers to the same instruction and say which one is better."),
    ("pairwise", "ja",
     "同じ指示に対する二つの回答を比べて、どちらが優れているかを答えてください。"),
)
FIRST_BIAS_RATE = 0.25
FULL_LENGTH = 600  # characters at which the length bonus stops growing
# The instruction's label, and the lines around answer A and answer B.
_MARKERS = {
    "en": ("Instruction:", "### Answer A\n", "\n\n### Answer B\n", "\n\n### End of answers"),
    "ja": ("指示:", "### 回答A\n", "\n\n### 回答B\n", "\n\n### 回答ここまで"),
}
_REFUSAL = re.compile(r"I'm sorry|I cannot|I can't|As an AI|申し訳|お答えできません|AIとして")
_GENERIC = frozenset(GENERIC_ANSWERS_EN + GENERIC_ANSWERS_JA)


def parse_prompt(text: str, lang: str) -> tuple[str, str, str]:
    """``(instruction, answer shown first, answer shown second)`` of a pairwise prompt."""
    label, head_a, head_b, end = _MARKERS[lang]
    match = re.search(rf"^{re.escape(label)}[ \t]?(.*)$", text, flags=re.MULTILINE)
    instruction = match.group(1).strip() if match else ""
    start = text.find(head_a)
    middle = text.find(head_b, start)
    stop = text.rfind(end)
    if start < 0 or middle < 0 or stop < middle:
        return instruction, "", ""
    return instruction, text[start + len(head_a):middle], text[middle + len(head_b):stop]


def _words(text: str) -> set[str]:
    """Latin words of 3+ letters and single CJK characters: what "uses the words" means."""
    return set(re.findall(r"[a-z]{3,}", text.lower())) | set(
        re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", text))


def answer_quality(answer: str, instruction: str) -> float:
    """The judge's taste: 0 for a worthless answer, else 1 + relevance + length (see top)."""
    stripped = answer.strip()
    if (not stripped or _REFUSAL.search(stripped) or stripped in _GENERIC
            or stripped == instruction.strip()):
        return 0.0
    wanted = _words(instruction)
    relevance = len(wanted & _words(stripped)) / len(wanted) if wanted else 0.0
    return 1.0 + relevance + min(len(stripped), FULL_LENGTH) / FULL_LENGTH


def choice(text: str, lang: str) -> str:
    """"A" or "B": the position this judge names for the prompt ``text``."""
    instruction, first, second = parse_prompt(text, lang)
    if rng_for(["pairwise-position-bias", text]).random() < FIRST_BIAS_RATE:
        return "A"
    return "B" if answer_quality(second, instruction) > answer_quality(first, instruction) \
        else "A"


_REASONS = {"en": "Answer {x} carries out the instruction more completely.",
            "ja": "回答{x}の方が指示に過不足なく沿っています。"}


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Exactly the two lines the template asks for; completions start on a new line."""
    x = choice(text, lang)
    label, reason = ("Better", "Reason") if lang == "en" else ("より良い回答", "理由")
    body = f"{label}: {x}\n{reason}: {_REASONS[lang].format(x=x)}"
    return body if chat else "\n" + body


# How the verdict is written, (template, weight); {x} is the letter, {lx} lower case, {why}
# the reason. "unreadable:" shapes carry nothing a parser may read; "tie:" ones say tie.
SHAPES: dict[str, tuple[tuple[str, int], ...]] = {
    "en": (("Better: {x}\nReason: {why}", 25), ("**Better:** {x}\n**Reason:** {why}", 10),
           ("**{x}**", 8), ("Output ({lx})", 8), ("Answer {x} is better. {why}", 12),
           ("After comparing both answers, I think Answer {x} is clearly better because it "
            "follows the instruction more closely.", 10),
           ("json", 10), ("{x}", 5),
           ("Answer A: a reasonable attempt.\nAnswer B: also an attempt.\n\nOverall, Answer {x} "
            "is better.", 4),
           ("tie:Both answers are equally good.", 3),
           ("unreadable:Better: A or B\nReason: <one short sentence>", 3),
           ("unreadable:I'm sorry, but I can't judge which of these answers is better.", 2)),
    "ja": (("より良い回答: {x}\n理由: {why}", 25), ("より良い回答：{fx}\n理由：{why}", 10),
           ("「{x}」", 10), ("回答{x}の方が優れています。{why}", 15), ("json", 10),
           ("**{x}**", 8), ("{x}", 5),
           ("両方の回答を比較しました。回答{x}の方が良いと思います。", 7),
           ("tie:どちらも同程度に良い回答で、引き分けです。", 3),
           ("unreadable:より良い回答: A または B\n理由: <短い一文>", 3),
           ("unreadable:申し訳ありませんが、どちらが優れているかは判定できません。", 2)),
}
_FULL_WIDTH = {"A": "Ａ", "B": "Ｂ"}


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean verdict, written as real judges write it (the shape is in ``shapes``)."""
    x = choice(text, lang)
    table = SHAPES[lang]
    template = rng.choices([t for t, _ in table], weights=[w for _, w in table])[0]
    why = _REASONS[lang].format(x=x)
    if template == "json":
        key, reason_key = ("better", "reason") if lang == "en" else ("より良い回答", "理由")
        body = json.dumps({key: x, reason_key: why}, ensure_ascii=False)
        answer = f"```json\n{body}\n```" if rng.random() < 0.5 else body
    else:
        answer = template.split(":", 1)[1] if template.startswith(("tie:", "unreadable:")) \
            else template
        answer = answer.format(x=x, lx=x.lower(), fx=_FULL_WIDTH[x], why=why)
    return StyledAnswer(kind, lang, answer if chat else "\n" + answer,
                        unreadable=template.startswith("unreadable:"),
                        shapes=[f"pairwise:{template.split(chr(10))[0][:40]}"])
