"""Messy field answers: classification verdicts, instances, judge scores and labels.

Why: real models wrap the fields our prompts ask for in markdown and chat (shared DESIGN.md
§10): ``**Input:**``, ``Input: N/A``, "The answer is: Yes.", ``**No** — …``, ``Clarity - 4``,
``**Clarity:** 4/5``, JSON, 「はい」. Each answer here takes the clean style's content (the
same verdict, the same instance pairs, the same scores and labels) and only changes how it is
written, plus the instance defects of :data:`INSTANCE_DEFECT_RATES`, so a test knows what a
parser should have read.
"""

from __future__ import annotations

import json
import random

from tests.servers import answers, instances, judge_label, prompt_kinds, vocab_en, vocab_ja
from tests.servers.styled import Builder, StyledAnswer, decorate, draw

# Chat verdict spellings, (template, weight); ``{v}`` is Yes/No (はい/いいえ).
VERDICTS: dict[str, tuple[tuple[str, int], ...]] = {
    "en": (("{v}", 40), ("{v}.", 10), ("{low}", 5), ("**{v}**", 10), ("The answer is: {v}.", 10),
           ("**{v}** — {why}", 10), ("Answer: {v}", 5), ("{v}, {why}", 10)),
    "ja": (("{v}", 40), ("{v}。", 10), ("「{v}」", 15), ("**{v}**", 5), ("答え：{v}", 10),
           ("{v}、{why}", 20)),
}
_WHY: dict[str, dict[bool, str]] = {
    "en": {True: "this is a classification task.", False: "this is a generation task."},
    "ja": {True: "これは分類タスクです。", False: "これは生成タスクです。"},
}
COMPLETION_VERDICTS: tuple[tuple[str, int], ...] = (
    (" {v}", 80), (" {low}", 10), (" {v}.", 10),
)


def _weighted(table: tuple[tuple[str, int], ...], rng: random.Random) -> str:
    return rng.choices([t for t, _ in table], weights=[w for _, w in table])[0]


def classify_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean verdict, spelled as chat models spell it (the shape is in ``shapes``)."""
    verdict = answers.classify_answer(prompt, lang, rng, False).strip()
    yes = verdict in ("Yes", "はい")
    template = _weighted(VERDICTS[lang] if chat else COMPLETION_VERDICTS, rng)
    text = template.format(v=verdict, low=verdict.lower(), why=_WHY[lang][yes])
    return StyledAnswer("classify", lang, text, shapes=[f"verdict:{template}"])


# Instance layouts: how "Example i / Input / Output" blocks are written, (name, weight).
INSTANCE_LAYOUTS: tuple[tuple[str, int], ...] = (
    ("clean", 40), ("bold_labels", 25), ("example_colon", 15), ("heading", 10),
    ("bold_example", 10),
)
# How an empty input is written by models that do not just leave the line out.
NO_INPUT_LINES: tuple[tuple[str, int], ...] = (
    ("", 50), ("N/A", 15), ("None", 15), ("<noinput>", 20),
)
INSTANCE_DEFECT_RATES: tuple[tuple[str, float], ...] = (
    ("wrong_language_output", 0.04),
    ("conflicting_outputs", 0.03),
    ("repetition_output", 0.03),
    ("pii_output", 0.02),
    ("refusal_output", 0.02),
)
_LOOP_SEEDS = {"en": "The answer depends on the details.", "ja": "答えは状況によって変わります。"}
_REFUSAL_OUTPUTS = {"en": "As an AI language model, I cannot provide personal opinions.",
                    "ja": "AIとして、個人的な意見をお伝えすることはできません。"}


def _instance_defect(pairs: list[tuple[str, str]], lang: str, rng: random.Random,
                     shapes: list[str]) -> list[tuple[str, str]]:
    """Lay at most one defect of :data:`INSTANCE_DEFECT_RATES` over one of the pairs."""
    name = draw(INSTANCE_DEFECT_RATES, rng)
    if name is None:
        return pairs
    index = rng.randrange(len(pairs))
    inp, out = pairs[index]
    other = "ja" if lang == "en" else "en"
    topic = rng.choice(vocab_en.EN_TOPICS if other == "en" else vocab_ja.JA_TOPICS)
    if name == "wrong_language_output":
        outputs = vocab_en.EN_OUTPUTS if other == "en" else vocab_ja.JA_OUTPUTS
        pairs[index] = (inp, instances.fill_template(rng.choice(outputs), topic))
    elif name == "conflicting_outputs":
        inputs = vocab_en.EN_INPUTS if lang == "en" else vocab_ja.JA_INPUTS
        inp = inp or instances.fill_template(rng.choice(inputs), topic)
        pairs[index] = (inp, out)
        twist = " Or perhaps not." if lang == "en" else "違うかもしれません。"
        pairs.insert(index + 1, (inp, out + twist))
    elif name == "repetition_output":
        out = out or _LOOP_SEEDS[lang]
        pairs[index] = (inp, " ".join([out] * 6) if lang == "en" else out * 6)
    elif name == "pii_output":
        pairs[index] = (inp, f"{out} Contact me at mia.jones@gmail.com." if lang == "en"
                        else f"{out}連絡先：sato.ken@gmail.com")
    else:
        pairs[index] = (inp, _REFUSAL_OUTPUTS[lang])
    shapes.append(f"instance:{name}")
    return pairs


def _instance_blocks(layout: str, lang: str, pairs: list[tuple[str, str]],
                     no_input: str) -> str:
    lab = prompt_kinds.LABELS[lang]
    colon = "：" if lang == "ja" and layout != "clean" else ":"
    bold = layout in ("bold_labels", "heading", "bold_example")
    blocks = []
    for i, (inp, out) in enumerate(pairs, start=1):
        example = f"{lab['example']} {i}"
        head = {"clean": example, "bold_labels": example, "example_colon": f"{example}{colon}",
                "heading": f"### {example}", "bold_example": f"**{example}**"}[layout]
        label_in = f"**{lab['input']}{colon}**" if bold else f"{lab['input']}{colon}"
        label_out = f"**{lab['output']}{colon}**" if bold else f"{lab['output']}{colon}"
        lines = [head]
        if inp or no_input:
            lines.append(f"{label_in} {inp or no_input}")
        lines.append(label_out + (f" {out}" if out else ""))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def instances_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean style's input-first pairs in one of :data:`INSTANCE_LAYOUTS`."""
    pairs = [(inp, out) for inp, out, _ in
             instances.instance_pairs(prompt_kinds.last_task(prompt, lang), lang, rng)]
    layout = _weighted(INSTANCE_LAYOUTS, rng)
    no_input = _weighted(NO_INPUT_LINES, rng)
    shapes = [f"layout:{layout}", f"no_input:{no_input or 'omitted'}"]
    pairs = _instance_defect(pairs, lang, rng, shapes)
    return _finish("instances_input_first", lang, rng, chat,
                   _instance_blocks(layout, lang, pairs, no_input), shapes)


