"""Clean answers per prompt kind, and ``generate_answer``: the clean style's entry point.

Why: an answer is a pure function of the request (see tests/servers/openai_server.py,
"Determinism"); this module maps a detected prompt kind to the function that writes the
clean answer, with an RNG seeded from the request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from tests.servers import kinds
from tests.servers.hashing import rng_for
from tests.servers.instances import (
    fill_template,
    find_topic,
    instance_pairs,
    label_pairs,
    label_set,
    needs_input,
)
from tests.servers.instructions import generate_instruction
from tests.servers.judge_label import judge_answer, label_answer
from tests.servers.prompt_kinds import (
    LABELS,
    NO_INPUT,
    alpaca_items,
    bootstrap_items,
    detect_prompt,
    last_task,
)
from tests.servers.vocab_en import EN_CLASSIFICATION_RE, EN_INPUTS, EN_OUTPUTS
from tests.servers.vocab_ja import (
    GENERIC_ANSWERS_EN,
    GENERIC_ANSWERS_JA,
    JA_CLASSIFICATION_KEYWORDS,
    JA_INPUTS,
    JA_OUTPUTS,
    JUNK_SYLLABLES,
)


def _bootstrap_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Continue the numbered list up to item 15 or 16 (the pipeline's stop cuts item 16).

    Completions continue after "N." with a leading space; ~3 % end early with a blank line
    (exercising the "\\n\\n" stop). Chat answers restate the list, ~20 % in another style.
    """
    in_context, start = bootstrap_items(text)
    end = max(start, rng.choice((15, 16, 16)))
    rewrite = kinds.rewriter(text, lang)
    items = [generate_instruction(lang, rng, in_context, rewrite)[0]
             for _ in range(start, end + 1)]
    if not chat:
        lines = [f" {items[0]}"] + [f"{start + i}. {it}" for i, it in enumerate(items) if i]
        if rng.random() < 0.03 and len(lines) > 2:
            cut = rng.randrange(1, len(lines) - 1)
            note = "These tasks cover many skills." if lang == "en" else "以上です。"
            lines.insert(cut, f"\n{note}")
        return "\n".join(lines)
    style = rng.random()
    first = 1 if 0.14 <= style < 0.2 else start
    if 0.07 <= style < 0.14:
        lines = [f"**{first + i}.** {it}" for i, it in enumerate(items)]
    else:
        lines = [f"{first + i}. {it}" for i, it in enumerate(items)]
    if style < 0.07:
        preamble = "Here are more tasks:" if lang == "en" else "追加のタスクです:"
        return preamble + "\n\n" + "\n".join(lines)
    return "\n".join(lines)


