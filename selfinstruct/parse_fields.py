"""Parse answers made of labelled fields: instance examples and Alpaca items.

Both kinds of answer are sequences of ``Label: value`` lines grouped into items, and real
models write the labels in many shapes (shared DESIGN.md §10): ``Input:``, ``**Input:**``,
``**Input**:``, ``- Input:``, ``### Input``, ``入力：`` (full-width colon), ``4. Input:``,
inside code fences; items are introduced by ``Example 1``, ``**Example 1:**``,
``### Example 1``, ``例1``, ``###`` or ``### Task 3``, or not at all. So one scanner reads the
lines into items (`_scan`), and each parser only says which labels it knows and when a label
starts a new item.

Values keep their lines (an output may be a multi-line poem or code); code-fence lines are
dropped, markup wrapped around a whole value is removed, a value that is only a "no input"
word (``N/A``, ``None``, ``<noinput>``, 「なし」) is the empty input, and a closing remark
after a blank line at the end of a value ("Let me know if…") is not part of it.

English labels are accepted in Japanese answers too: small models drift between languages
inside one answer, and a Japanese output under an ``Output:`` label is still the output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from selfinstruct import languages
from selfinstruct.parse_text import (
    EMPHASIS,
    INDENT,
    SEPARATOR,
    TRUNCATED_DETAIL,
    ParsedInstance,
    ParsedTask,
    clean,
    drop_closing_remarks,
    is_fence,
    is_no_input,
    unwrap,
)
from selfinstruct.prompts import Labels


# Label words accepted in every language besides the ones in labels.json, by field.
def _extra_labels(name: str) -> tuple[str, ...]:
    """Words for field `name` in every registered language (models drift between them)."""
    return tuple(w for code in languages.codes() for w in languages.get(code).label_words[name])


def _example_words() -> tuple[str, ...]:
    return tuple(w for code in languages.codes() for w in languages.get(code).example_words)


def _task_words() -> tuple[str, ...]:
    return tuple(w for code in languages.codes() for w in languages.get(code).task_words)


@dataclass
class _Item:
    """Field lines of one item being read, in the order the labels came."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    loose: list[str] = field(default_factory=list)  # lines before any label
    current: str | None = None

    def value(self, name: str, labels: Labels) -> str | None:
        """The field's text: fence-free, unwrapped, without closing remarks; None if absent."""
        if name not in self.fields:
            return None
        value = drop_closing_remarks("\n".join(self.fields[name]))
        value = unwrap(value)
        if name == "input" and is_no_input(value, labels.no_input):
            return ""
        return value


def _words(names: Iterable[str]) -> str:
    """A regex alternative of label words, longest first (so "Class label" beats "Class")."""
    return "|".join(re.escape(w) for w in sorted(set(names), key=len, reverse=True))


def _label_line(names: dict[str, str]) -> re.Pattern[str]:
    """A line that starts with one of `names` as a field label, in any markdown dress.

    The colon may be missing only when nothing follows on the line (``### Input``).
    """
    return re.compile(
        rf"^{INDENT}(?:>[ \t]*)?(?:#{{1,6}}[ \t]*)?(?:[-*+•・][ \t]*)?{EMPHASIS}"
        rf"(?:[(（]?\d{{1,3}}[ \t]*[.)．）][ \t]*{EMPHASIS})?"
        rf"(?P<label>{_words(names)})s?(?:[ \t]*\d{{1,3}})?(?:[ \t]*[(（][^)）\n]{{0,40}}[)）])?"
        rf"{EMPHASIS}[ \t]*(?:[:：]|(?=[ \t]*$)){EMPHASIS}[ \t\u3000]*(?P<rest>.*)$",
        re.IGNORECASE)


def _marker_line(words: tuple[str, ...]) -> re.Pattern[str]:
    """A line that opens an item: ``Example 1``, ``**Example 1:**``, ``### Task 3``, ``例1``.

    A number or a colon must follow the word: 例えば ("for example") opens nothing.
    """
    return re.compile(
        rf"^{INDENT}(?:#{{1,6}}[ \t]*)?{EMPHASIS}(?:{'|'.join(map(re.escape, words))})"
        rf"(?:[ \t]*#?[ \t]*\d{{1,3}}{EMPHASIS}[ \t]*[.:：)．]?|{EMPHASIS}[ \t]*[:：])"
        rf"{EMPHASIS}[ \t\u3000]*(?P<rest>.*)$",
        re.IGNORECASE)


def _names(labels: Labels, fields: tuple[str, ...]) -> dict[str, str]:
    """Casefolded label word -> field name, for the fields this parser reads."""
    names: dict[str, str] = {}
    for name in fields:
        for word in (getattr(labels, name), *_extra_labels(name)):
            names.setdefault(word.casefold(), name)
    return names


@dataclass(frozen=True)
class _Grammar:
    """What one kind of answer looks like to `_scan`."""

    labels: re.Pattern[str]  # a field label line
    names: dict[str, str]  # casefolded label word -> field name
    marker: re.Pattern[str]  # a line that opens a new item
    starts_item: Callable[[_Item, str], bool]  # does this label open a new item?
    marker_text: str | None = None  # the field a marker line's own text belongs to
    stop: re.Pattern[str] | None = None  # once items exist, a line after which nothing counts