def output_first_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean style's "Class label / Input" pairs, sometimes bold and blank-line separated."""
    lab = prompt_kinds.LABELS[lang]
    pairs = instances.label_pairs(prompt_kinds.last_task(prompt, lang), lang, rng)
    bold = rng.random() < 0.35
    colon = "：" if lang == "ja" and rng.random() < 0.5 else ":"
    label, inp = ((f"**{lab['class_label']}{colon}**", f"**{lab['input']}{colon}**") if bold
                  else (f"{lab['class_label']}{colon}", f"{lab['input']}{colon}"))
    sep = "\n\n" if bold else "\n"
    body = sep.join(f"{label} {lbl}\n{inp} {text}" for lbl, text in pairs)
    return _finish("instances_output_first", lang, rng, chat, body,
                   ["layout:bold" if bold else "layout:plain", f"colon:{colon}"])


def _finish(kind: str, lang: str, rng: random.Random, chat: bool, body_text: str,
            shapes: list[str]) -> StyledAnswer:
    body = Builder()
    body.add(body_text)
    out = decorate(body, lang, rng, chat, shapes)
    text = out.text()
    return StyledAnswer(kind, lang, text if chat else "\n" + text, shapes=shapes)


# Judge answer shapes, (name, weight).
JUDGE_SHAPES: tuple[tuple[str, int], ...] = (
    ("clean", 30), ("dash", 15), ("bold_out_of_5", 20), ("json", 15), ("chatty", 10),
    ("fullwidth", 10),
)
_FW = str.maketrans("0123456789", "０１２３４５６７８９")


def judge_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean judge's two scores in one of :data:`JUDGE_SHAPES` (fullwidth: ja only)."""
    clarity, correctness = judge_label.judge_scores(
        *(judge_label.judge_example(prompt, lang) or (prompt, "", prompt)))
    first, second = judge_label.JUDGE_FIELDS[lang]
    shape = _weighted(JUDGE_SHAPES, rng)
    if shape == "fullwidth" and lang == "en":
        shape = "clean"
    if shape == "dash":
        text = f"{first} - {clarity}\n{second} - {correctness}"
    elif shape == "bold_out_of_5":
        text = f"**{first}:** {clarity}/5\n**{second}:** {correctness}/5"
    elif shape == "json":
        text = json.dumps({first.lower() if lang == "en" else first: clarity,
                           second.lower() if lang == "en" else second: correctness},
                          ensure_ascii=False)
        if rng.random() < 0.5:
            text = f"```json\n{text}\n```"
    elif shape == "chatty":
        lead = "Here is my evaluation:" if lang == "en" else "評価は次のとおりです。"
        text = f"{lead}\n\n{first}: {clarity} ({'clear enough' if lang == 'en' else '十分明確'})" \
               f"\n{second}: {correctness}"
    elif shape == "fullwidth":
        text = (f"{first}：{str(clarity).translate(_FW)}\n"
                f"{second}：{str(correctness).translate(_FW)}")
    else:
        text = f"{first}: {clarity}\n{second}: {correctness}"
    return StyledAnswer("judge", lang, text if chat else "\n" + text, shapes=[f"judge:{shape}"])


LABEL_SHAPES: dict[str, tuple[tuple[str, int], ...]] = {
    "en": (("{x}", 50), ("{x}.", 10), ("**{x}**", 15), ("The label is: {x}", 10),
           ("Class label: {x}", 15)),
    "ja": (("{x}", 50), ("{x}です。", 10), ("「{x}」", 20), ("クラスラベル：{x}", 20)),
}


def label_answer(prompt: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """The clean label (same disagreement draw), wrapped as chat models wrap it."""
    label = judge_label.label_answer(prompt, lang, rng, False).strip()
    template = _weighted(LABEL_SHAPES[lang], rng) if chat else " {x}"
    return StyledAnswer("label", lang, template.format(x=label), shapes=[f"label:{template}"])
