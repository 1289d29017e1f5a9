"""Clean answers of the quality stage: the LLM judge and the label-consistency check.

Why a module of its own: their answers are recovered from the example itself (scores from a
hash of the example, labels by matching the input back to its label template), which is a
concern apart from generating new items.
"""

from __future__ import annotations

import functools
import random
import re

from tests.servers.hashing import rng_for
from tests.servers.instances import REPEAT_SUFFIX, label_set
from tests.servers.prompt_kinds import LABELS, NO_INPUT

# Share of examples the judge scores 1-2 on clarity or correctness, so that a threshold of 3
# drops some rows besides the degenerate ones (empty output, output == input).
JUDGE_LOW_RATE = 0.10
# Ordinary scores: mostly 4-5, now and then a 3 (which still passes a threshold of 3).
_JUDGE_SCORE_WEIGHTS: tuple[tuple[int, int], ...] = ((3, 1), (4, 8), (5, 11))
# Share of label-consistency answers that name another label than the generated one.
LABEL_DISAGREE_RATE = 0.08
# The judge template's field names and the first rubric line right after the example; the
# rubric is found from the end, so an output that itself holds blank lines stays whole.
JUDGE_FIELDS: dict[str, tuple[str, str]] = {"en": ("Clarity", "Correctness"),
                                             "ja": ("明確さ", "正確さ")}
_JUDGE_RUBRIC: dict[str, str] = {"en": "\n\nScore two things from 1", "ja": "\n\n次の二点を"}
# The optional choices line of the label template and how its labels are joined.
_LABEL_OPTIONS: dict[str, tuple[str, str]] = {"en": ("Class labels", ", "),
                                              "ja": ("クラスラベルの候補", "、")}
_SLOT_RE = re.compile(r"\{(?:topic|Topic|t)\}")


def judge_example(text: str, lang: str) -> tuple[str, str, str] | None:
    """``(instruction, input, output)`` of a judge prompt; ``None`` if it is not the template.

    ``<noinput>`` becomes "" again, so "output equals input" compares what the row holds.
    """
    lab = LABELS[lang]
    end = text.rfind(_JUDGE_RUBRIC[lang])
    body = text if end == -1 else text[:end]
    match = re.search(
        rf"^{re.escape(lab['instruction'])}:[ \t]?(.*?)\n{re.escape(lab['input'])}:[ \t]?(.*?)"
        rf"\n{re.escape(lab['output'])}:[ \t]?(.*)\Z",
        body, flags=re.MULTILINE | re.DOTALL,
    )
    if match is None:
        return None
    instruction, inp, out = (g.strip() for g in match.groups())
    return instruction, "" if inp == NO_INPUT else inp, out


def judge_scores(instruction: str, input_: str, output: str) -> tuple[int, int]:
    """``(clarity, correctness)`` for one example: a pure function of the example alone.

    The pipeline asks the judge at temperature 0, so like a greedy model the scores ignore the
    seed and the sampling parameters: a resumed or re-seeded run judges a row the same way.
    About :data:`JUDGE_LOW_RATE` of examples get a 1 or 2 in one of the two scores; an empty
    output, or one that merely repeats the input, always gets correctness 1.
    """
    rng = rng_for(["judge", instruction, input_, output])
    scores, weights = zip(*_JUDGE_SCORE_WEIGHTS, strict=True)
    clarity, correctness = rng.choices(scores, weights=weights, k=2)
    if rng.random() < JUDGE_LOW_RATE:
        low = rng.choice((1, 2))
        if rng.random() < 0.5:
            clarity = low
        else:
            correctness = low
    if not output.strip() or output.strip() == input_.strip():
        correctness = 1
    return clarity, correctness


