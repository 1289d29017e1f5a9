"""Turn model answers into candidates: numbered lists, instances, Yes/No, Alpaca items.

Models do not follow formats reliably, so every parser is lenient about layout (preambles,
``**bold**`` numbering, restarts at 1, blank lines, full-width punctuation) and strict about
content: whatever cannot be read is returned as a rejected item with a reason instead of
being silently lost, so the funnel accounts for every candidate.

Completions-mode answers continue the prompt (after ``9.`` or ``9. Instruction:``), so the
callers pass ``continuation=True`` and the parser restores the missing head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfinstruct.prompts import Labels

# "9. text", "9) text", "**9.** text", "9．text" (full-width), "９. text" after NFKC upstream.
_ITEM = re.compile(r"^\s*(?:[*_]{1,2})?(\d{1,3})\s*[.)．、](?:[*_]{1,2})?(?:\s+|(?=\S))(.*)$")
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Parsed:
    """A parsed item, or a rejected one with `reason` set."""

    text: str
    reason: str | None = None


def clean(text: str) -> str:
    """Collapse whitespace and drop markdown emphasis: the form instructions are compared in."""
    text = _MARKDOWN_EMPHASIS.sub(r"\2", text)
    return _WHITESPACE.sub(" ", text).strip().strip("*").strip()


def parse_numbered_list(
    text: str, first_number: int, *, continuation: bool, truncated: bool
) -> list[Parsed]:
    """Split a numbered list answer into items.

    `continuation`: the answer continues a prompt that ended with ``{first_number}.``.
    `truncated`: the answer hit max_tokens, so its last item is cut off and rejected
    (Alpaca's rule; Self-Instruct dropped the whole answer, wasting the complete items).
    """
    if continuation:
        text = f"{first_number}.{'' if text[:1].isspace() else ' '}{text}"
    items: list[list[str]] = []
    blank_since_item = False
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match:
            items.append([match.group(2)])
            blank_since_item = False
        elif not line.strip():
            blank_since_item = bool(items)
        elif items and not blank_since_item:
            items[-1].append(line)  # a wrapped item continues on the next line
        # else: a preamble ("Here are more tasks:") or an epilogue after a blank line
    parsed = []
    for i, parts in enumerate(items):
        item = clean(" ".join(parts))
        if truncated and i == len(items) - 1:
            parsed.append(Parsed(item, "truncated"))
        elif not item:
            parsed.append(Parsed(item, "empty"))
        else:
            parsed.append(Parsed(item))
    return parsed


@dataclass(frozen=True)
class ParsedInstance:
    input: str
    output: str
    reason: str | None = None


def _label_pattern(word: str) -> str:
    return rf"^[ \t]*{re.escape(word)}[ \t]*[:：]"


def parse_instances(
    text: str, labels: Labels, *, output_first: bool, truncated: bool
) -> list[ParsedInstance]:
    """Parse an instance-generation answer.

    Input-first answers are ``Example k / Input: … / Output: …`` blocks (Input may be absent
    for tasks without input); output-first answers are ``Class label: … / Input: …`` pairs.
    """
    if output_first:
        blocks = _split_blocks(text, _label_pattern(labels.class_label), keep_marker=True)
        instances = [_output_first_block(b, labels) for b in blocks]
    else:
        example = rf"^[ \t]*(?:[*_#]+[ \t]*)?{re.escape(labels.example)}[ \t]*\d+[ \t]*[:：.]?"
        blocks = _split_blocks(text, example, keep_marker=False)
        instances = [_input_first_block(b, labels) for b in blocks]
    instances = [inst for inst in instances if inst is not None]
    if truncated and instances:
        last = instances[-1]
        instances[-1] = ParsedInstance(last.input, last.output, "truncated")
    return instances


def _split_blocks(text: str, marker: str, *, keep_marker: bool) -> list[str]:
    """Cut `text` at each line matching `marker`; text before the first marker is preamble."""
    matches = list(re.finditer(marker, text, re.MULTILINE))
    if not matches:
        return [text] if text.strip() else []
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [text[m.start() if keep_marker else m.end():end] for m, end in zip(matches, ends,
                                                                            strict=True)]


def _field_values(block: str, labels: Labels) -> dict[str, str]:
    """Map each field label found in `block` to its (multi-line) value."""
    names = {labels.input: "input", labels.output: "output", labels.class_label: "class_label"}
    pattern = re.compile(
        "|".join(rf"(?P<f{i}>{_label_pattern(word)})" for i, word in enumerate(names)),
        re.MULTILINE,
    )
    matches = list(pattern.finditer(block))
    values: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(block)
        word = list(names)[int(match.lastgroup[1:])]
        values.setdefault(names[word], block[match.end():end].strip())
    return values


def _input_first_block(block: str, labels: Labels) -> ParsedInstance | None:
    values = _field_values(block, labels)
    if "output" not in values:
        if not block.strip():
            return None
        return ParsedInstance(values.get("input", ""), "", "no_output_field")
    input_ = values.get("input", "")
    return ParsedInstance("" if input_ == labels.no_input else input_, values["output"])


def _output_first_block(block: str, labels: Labels) -> ParsedInstance | None:
    values = _field_values(block, labels)
    if "class_label" not in values:
        return None
    input_ = values.get("input", "")
    return ParsedInstance("" if input_ == labels.no_input else input_, values["class_label"])


def parse_yes_no(text: str, labels: Labels) -> bool | None:
    """Read a classification verdict from the first word of the answer; None if unreadable."""
    head = clean(text).lower().lstrip(" :：*")
    for word in labels.yes:
        if head.startswith(word.lower()):
            return True
    for word in labels.no:
        if head.startswith(word.lower()):
            return False
    return None


@dataclass(frozen=True)
class ParsedTask:
    """One item of an Alpaca-style answer (instruction with its input and output)."""

    instruction: str
    input: str
    output: str
    reason: str | None = None


def parse_alpaca(
    text: str, labels: Labels, first_number: int, *, continuation: bool, truncated: bool
) -> list[ParsedTask]:
    """Parse ``###``-separated ``N. Instruction / N. Input / N. Output`` items."""
    if continuation:
        text = f"{first_number}. {labels.instruction}:{text}"
    fields = (labels.instruction, labels.input, labels.output)
    field_re = re.compile(
        rf"^[ \t]*(?:\d+[ \t]*[.)．][ \t]*)?({'|'.join(map(re.escape, fields))})[ \t]*[:：]",
        re.MULTILINE,
    )
    tasks = []
    for block in re.split(r"^[ \t]*#{3,}[ \t]*$", text, flags=re.MULTILINE):
        if not block.strip():
            continue
        matches = list(field_re.finditer(block))
        values: dict[str, str] = {}
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(block)
            values.setdefault(match.group(1), block[match.end():end].strip())
        instruction = clean(values.get(labels.instruction, ""))
        if labels.instruction not in values or labels.output not in values:
            tasks.append(ParsedTask(instruction or clean(block), "", "", "unparseable"))
            continue
        input_ = values.get(labels.input, "")
        if input_.strip().lower() in (labels.no_input, "<no input>", "none", ""):
            input_ = ""
        tasks.append(ParsedTask(instruction, input_, values[labels.output]))
    if truncated and tasks:
        last = tasks[-1]
        tasks[-1] = ParsedTask(last.instruction, last.input, last.output, "truncated")
    return tasks