def _scan(text: str, grammar: _Grammar) -> list[_Item]:
    """Read `text` line by line into items; text before the first item is preamble."""
    items: list[_Item] = []
    item: _Item | None = None

    def open_item() -> _Item:
        nonlocal item
        item = _Item()
        items.append(item)
        return item

    for line in text.splitlines():
        if is_fence(line):
            continue
        if SEPARATOR.match(line):
            item = None
            continue
        if grammar.stop is not None and items and grammar.stop.match(line):
            break
        marker = grammar.marker.match(line)
        if marker:
            open_item()
            line = marker.group("rest")
            if not line.strip():
                continue
        found = grammar.labels.match(line)
        if found:
            name = grammar.names[found.group("label").casefold()]
            if item is None or grammar.starts_item(item, name):
                open_item()
            assert item is not None
            item.fields[name] = [found.group("rest")]
            item.current = name
        elif item is None:
            continue  # preamble: "Sure! Here are some examples:"
        elif item.current is not None:
            item.fields[item.current].append(line)
        elif marker and grammar.marker_text:
            item.fields[grammar.marker_text] = [line]  # "Task 3: Write a poem"
            item.current = grammar.marker_text
        else:
            item.loose.append(line)
    return [i for i in items if i.fields or any(line.strip() for line in i.loose)]


# --------------------------------------------------------------------------- instances

def parse_instances(
    text: str, labels: Labels, *, output_first: bool, truncated: bool
) -> list[ParsedInstance]:
    """Parse an instance-generation answer into input/output pairs.

    Input-first answers are ``Example k / Input: … / Output: …`` blocks (Input may be absent
    for tasks without input, and an ``Example k`` followed by unlabelled text is an output
    alone; the ``Example`` lines may be missing too: a second ``Input:`` after an ``Output:``
    starts the next example). Output-first answers are
    ``Class label: … / Input: …`` pairs (an ``Output:`` label counts as the class label). A
    ``Task:`` line after the examples is the model inventing the next task: it ends the answer.
    """
    main = "class_label" if output_first else "output"
    names = _names(labels, ("input", "output", "class_label"))
    if output_first:
        names = {word: "class_label" if name == "output" else name
                 for word, name in names.items()}
    else:
        names = {word: "output" if name == "class_label" else name
                 for word, name in names.items()}

    def starts_item(item: _Item, name: str) -> bool:
        return name in item.fields or (
            not output_first and name == "input" and "output" in item.fields)

    task_words = _words((labels.task, *_task_words()))
    grammar = _Grammar(
        labels=_label_line(names), names=names,
        marker=_marker_line((labels.example, *_example_words())), starts_item=starts_item,
        stop=re.compile(rf"^[ \t*_#>]{{0,8}}(?:{task_words})[ \t]*(?:\d{{1,3}})?[*_]{{0,3}}"
                        rf"[ \t]*[:：]", re.IGNORECASE))
    label_word = labels.class_label if output_first else labels.output
    instances = []
    for item in _scan(text, grammar):
        if not item.fields and not output_first:
            # "Example 2" and then plain text: the prompt lets a task without input be
            # answered by the output alone, and small models drop the "Output:" label too.
            item.fields["output"] = item.loose
        input_ = item.value("input", labels) or ""
        output = item.value(main, labels)
        if output is None:
            instances.append(ParsedInstance(
                input_, "", "no_class_label" if output_first else "no_output_field",
                f"the example has no '{label_word}:' field"))
        else:
            instances.append(ParsedInstance(input_, output))
    if truncated and instances:
        last = instances[-1]
        instances[-1] = ParsedInstance(last.input, last.output, "truncated", TRUNCATED_DETAIL)
    return instances


# --------------------------------------------------------------------------- Alpaca items

def parse_alpaca(
    text: str, labels: Labels, first_number: int, *, continuation: bool, truncated: bool
) -> list[ParsedTask]:
    """Parse ``N. Instruction / N. Input / N. Output`` items, separated by ``###`` lines,
    ``### Task N`` headings or nothing at all (a new ``Instruction:`` starts the next item)."""
    if not text.strip():
        return []
    if continuation:
        text = f"{first_number}. {labels.instruction}:{text}"
    names = _names(labels, ("instruction", "input", "output"))

    def starts_item(item: _Item, name: str) -> bool:
        return name in item.fields or (name == "instruction" and bool(item.fields))

    grammar = _Grammar(
        labels=_label_line(names), names=names,
        marker=re.compile(
            rf"^{INDENT}(?:#{{1,6}}[ \t]*{EMPHASIS}(?:(?:{_words(_task_words())})"
            rf"[ \t]*)?|{EMPHASIS}(?:{_words(_task_words())})[ \t]*)#?[ \t]*"
            rf"\d{{1,3}}{EMPHASIS}[ \t]*[.:：)．]?{EMPHASIS}[ \t\u3000]*(?P<rest>.*)$",
            re.IGNORECASE),
        starts_item=starts_item, marker_text="instruction")
    items = _scan(text, grammar)
    if not any("input" in item.fields or "output" in item.fields for item in items):
        # No field of the model's own: prose (a completion that rambles on after the
        # prompt's "4. Instruction:"), not items with missing fields.
        return []
    tasks = []
    for item in items:
        instruction = item.value("instruction", labels)
        output = item.value("output", labels)
        missing = [word for word, value in ((labels.instruction, instruction),
                                            (labels.output, output)) if value is None]
        if missing:
            shown = clean(instruction or " ".join(item.loose))
            detail = " and ".join(f"'{word}:'" for word in missing)
            tasks.append(ParsedTask(shown, "", "", "unparseable",
                                    f"the item has no {detail} field"))
            continue
        assert instruction is not None and output is not None
        tasks.append(ParsedTask(clean(instruction), item.value("input", labels) or "", output))
    if truncated and tasks:
        last = tasks[-1]
        tasks[-1] = ParsedTask(last.instruction, last.input, last.output, "truncated",
                               TRUNCATED_DETAIL)
    return tasks