def judge_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Exactly the two lines the rubric asks for; completions start on a new line.

    A prompt that is not the template's shape is still scored (from its whole text), because
    a real judge answers whatever it is given; the degenerate-output rule then cannot apply.
    """
    clarity, correctness = judge_scores(*(judge_example(text, lang) or (text, "", text)))
    first, second = JUDGE_FIELDS[lang]
    body = f"{first}: {clarity}\n{second}: {correctness}"
    return body if chat else "\n" + body


def label_prompt(text: str, lang: str) -> tuple[str, list[str], str]:
    """``(instruction, offered labels, input)`` of a label-consistency prompt.

    The input runs from the first ``Input:`` line after the task to the closing
    ``Class label:`` line, so a multi-line input, even one holding "Input:", stays whole.
    """
    lab = LABELS[lang]
    options_word, sep = _LABEL_OPTIONS[lang]
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[-1].strip().rstrip(":：") == lab["class_label"]:
        lines.pop()
    instruction: str | None = None
    options: list[str] = []
    inp = ""
    task_prefix, options_prefix, input_prefix = (
        f"{lab['task']}:", f"{options_word}:", f"{lab['input']}:")
    for i, line in enumerate(lines):
        if instruction is None:
            if line.startswith(task_prefix):
                instruction = line[len(task_prefix):].strip()
        elif not options and line.startswith(options_prefix):
            options = [o.strip() for o in line[len(options_prefix):].split(sep) if o.strip()]
        elif line.startswith(input_prefix):
            inp = "\n".join([line[len(input_prefix):], *lines[i + 1:]]).strip()
            break
    return instruction or "", options, "" if inp == NO_INPUT else inp


def _task_labels(instruction: str, lang: str) -> list[tuple[str, str]]:
    """The label set generation used for ``instruction``, rebuilt from the instruction alone.

    :func:`label_set` draws nothing from its RNG, so a fixed one gives the very set the
    output-first answer drew its labels and input templates from.
    """
    return label_set(instruction, lang, random.Random(0))


@functools.lru_cache(maxsize=512)
def _template_pattern(template: str, lang: str) -> re.Pattern[str]:
    """A regex matching every input ``fill_template(template, topic)`` can give, for any topic.

    The topic may be a vocabulary topic or a phrase cut from the instruction (or, for generic
    tasks, a random one), so it is matched as a wildcard instead of being recomputed.
    """
    parts = [re.escape(part) for part in _SLOT_RE.split(template)]
    suffix = re.escape(REPEAT_SUFFIX[lang])
    return re.compile("(.+?)".join(parts) + f"(?:{suffix})?", flags=re.DOTALL)


def label_for_input(instruction: str, lang: str, input_: str) -> str | None:
    """The label the output-first answer paired with ``input_``, or None if it made no such input.

    Output-first generation fills the input template of a label from :func:`label_set`, which
    depends on the instruction only; matching the input back against those templates recovers
    the label for instances from both the output-first and the Alpaca answers.
    """
    text = input_.strip()
    for label, template in _task_labels(instruction, lang):
        if _template_pattern(template, lang).fullmatch(text):
            return label
    return None


def label_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """The class label of the input: the generated one, ~8 % of the time another one.

    The consistency check samples at a temperature above 0, so the disagreement is drawn from
    the request's RNG (prompt, seed, choice index ...): a different seed may flip a verdict,
    as a real second sample would. The other label comes from the labels offered in the
    prompt, else from the task's label set. An input this server did not generate gets the
    first label of the task's label set. Completions continue "Class label:" with a space;
    about 10 % of chat answers end with "." (ja: "です。"), which the pipeline normalises.
    """
    instruction, options, inp = label_prompt(text, lang)
    labels = [label for label, _ in _task_labels(instruction, lang)]
    matched = label_for_input(instruction, lang, inp)
    answer = labels[0] if matched is None else matched
    if matched is not None and rng.random() < LABEL_DISAGREE_RATE:
        pool = options if len(options) > 1 else labels
        others = [label for label in pool if label != matched]
        if others:
            answer = rng.choice(others)
    if not chat:
        return f" {answer}"
    if rng.random() < 0.1:
        answer += "." if lang == "en" else "です。"
    return answer
