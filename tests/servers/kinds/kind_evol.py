"""Evol-Instruct's prompt kinds: rewrite a prompt (in depth / in breadth), judge Equal, answer.

Clean answers:

* ``evol_depth``: the parent's first clause (the prompt's ``#Given Prompt#``), opened by a
  phrase of the asked mutation ("Step by step, showing your reasoning, …") and followed by
  one sentence of the mutation (a constraint, a deeper question, a concrete setting, a
  request for reasoning steps, or a small table as input); the parent's input lines are
  kept, as the prompt asks. Cutting the parent to its first clause makes the rewrite differ
  from the parent the way a real model's rewording does, so ROUGE-L novelty lets most pass.
* ``evol_breadth``: a new instruction of the clean generator, opened by a "rarer variant"
  phrase.
* ``evol_equal``: "Equal" when the second prompt is the first one with at most three words
  added, else "Equal" for about 12 % (``EQUAL_RATE``) and "Not Equal" for the rest.
* ``evol_answer``: the answer to an evolved instruction. The recipe sends the bare instruction
  (prompts/*/answer.j2), and the openers above are what every evolved instruction of this
  server starts with, so they are this kind's "first lines": a direct answer of a few
  sentences.

Messy answers (on top of the unreadable ones every plugin kind gets: ``content: null``,
``content_filter``, junk): rewrites wrapped in "#Rewritten Prompt#:" / bold labels / quotes /
preambles / fences, copies of the prompt's own words (``copied_prompt``), refusals, the parent
returned unchanged (caught by novelty), an answer to the parent instead of a rewrite
(``unrelated_to_parent``), a completion that runs on into a second "#Rewritten Prompt#:"
block; chatty or unreadable verdicts; answers that are too short, a short
"sorry", or a refusal.
"""

from __future__ import annotations

import random
import re

from tests.servers.instructions import en_good_instruction, ja_good_instruction
from tests.servers.styled import Builder, StyledAnswer, decorate, draw

# What every evolved instruction of this server starts with, per mutation and language.
OPENERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "add_constraints": ("In no more than 60 words,", "Using exactly three bullet points,",
                            "Without any technical jargon,"),
        "deepen": ("Going well beyond the basics,", "In depth and from several angles,"),
        "concretize": ("For a small family bakery in Lisbon,", "For a first-year nursing "
                       "student,", "For a retired engineer in Osaka,"),
        "reasoning_steps": ("Step by step, showing your reasoning,",
                            "Reasoning through each stage explicitly,"),
        "complicate_input": ("Using the data given below,",),
        "breadth": ("As a rarer variant of this domain:",),
    },
    "ja": {
        "add_constraints": ("六十字以内で、", "箇条書き三点で、", "専門用語を使わずに、"),
        "deepen": ("基本を踏み越えて、", "より深く多角的な観点から、"),
        "concretize": ("リスボンの家族経営のパン屋を例に、", "看護学部一年生に向けて、",
                       "大阪に住む退職した技術者の立場で、"),
        "reasoning_steps": ("段階を追って推論を示しながら、", "各段階を明示的に考えながら、"),
        "complicate_input": ("以下のデータを使って、",),
        "breadth": ("この分野のより珍しい題材として：",),
    },
}
ADDITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "add_constraints": ("Mention at least two concrete examples and end with a one-line "
                            "summary.", "Avoid the passive voice and keep every sentence "
                            "under fifteen words."),
        "deepen": ("Also explain why this matters and what people often get wrong about it.",
                   "Then compare how the answer changes in two different countries."),
        "concretize": ("Name the specific tools, costs and people involved.",
                       "Tie every point to a realistic situation from their week."),
        "reasoning_steps": ("List the facts you rely on first, then each intermediate "
                            "conclusion, then the final answer.",),
        "complicate_input": ("Refer to the rows of the table in your answer.",),
    },
    "ja": {
        "add_constraints": ("具体例を二つ以上挙げ、最後に一文でまとめてください。",
                            "受け身の表現を避け、一文を三十字以内に収めてください。"),
        "deepen": ("あわせて、それが重要な理由とよくある誤解も説明してください。",
                   "さらに、二つの国で答えがどう変わるかを比べてください。"),
        "concretize": ("使う道具、費用、関わる人を具体的に挙げてください。",
                       "どの点も、その人の一週間にありそうな場面に結びつけてください。"),
        "reasoning_steps": ("まず根拠となる事実を挙げ、途中の結論を順に示してから、"
                            "最終的な答えを述べてください。",),
        "complicate_input": ("回答では表の各行に触れてください。",),
    },
}
TABLES = {
    "en": "| item | price (EUR) | sold |\n| --- | --- | --- |\n| bread | 2.40 | 118 |\n"
          "| pastry | 1.80 | 64 |",
    "ja": "| 品目 | 価格（円） | 販売数 |\n| --- | --- | --- |\n| 食パン | 320 | 118 |\n"
          "| 菓子パン | 180 | 64 |",
}
ANSWER_SENTENCES = {
    "en": ("Start by stating the goal clearly and the constraints that apply.",
           "The most important factor is the context, so describe it before anything else.",
           "A concrete example makes the idea easier to follow for the reader.",
           "Each step builds on the previous one, which keeps the reasoning easy to check.",
           "In summary, the approach balances accuracy, clarity and the time available."),
    "ja": ("まず目的と、守るべき条件をはっきりさせます。",
           "最も大切なのは状況の把握なので、最初にそれを説明します。",
           "具体的な例を挙げると、読み手にとって理解しやすくなります。",
           "各段階は前の段階に基づいているため、推論を確かめやすくなります。",
           "まとめると、正確さと分かりやすさと時間のバランスを取ることが要点です。"),
}

