"""Messy instruction lists: the bootstrap and Alpaca answers of the ``messy`` style.

Why: real chat models do not continue "9." the way the prompt asks (shared DESIGN.md §10).
These answers carry the same kind of instructions as the clean style (they come from the
clean generator) but laid out as real models lay them out — markdown bullets, ``**9.**``,
``9)``, ``Task 9:`` and ``### Task 9`` headings, restarts at 1, full-width ``９．``, ``・`` and
``タスク9：`` in Japanese, bold field labels and ``Input: N/A`` in Alpaca items — and with
the item defects real models produce (:data:`ITEM_DEFECT_RATES`). Every embedded item is
recorded with its clean text, so a test can check that the pipeline accounted for it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tests.servers import (
    answers,
    instances,
    instructions,
    kinds,
    prompt_kinds,
    vocab_en,
    vocab_ja,
)
from tests.servers.styled import Builder, StyledAnswer, decorate, draw

# Defects laid over a clean instruction, per item (on top of the clean generator's ~24 % of
# copies, near-copies, blacklisted, too short, "Write a program" and punctuation items).
ITEM_DEFECT_RATES: tuple[tuple[str, float], ...] = (
    ("refusal", 0.03),
    ("pii", 0.03),
    ("wrong_language", 0.03),
    ("too_long", 0.02),
    ("leading_char", 0.02),
    ("template_leftover", 0.02),
    ("repetition", 0.02),
)
# Share of readable bootstrap answers whose tail loops: the last item comes back again.
LOOP_RATE = 0.03

# Layouts of a chat bootstrap list, with weights; ``{n}`` is the item number, ``{w}`` the
# full-width number. "restart" numbers from 1 instead of continuing the prompt's list.
CHAT_LAYOUTS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "en": (
        ("plain", "{n}. ", 30), ("dash", "- ", 10), ("star", "* ", 5),
        ("bold_number", "**{n}.** ", 10), ("paren", "{n}) ", 8), ("task_colon", "Task {n}: ", 7),
        ("task_heading", "### Task {n}\n", 5), ("restart", "{n}. ", 8),
    ),
    "ja": (
        ("plain", "{n}. ", 26), ("dash", "- ", 5), ("bold_number", "**{n}.** ", 8),
        ("paren", "{n}) ", 5), ("restart", "{n}. ", 8), ("fullwidth", "{w}．", 12),
        ("nakaguro", "・", 10), ("ja_task", "タスク{n}：", 8),
        ("task_heading", "### タスク{n}\n", 4),
    ),
}
# Completions continue "9." with the item text; the later lines mostly keep the numbering.
COMPLETION_LAYOUTS: tuple[tuple[str, str, int], ...] = (
    ("plain", "{n}. ", 84), ("paren", "{n}) ", 8), ("dash", "- ", 8),
)

_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

_REFUSALS: dict[str, tuple[str, ...]] = {
    "en": ("As an AI language model, I cannot browse the internet, but here is a task: {x}",
           "I'm sorry, but I can't help with that request. {x}"),
    "ja": ("AIとして、{x}", "申し訳ありませんが、そのご依頼にはお答えできません。{x}"),
}
_PII: dict[str, tuple[str, ...]] = {
    "en": ("Write a polite reply to {name}.{last}@gmail.com asking about {topic}.",
           "Call 415-555-{four} and leave a short message about {topic}."),
    "ja": ("{topic}について、tanaka.{last}@gmail.com 宛てのお礼のメールを書いてください。",
           "090-{four}-5678 に電話して、{topic}の予約を取る会話文を作ってください。"),
}
_NAMES = ("john", "maria", "wei", "fatima", "olga", "kenji")
_LASTS = ("smith", "garcia", "chen", "khan", "ivanova", "sato")
_LEFTOVERS: dict[str, tuple[str, ...]] = {
    "en": ("{x} Input: a short text about {topic}", "{x} ### Instruction: {y}"),
    "ja": ("{x} 入力: {topic}についての短い文", "{x} ### 指示: {y}"),
}
_LOOPS: dict[str, str] = {"en": " Repeat the answer again.", "ja": "もう一度説明してください。"}
_LONG_TAIL: dict[str, tuple[str, ...]] = {
    "en": tuple(f"Then describe consequence number {i} in detail, with reasons and one "
                "example from history." for i in range(1, 12)),
    "ja": tuple(f"さらに、{i}番目の影響について、理由と歴史上の例を一つ挙げながら"
                "詳しく説明してください。" for i in range(1, 12)),
}


def _good(lang: str, rng: random.Random) -> str:
    if lang == "en":
        return instructions.en_good_instruction(rng)
    return instructions.ja_good_instruction(rng)


def _topic(lang: str, rng: random.Random) -> str:
    return rng.choice(vocab_en.EN_TOPICS if lang == "en" else vocab_ja.JA_TOPICS)


def add_defect(text: str, lang: str, rng: random.Random) -> tuple[str, str | None]:
    """Lay at most one defect of :data:`ITEM_DEFECT_RATES` over a clean instruction.

    Returns ``(text, defect)``; defect None leaves the clean text as it was. Each defect is
    built to trip exactly the filter named after it (see selfinstruct.filters).
    """
    name = draw(ITEM_DEFECT_RATES, rng)
    if name is None:
        return text, None
    other = "ja" if lang == "en" else "en"
    if name == "refusal":
        return rng.choice(_REFUSALS[lang]).format(x=text), name
    if name == "pii":
        template = rng.choice(_PII[lang])
        return template.format(name=rng.choice(_NAMES), last=rng.choice(_LASTS),
                               topic=_topic(lang, rng), four=rng.randint(1000, 9999)), name
    if name == "wrong_language":
        return _good(other, rng), name
    if name == "too_long":
        sep = " " if lang == "en" else ""
        return sep.join((text, *_LONG_TAIL[lang])), name
    if name == "leading_char":
        return ("\u201c" + text if lang == "en" else "、" + text), name
    if name == "template_leftover":
        template = rng.choice(_LEFTOVERS[lang])
        return template.format(x=text, y=_good(lang, rng), topic=_topic(lang, rng)), name
    return text + _LOOPS[lang] * 6, name


def messy_instruction(lang: str, rng: random.Random, in_context: Sequence[str],
                      shapes: list[str], rewrite: Callable[[str], str] | None = None) -> str:
    """A clean-generator instruction, sometimes with a defect (named in ``shapes``).

    The clean generator's punctuation case "- item" becomes "(item)" too: at the start of a
    list line "- " is list markup, so it could not be offered as the item's own text.
    """
    text, category = instructions.generate_instruction(lang, rng, in_context, rewrite)
    if category == "punctuation" and text.startswith("- "):
        text = f"({text[2:]})"
    text, defect = add_defect(_unquoted(text, category), lang, rng)
    shapes.append(f"item:{defect or category}")
    return text


def _unquoted(text: str, category: str) -> str:
    """A quoted punctuation item '"item"' becomes "(item)", in list and Alpaca answers alike.

    Parsers rightly unwrap quotes around a whole item (selfinstruct.parse_text.unwrap), so the
    quoted text could not be offered as the item's own text; a parenthesis is not markup and
    still starts the item with punctuation, which is what the clean case is there for.
    """
    if category == "punctuation" and text.startswith('"'):
        return f"({text[1:-1]})"
    return text


def _pick(table: Sequence[tuple[str, str, int]], rng: random.Random) -> tuple[str, str]:
    name, marker, _ = rng.choices(table, weights=[w for _, _, w in table])[0]
    return name, marker


def _marker(template: str, number: int) -> str:
    return template.format(n=number, w=str(number).translate(_FULLWIDTH))


def bootstrap_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """Continue the numbered list up to item 15 or 16 (like the clean style), laid out messily."""
    in_context, start = prompt_kinds.bootstrap_items(prompt)
    end = max(start, rng.choice((15, 16, 16)))
    shapes: list[str] = []
    rewrite = kinds.rewriter(prompt, lang)
    items = [messy_instruction(lang, rng, in_context, shapes, rewrite)
             for _ in range(start, end + 1)]
    if len(items) > 3 and rng.random() < LOOP_RATE:
        items[-3:] = [items[-4]] * 3
        shapes.append("loop")
    body = Builder()
    if chat:
        layout, marker = _pick(CHAT_LAYOUTS[lang], rng)
        first = 1 if layout == "restart" else start
        sep = "\n\n" if layout == "task_heading" else "\n"
        for i, item in enumerate(items):
            body.add((sep if i else "") + _marker(marker, first + i))
            body.add(item, item)
    else:
        layout, marker = _pick(COMPLETION_LAYOUTS, rng)
        body.add(" ")
        body.add(items[0], items[0])
        for i, item in enumerate(items[1:], start=start + 1):
            body.add("\n" + _marker(marker, i))
            body.add(item, item)
    shapes.append(f"layout:{layout}")
    out = decorate(body, lang, rng, chat, shapes)
    return StyledAnswer("bootstrap", lang, out.text(), out.items, shapes=shapes)


# Alpaca item layouts: (name, weight). "clean" is the prompt's own "###\nN. Instruction:" form.
ALPACA_LAYOUTS: tuple[tuple[str, int], ...] = (
    ("clean", 40), ("bold_labels", 20), ("unnumbered", 15), ("task_heading", 15),
    ("numbered_bold", 10),
)
# What a model writes for "no input"; the prompt asks for "<noinput>".
NO_INPUT_SPELLINGS: tuple[str, ...] = ("<noinput>", "N/A", "None", "")
# Share of Alpaca items whose output drifts into the other language.
WRONG_LANGUAGE_OUTPUT_RATE = 0.03


def _alpaca_block(layout: str, k: int, lab: dict[str, str], lang: str,
                  fields: tuple[str, str, str]) -> tuple[str, str]:
    """``(text before the instruction, text after it)`` of one Alpaca item in ``layout``."""
    _, inp, out = fields
    colon = "：" if lang == "ja" else ":"
    i, n, o = lab["instruction"], lab["input"], lab["output"]
    if layout == "clean":
        return f"###\n{k}. {i}: ", f"\n{k}. {n}:\n{inp}\n{k}. {o}:\n{out}"
    if layout == "bold_labels":
        return f"###\n**{i}{colon}** ", f"\n**{n}{colon}** {inp}\n**{o}{colon}** {out}"
    if layout == "unnumbered":
        return f"###\n{i}{colon} ", f"\n{n}{colon} {inp}\n{o}{colon} {out}"
    if layout == "task_heading":
        return (f"### {lab['task']} {k}\n**{i}{colon}** ",
                f"\n**{n}{colon}** {inp}\n**{o}{colon}** {out}")
    return f"{k}. **{i}{colon}** ", f"\n   **{n}{colon}** {inp}\n   **{o}{colon}** {out}"


def alpaca_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """Items N..num_tasks as the clean style makes them, in one of :data:`ALPACA_LAYOUTS`."""
    lab = prompt_kinds.LABELS[lang]
    in_context, start, total = prompt_kinds.alpaca_items(prompt, lang)
    layout = rng.choices([n for n, _ in ALPACA_LAYOUTS], weights=[w for _, w in ALPACA_LAYOUTS])[0]
    shapes: list[str] = [f"layout:{layout}"]
    body = Builder()
    rewrite = kinds.rewriter(prompt, lang)
    for k in range(start, max(start, total) + 1):
        instr, category = instructions.generate_instruction(lang, rng, in_context, rewrite)
        inp, out = answers.alpaca_fields(instr, lang, rng)
        instr, defect = add_defect(_unquoted(instr, category), lang, rng)
        shapes.append(f"item:{defect or 'clean'}")
        if rng.random() < WRONG_LANGUAGE_OUTPUT_RATE:
            other = "ja" if lang == "en" else "en"
            outputs = vocab_en.EN_OUTPUTS if other == "en" else vocab_ja.JA_OUTPUTS
            out = instances.fill_template(rng.choice(outputs), _topic(other, rng))
            shapes.append("output:wrong_language")
        if inp == prompt_kinds.NO_INPUT:
            inp = rng.choice(NO_INPUT_SPELLINGS)
            shapes.append(f"no_input:{inp or 'empty'}")
        before, after = _alpaca_block(layout, k, lab, lang, (instr, inp, out))
        if k == start and not chat:  # a completion continues "N. Instruction:"
            before, after = " ", f"\n{k}. {lab['input']}:\n{inp}\n{k}. {lab['output']}:\n{out}"
        body.add(("\n" if k > start else "") + before)
        body.add(instr, instr)
        body.add(after)
    out_builder = decorate(body, lang, rng, chat, shapes)
    return StyledAnswer("alpaca", lang, out_builder.text(), out_builder.items, shapes=shapes)