def classify_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Yes/No from keywords of the last task, so the label agrees with how items were built."""
    task = last_task(text, lang)
    if lang == "ja":
        yes = any(k in task for k in JA_CLASSIFICATION_KEYWORDS)
        word = "はい" if yes else "いいえ"
        variants = ("はい。", "はい、分類タスクです。") if yes else (
            "いいえ。", "いいえ、分類タスクではありません。")
    else:
        yes = EN_CLASSIFICATION_RE.search(task) is not None
        word = "Yes" if yes else "No"
        variants = ("Yes.", "Yes, it is a classification task.") if yes else (
            "No.", "No, it is not a classification task.")
    if not chat:
        return f" {word}"
    return rng.choice(variants) if rng.random() < 0.15 else word


def _instances_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """"Example i / Input / Output" blocks; completions start with the newline a model emits."""
    lab = LABELS[lang]
    pairs = instance_pairs(last_task(text, lang), lang, rng)
    blocks = []
    for i, (inp, out, _) in enumerate(pairs, start=1):
        lines = [f"{lab['example']} {i}"]
        if inp:
            lines.append(f"{lab['input']}: {inp}")
        lines.append(f"{lab['output']}:" + (f" {out}" if out else ""))
        blocks.append("\n".join(lines))
    body = "\n\n".join(blocks)
    return body if chat else "\n" + body


def _output_first_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """"Class label / Input" pairs, labels taken from the task text when it names them."""
    lab = LABELS[lang]
    pairs = label_pairs(last_task(text, lang), lang, rng)
    body = "\n".join(
        f"{lab['class_label']}: {label}\n{lab['input']}: {inp}" for label, inp in pairs
    )
    return body if chat else "\n" + body


def alpaca_item(lang: str, rng: random.Random, in_context: Sequence[str],
                rewrite: Callable[[str], str] | None = None) -> tuple[str, str, str]:
    """One Alpaca triple: a clean-generator instruction and its input and output."""
    instruction, _ = generate_instruction(lang, rng, in_context, rewrite)
    return (instruction, *alpaca_fields(instruction, lang, rng))


def alpaca_fields(instruction: str, lang: str, rng: random.Random) -> tuple[str, str]:
    """``(input, output)`` for an Alpaca instruction; classification gets an input and a label.

    Separate from :func:`alpaca_item` so the messy style can respell the instruction it draws
    (tests/servers/messy_lists.py) and still get the very fields the clean style would.
    """
    topic = find_topic(instruction, lang, rng)
    is_cls = (
        EN_CLASSIFICATION_RE.search(instruction) is not None
        if lang == "en"
        else any(k in instruction for k in JA_CLASSIFICATION_KEYWORDS)
    )
    inputs = EN_INPUTS if lang == "en" else JA_INPUTS
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    if is_cls:
        label, inp = rng.choice(label_set(instruction, lang, rng))
        return fill_template(inp, topic), label
    needs = needs_input(instruction, lang) or rng.random() < 0.35
    inp = fill_template(rng.choice(inputs), topic) if needs else NO_INPUT
    return inp, fill_template(rng.choice(outputs), topic)


def _alpaca_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Items N..num_tasks in the "###" format; the pipeline's "\\n20" stop drops the last."""
    lab = LABELS[lang]
    in_context, start, total = alpaca_items(text, lang)
    end = max(start, total)
    chunks: list[str] = []
    rewrite = kinds.rewriter(text, lang)
    for k in range(start, end + 1):
        instr, inp, out = alpaca_item(lang, rng, in_context, rewrite)
        rest = f"\n{k}. {lab['input']}:\n{inp}\n{k}. {lab['output']}:\n{out}"
        if k == start and not chat:
            chunks.append(f" {instr}{rest}")
        else:
            chunks.append(f"###\n{k}. {lab['instruction']}: {instr}{rest}")
    return "\n".join(chunks)


def generic_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """A short fixed reply: a prompt that is none of our templates still gets an answer."""
    return rng.choice(GENERIC_ANSWERS_EN if lang == "en" else GENERIC_ANSWERS_JA)


_ANSWERERS: dict[str, Callable[[str, str, random.Random, bool], str]] = {
    "bootstrap": _bootstrap_answer,
    "classify": classify_answer,
    "instances_input_first": _instances_answer,
    "instances_output_first": _output_first_answer,
    "alpaca": _alpaca_answer,
    "judge": judge_answer,
    "label": label_answer,
    "generic": generic_answer,
}


def generate_answer(
    prompt: str,
    *,
    chat: bool,
    model: str = "test-model",
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    choice_index: int = 0,
    hash_material: Any = None,
) -> str:
    """The full (uncut) answer for one choice: a pure function of its arguments.

    ``hash_material`` is what identifies the prompt for seeding (the chat ``messages`` list,
    or the prompt string); it defaults to ``prompt``. Stop and max_tokens are applied later.
    """
    kind, lang = detect_prompt(prompt)
    rng = rng_for(request_material(
        prompt, chat=chat, model=model, temperature=temperature, top_p=top_p, seed=seed,
        choice_index=choice_index, hash_material=hash_material))
    answerer = _ANSWERERS.get(kind) or kinds.clean_answerer(kind, model)
    if answerer is None:
        raise KeyError(f"no answer for prompt kind {kind!r}")
    return answerer(prompt, lang, rng, chat)


def request_material(prompt: str, *, chat: bool, model: str, temperature: float | None,
                     top_p: float | None, seed: int | None, choice_index: int,
                     hash_material: Any) -> dict[str, Any]:
    """What identifies one choice of one request: every style seeds its RNG from exactly this."""
    return {
        "endpoint": "chat" if chat else "completions",
        "prompt": prompt if hash_material is None else hash_material,
        "model": model,
        "temperature": None if temperature is None else float(temperature),
        "top_p": None if top_p is None else float(top_p),
        "seed": seed,
        "choice": choice_index,
    }


def junk_text(rng: random.Random, words: int = 24) -> str:
    """Random syllable words: an answer with nothing readable in it (messy junk, ``garbage``)."""
    return " ".join(
        "".join(rng.choice(JUNK_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(words)
    )