_GIVEN = {"en": ("#Given Prompt#:", "#Rewritten Prompt#:", "#Created Prompt#:"),
          "ja": ("#元のプロンプト#：", "#書き換えたプロンプト#：", "#新しいプロンプト#：")}
# Which mutation a depth prompt asks for, read from its method line.
_METHOD_CUES = (("add_constraints", ("one more constraint", "制約や条件をもう一つ")),
                ("deepen", ("depth and breadth of the inquiry", "より深く、より幅広い")),
                ("concretize", ("more specific concepts", "より具体的な概念")),
                ("reasoning_steps", ("multiple-step reasoning", "複数の段階を踏んで")),
                ("complicate_input", ("a short table", "短い表")))
EQUAL_RATE = 0.12

HEADERS: tuple[tuple[str, str, str], ...] = (
    ("evol_depth", "en", "I want you to act as a Prompt Rewriter."),
    ("evol_depth", "ja", "あなたには、プロンプトを書き換える担当者として作業してもらいます。"),
    ("evol_breadth", "en", "I want you to act as a Prompt Creator."),
    ("evol_breadth", "ja", "あなたには、新しいプロンプトを考える担当者として作業してもらいます。"),
    ("evol_equal", "en", "Here are two instructions to an AI assistant."),
    ("evol_equal", "ja", "AI アシスタントに与える二つの指示があります。"),
    *(("evol_answer", lang, opener) for lang, table in OPENERS.items()
      for openers in table.values() for opener in openers),
)


def given_prompt(text: str, lang: str) -> str:
    """The parent a rewrite prompt shows, between its "Given" and answer labels."""
    given, *answers = _GIVEN[lang]
    start = text.find(given)
    body = text[start + len(given):] if start >= 0 else ""
    for label in answers:
        body = body.split(label)[0]
    return body.strip()


def _mutation(text: str) -> str:
    for name, cues in _METHOD_CUES:
        if any(cue in text for cue in cues):
            return name
    return "add_constraints"


def _strip_opener(line: str, lang: str) -> str:
    for openers in OPENERS[lang].values():
        for opener in openers:
            if line.startswith(opener):
                return line[len(opener):].strip()
    return line


def _core(line: str, lang: str) -> str:
    """The parent's first clause: what a rewrite keeps of its wording."""
    line = _strip_opener(line, lang)
    if lang == "ja":
        parts = [p for p in re.split(r"(?<=[、。])", line) if p]
        tail = "".join(parts[1:]) if len(parts) > 1 else line
        core = tail if len(tail) >= 10 else line
        return core.rstrip("。、") + "。"
    words = line.split()
    cut = next((i + 1 for i, w in enumerate(words) if i >= 4 and w.endswith((",", ";", ":"))),
               min(len(words), 12))
    core = " ".join(words[:cut]).rstrip(",;:.?!")
    return (core[:1].lower() + core[1:]) + "."


