"""Which of our templates a prompt is, and what the clean answers read back from it.

Why a module of its own: every answer style (clean, messy, recorded) and the accounting hook
must agree on a prompt's kind and language, so detection and the few fields read from the
prompt (last task, in-context items, next item number) are defined once.
"""

from __future__ import annotations

import re

from tests.servers.tokens import CJK_RANGES

BOOTSTRAP_HEADERS: dict[str, str] = {
    "en": "Come up with a series of tasks:",
    "ja": "さまざまなタスクを考えてください:",
}
_HEADERS: tuple[tuple[str, str, str], ...] = (
    ("bootstrap", "en", "Come up with a series of tasks:"),
    ("bootstrap", "ja", "さまざまなタスクを考えてください:"),
    ("classify", "en", "Can the following task be regarded as a classification task"),
    ("classify", "ja", "次のタスクは、出力が有限個のラベルのどれかになる分類タスクとみなせますか"),
    ("instances_input_first", "en", "Come up with examples for the following tasks."),
    ("instances_input_first", "ja", "次のタスクの例を考えてください。"),
    ("instances_output_first", "en", "Given the classification task definition and the class"),
    ("instances_output_first", "ja", "分類タスクの定義とクラスラベルが与えられます。"),
    ("alpaca", "en", "You are asked to come up with a set of"),
    ("alpaca", "ja", "言語モデルに与える多様なタスク指示を"),
    ("judge", "en", "Rate the following instruction-tuning example."),
    ("judge", "ja", "次の指示チューニング用の例を評価してください。"),
    ("label", "en", "Classify the input of the following task. Answer with the class label only."),
    ("label", "ja", "次のタスクの入力を分類してください。クラスラベルだけを答えてください。"),
)
NO_INPUT = "<noinput>"  # labels.json's no_input: what the templates show for an empty input
LABELS: dict[str, dict[str, str]] = {
    "en": {"task": "Task", "example": "Example", "input": "Input", "output": "Output",
           "class_label": "Class label", "instruction": "Instruction"},
    "ja": {"task": "タスク", "example": "例", "input": "入力", "output": "出力",
           "class_label": "クラスラベル", "instruction": "指示"},
}


def detect_prompt(text: str) -> tuple[str, str]:
    """Return ``(kind, lang)`` from the template's fixed first line; ``("generic", lang)`` else.

    Recognising the first line (not keywords anywhere) mirrors how the templates are built and
    keeps a user message that merely quotes a template from being misread.
    """
    from tests.servers import kinds

    head = text.lstrip()
    for kind, lang, header in _HEADERS + kinds.headers():
        if head.startswith(header):
            return kind, lang
    return "generic", ("ja" if re.search(rf"[{CJK_RANGES}]", text[:200]) else "en")


def last_task(text: str, lang: str) -> str:
    """The instruction of the last ``Task:`` line: the one the model is asked about."""
    label = LABELS[lang]["task"]
    matches = re.findall(rf"^{re.escape(label)}:[ \t]*(.*)$", text, flags=re.MULTILINE)
    return matches[-1].strip() if matches else ""


def bootstrap_items(text: str) -> tuple[list[str], int]:
    """In-context instructions of a bootstrap prompt and the number the model must continue."""
    items = [m.group(2).strip() for m in re.finditer(r"^(\d+)\.[ \t]+(\S.*)$", text, re.M)]
    tail = re.findall(r"^(\d+)\.[ \t]*$", text, flags=re.MULTILINE)
    start = int(tail[-1]) if tail else len(items) + 1
    return items, start


def alpaca_items(text: str, lang: str) -> tuple[list[str], int, int]:
    """In-context instructions, next item number and requested total of an Alpaca prompt."""
    word = LABELS[lang]["instruction"]
    found = re.findall(rf"^(\d+)\.[ \t]*{re.escape(word)}:[ \t]*(.*)$", text, flags=re.MULTILINE)
    items = [instr.strip() for _, instr in found if instr.strip()]
    start = int(found[-1][0]) if found and not found[-1][1].strip() else len(items) + 1
    total_re = r"set of (\d+)" if lang == "en" else r"指示を(\d+)個"
    total = re.search(total_re, text)
    return items, start, int(total.group(1)) if total else 20