def evolve(parent: str, mutation: str, lang: str, rng: random.Random) -> str:
    """A clean rewrite of `parent` by `mutation` (see the module docstring)."""
    opener = rng.choice(OPENERS[lang][mutation])
    if mutation == "breadth":
        fresh = en_good_instruction(rng) if lang == "en" else ja_good_instruction(rng)
        return f"{opener} {fresh}" if lang == "en" else f"{opener}{fresh}"
    first, _, rest = parent.partition("\n")
    addition = rng.choice(ADDITIONS[lang][mutation])
    core = _core(first, lang)
    sep = " " if lang == "en" else ""
    lines = [f"{opener}{sep}{core}{sep}{addition}"]
    if rest.strip():
        lines.append(rest.strip())
    if mutation == "complicate_input":
        lines.append(TABLES[lang])
    return "\n".join(lines)


def _equal(text: str, lang: str, rng: random.Random) -> bool:
    first_label, second_label = (("The First Prompt:", "The Second Prompt:") if lang == "en"
                                 else ("一つ目の指示：", "二つ目の指示："))
    body = text.split(first_label, 1)[-1]
    first, _, rest = body.partition(second_label)
    second = rest.split("\n\n")[0]
    a, b = first.split(), second.split()
    if lang == "ja":
        a, b = list(first.strip()), list(second.strip())
    added = len(b) - len(a)
    if 0 <= added <= 3 and all(token in b for token in a):
        return True
    return rng.random() < EQUAL_RATE


def _verdict_word(equal: bool, lang: str) -> str:
    if lang == "ja":
        return "同じ" if equal else "異なる"
    return "Equal" if equal else "Not Equal"


def _answer(text: str, lang: str, rng: random.Random) -> str:
    sentences = list(ANSWER_SENTENCES[lang])
    rng.shuffle(sentences)
    return (" " if lang == "en" else "").join(sentences[:rng.randint(3, 5)])


def _lead(kind: str, lang: str, chat: bool) -> str:
    """How a completion continues the prompt: a verdict on the same line, the rest below."""
    if chat:
        return ""
    return (" " if lang == "en" else "") if kind == "evol_equal" else "\n"


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> str:
    lead = _lead(kind, lang, chat)
    if kind == "evol_depth":
        return lead + evolve(given_prompt(text, lang), _mutation(text), lang, rng)
    if kind == "evol_breadth":
        return lead + evolve(given_prompt(text, lang), "breadth", lang, rng)
    if kind == "evol_equal":
        return lead + _verdict_word(_equal(text, lang, rng), lang)
    return lead + _answer(text, lang, rng)


# -- messy -----------------------------------------------------------------------------------

REWRITE_DEFECTS: tuple[tuple[str, float], ...] = (
    ("copied_prompt", 0.06), ("refusal", 0.04), ("unchanged", 0.05), ("answered", 0.04),
)
REWRITE_WRAPPERS: tuple[tuple[str, float], ...] = (
    ("label", 0.25), ("bold_label", 0.10), ("quoted", 0.10),
)
RUNS_ON_RATE = 0.3  # completions only
ANSWER_DEFECTS: tuple[tuple[str, float], ...] = (
    ("short", 0.06), ("sorry", 0.06), ("refusal", 0.04),
)
_REFUSALS = {"en": "I'm sorry, but I can't help with that request.",
             "ja": "申し訳ありませんが、そのご依頼にはお答えできません。"}
_AI_REFUSALS = {"en": "As an AI language model, I cannot give a complete answer to this.",
                "ja": "AIとして、この質問に完全にお答えすることはできません。"}
_SORRY = {"en": "Sorry, I am not sure how to do that properly.",
          "ja": "すみません、うまくできるか分かりません。"}
_SHORT = {"en": ("Yes.", "It depends.", "See above."), "ja": ("はい。", "場合によります。")}
_ANSWERED = {"en": "Sure thing! Cats sleep a lot because they conserve energy for hunting.",
             "ja": "猫がよく眠るのは、狩りのためにエネルギーを蓄えているからです。"}
_LABELS = {"en": ("#Rewritten Prompt#:", "#Created Prompt#:"),
           "ja": ("#書き換えたプロンプト#：", "#新しいプロンプト#：")}
_BOLD = {"en": "**Rewritten Prompt:**", "ja": "**書き換えたプロンプト：**"}
_VERDICTS: dict[str, dict[bool, tuple[str, ...]]] = {
    "en": {True: ("Equal", "**Equal**", "Equal.", "Judgement: Equal",
                  "They are equal: the second adds nothing new."),
           False: ("Not Equal", "**Not Equal**", "Not Equal.", "Judgement: Not Equal",
                   "Not equal - the second prompt adds a requirement.")},
    "ja": {True: ("同じ", "「同じ」", "同じです。"),
           False: ("異なる", "「異なる」", "異なります。二つ目には条件が加わっています。")},
}
_UNREADABLE_VERDICT = {"en": "It depends on how you read them.", "ja": "どちらとも言えません。"}


def _messy_rewrite(kind: str, text: str, lang: str, rng: random.Random,
                   chat: bool) -> StyledAnswer:
    parent = given_prompt(text, lang)
    mutation = "breadth" if kind == "evol_breadth" else _mutation(text)
    evolved = evolve(parent, mutation, lang, rng)
    shapes: list[str] = []
    defect = draw(REWRITE_DEFECTS, rng)
    if defect == "copied_prompt":
        given, label = _GIVEN[lang][0], _LABELS[lang][kind == "evol_breadth"]
        evolved = f"{given}\n{parent}\n\n{label}\n{evolved}"
    elif defect == "refusal":
        evolved = rng.choice((_REFUSALS[lang], _AI_REFUSALS[lang]))
    elif defect == "unchanged":
        evolved = parent
    elif defect == "answered":
        evolved = _ANSWERED[lang]
    if defect:
        shapes.append(f"rewrite:{defect}")
    elif not chat and rng.random() < RUNS_ON_RATE:
        # A raw completion that runs on into another rewrite block, as the embedded model
        # does: the recipe's stop at the prompt's answer label keeps the first one.
        label = _LABELS[lang][kind == "evol_breadth"]
        evolved += f"\n\n{label}\n{evolve(parent, mutation, lang, rng)}"
        shapes.append("rewrite:runs_on")
    wrapper = draw(REWRITE_WRAPPERS, rng) if chat and defect != "copied_prompt" else None
    if wrapper == "label":
        evolved = f"{_LABELS[lang][kind == 'evol_breadth']} {evolved}"
    elif wrapper == "bold_label":
        evolved = f"{_BOLD[lang]}\n{evolved}"
    elif wrapper == "quoted":
        evolved = f"\"{evolved}\"" if lang == "en" else f"「{evolved}」"
    if wrapper:
        shapes.append(f"wrapper:{wrapper}")
    body = Builder()
    body.add(_lead(kind, lang, chat) + evolved)
    return StyledAnswer(kind, lang, decorate(body, lang, rng, chat, shapes).text(), [],
                        shapes=shapes)


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    if kind in ("evol_depth", "evol_breadth"):
        return _messy_rewrite(kind, text, lang, rng, chat)
    lead = _lead(kind, lang, chat)
    if kind == "evol_equal":
        equal = _equal(text, lang, rng)
        if rng.random() < 0.05:
            return StyledAnswer(kind, lang, lead + _UNREADABLE_VERDICT[lang], [],
                                shapes=["verdict:unreadable"])
        word = rng.choice(_VERDICTS[lang][equal]) if chat else _verdict_word(equal, lang)
        return StyledAnswer(kind, lang, lead + word, [], shapes=[])
    defect = draw(ANSWER_DEFECTS, rng)
    if defect == "short":
        answer = rng.choice(_SHORT[lang])
    elif defect == "sorry":
        answer = _SORRY[lang]
    elif defect == "refusal":
        answer = _AI_REFUSALS[lang]
    else:
        answer = _answer(text, lang, rng)
    return StyledAnswer(kind, lang, lead + answer, [],
                        shapes=[f"answer:{defect}"] if defect else [])
