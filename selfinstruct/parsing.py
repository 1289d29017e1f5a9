"""Turn model answers into candidates: numbered lists, instances, Yes/No, Alpaca items.

Models do not follow formats reliably (shared DESIGN.md §10), so every parser is lenient about
layout and strict about content: whatever cannot be read is returned as a rejected item with
a reason and a human-readable detail instead of being silently lost, so the funnel accounts
for every candidate. An answer with nothing readable in it gives an empty list; the pipeline
records that answer as ``unparseable_answer``.

A list item may be written ``9. …``, ``9) …``, ``(9) …``, ``**9.** …``, ``９．…`` (full-width),
``①…``, ``Task 9: …``, ``**Task 9:** …``, ``### Task 9`` (text on the next line), ``タスク9：…``,
or as a bullet (``- ``, ``* ``, ``+ ``, ``• ``, ``・``, ``■`` …); lists may restart at 1 and
bullets may follow numbers. Preambles, headings, code fences, closing remarks and field lines
under an item (``Input: …``) are not items or item text. Item text
is returned as the model wrote it (no NFKC): full-width characters are part of Japanese
text; only the markup around them is matched in either width.

Completions-mode answers continue the prompt (after ``9.`` or ``9. Instruction:``), so the
callers pass ``continuation=True`` and the parser restores the missing head.

Field answers (instances, Alpaca items) are parsed in selfinstruct.parse_fields.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from selfinstruct.parse_fields import parse_alpaca, parse_instances
from selfinstruct.parse_text import (
    EMPHASIS,
    INDENT,
    SEPARATOR,
    TRUNCATED_DETAIL,
    Parsed,
    ParsedInstance,
    ParsedTask,
    clean,
    is_chatter,
    is_fence,
)
from selfinstruct.prompts import Labels

__all__ = [
    "Parsed", "ParsedInstance", "ParsedTask", "clean", "parse_alpaca", "parse_instances",
    "parse_numbered_list", "parse_yes_no",
]

# A number: ASCII or full-width digits (\d is Unicode-aware) or a circled ①-⑳, which needs
# no delimiter after it.
_CIRCLED = r"[\u2460-\u2473]"
_NUMBER = rf"(?:\d{{1,3}}|{_CIRCLED})"
# After "9." or "9:" a digit means a decimal or a time ("9.5 kg", "10:30"), not an item; a
# full-width "１０．" may be followed by digits ("１０．090-…に電話して").
_DELIMITER = r"(?:[.:](?!\d)|[)．、）：])"
# Words that label a list item in place of (or before) its number.
_ITEM_WORDS = r"(?:task|instruction|タスク|指示)"
# What may precede an item on its line: indentation, a blockquote and a markdown heading.
_LEAD = rf"(?P<indent>{INDENT})(?:>[ \t]*)?(?:#{{1,6}}[ \t]*)?"
_NUMBERED = re.compile(
    rf"^{_LEAD}{EMPHASIS}(?:[(（]?\d{{1,3}}{EMPHASIS}[ \t]*{_DELIMITER}|{_CIRCLED}[ \t]*"
    rf"{_DELIMITER}?){EMPHASIS}[ \t\u3000]*(?P<rest>.*)$")
_LABELLED = re.compile(
    rf"^{_LEAD}{EMPHASIS}{_ITEM_WORDS}(?:[ \t]*#?[ \t]*{_NUMBER}{EMPHASIS}[ \t]*[.)．:：\-–—]?"
    rf"|{EMPHASIS}[ \t]*[:：]){EMPHASIS}[ \t\u3000]*(?P<rest>.*)$",
    re.IGNORECASE)
_BULLET = re.compile(
    rf"^(?P<indent>{INDENT})(?:[-*+][ \t]+|[•・●▪◦‣■□◆◇][ \t\u3000]*)(?P<rest>.*)$")
# A heading or a line that is bold and nothing else ("**Creative writing:**"): a section
# title between groups of items, never part of one.
_TITLE = re.compile(r"^[ \t]*(?:#{1,6}[ \t]|\*\*[^*]+(?::\*\*|\*\*[ \t]*:)[ \t]*$)")
# A field line under an item ("Input: Hello", "**Output:** Bonjour"): some models add an
# example to each task. It ends the item's text instead of being glued onto the instruction.
_FIELD = re.compile(rf"^{INDENT}(?:[-*+][ \t]+)?{EMPHASIS}(?:input|output|example|answer|"
                    rf"response|入力|出力|例|回答)[ \t]*\d{{0,3}}{EMPHASIS}[ \t]*[:：]",
                    re.IGNORECASE)


@dataclass
class _Item:
    """An item being collected: its lines so far and how it was introduced."""

    parts: list[str]
    bullet: bool
    indent: int
    number: str = ""  # the marker as written, for details
    empty: bool = True  # no text yet (kept up to date, so a long item is not rescanned)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.empty = self.empty and not clean(text)


def _match_item(line: str) -> tuple[re.Match[str], bool] | None:
    """(match, is_bullet) when `line` starts a list item."""
    for pattern, bullet in ((_LABELLED, False), (_NUMBERED, False), (_BULLET, True)):
        match = pattern.match(line)
        if match:
            return match, bullet
    return None


def _item_text(match: re.Match[str]) -> str:
    """The text after an item marker, without a second marker ("- Task 9: …", "9. Task: …")."""
    rest = match.group("rest")
    inner = _LABELLED.match(rest) or _NUMBERED.match(rest)
    return inner.group("rest") if inner else rest


def parse_numbered_list(
    text: str, first_number: int, *, continuation: bool, truncated: bool
) -> list[Parsed]:
    """Split a list answer into items (see the module docstring for the accepted shapes).

    `continuation`: the answer continues a prompt that ended with ``{first_number}.``.
    `truncated`: the answer hit max_tokens, so its last item is cut off and rejected
    (Alpaca's rule; Self-Instruct dropped the whole answer, wasting the complete items).
    An item with a marker but no text ("Task 10:") is rejected as ``empty``.
    """
    if not text.strip():
        return []  # an empty answer offers nothing, not an empty item
    # A completion that starts on a new line left the prompt's open item empty: what follows
    # is not its text (small models go on with prose), so the head is restored only for an
    # answer that continues on the same line.
    if continuation and text.lstrip(" \t\u3000")[:1] not in ("\n", "\r"):
        text = f"{first_number}.{'' if text[:1].isspace() else ' '}{text}"
    items: list[_Item] = []
    gap = False  # a blank line, fence, title or remark since the last item line
    for line in text.splitlines():
        if not line.strip() or is_fence(line) or SEPARATOR.match(line):
            gap = True
            continue
        found = _match_item(line)
        if found is not None:
            match, bullet = found
            indent = len(match.group("indent").expandtabs(4))
            last = items[-1] if items else None
            if bullet and last is not None and not last.bullet and not gap \
                    and indent > last.indent:
                last.add(line.strip())  # sub-points of a numbered item
                continue
            marker = line[:len(line) - len(match.group("rest"))].strip()
            items.append(_Item([], bullet, indent, number=marker))
            items[-1].add(_item_text(match))
            gap = False
        elif _TITLE.match(line) or _FIELD.match(line) or is_chatter(line):
            gap = True
        elif items and (not gap or items[-1].empty):
            items[-1].add(line)  # a wrapped item, or a heading's text on the next line
            gap = False
        # else: a preamble ("Here are more tasks:") or text after the list
    parsed = []
    for i, item in enumerate(items):
        body = clean(" ".join(item.parts))
        if truncated and i == len(items) - 1:
            parsed.append(Parsed(body, "truncated", TRUNCATED_DETAIL))
        elif not body:
            parsed.append(Parsed(body, "empty", f"the list item {item.number!r} has no text"))
        else:
            parsed.append(Parsed(body))
    return parsed


# --------------------------------------------------------------------------- Yes/No verdicts

def _script(ch: str) -> str:
    """A coarse script class, for telling where a verdict word ends ("no" vs "not", はい vs
    してはいけない): a word counts only where the neighbouring character is of another class."""
    if ch.isascii():
        return "latin" if ch.isalnum() else "other"
    name = unicodedata.name(ch, "")
    for script in ("HIRAGANA", "KATAKANA", "CJK"):
        if name.startswith(script):
            return script
    return "latin" if ch.isalnum() else "other"


def _bounded(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    return not (before and _script(before) != "other" and _script(before) == _script(text[start])) \
        and not (after and _script(after) != "other" and _script(after) == _script(text[end - 1]))


def _first_word(text: str, words: tuple[str, ...]) -> int | None:
    """Offset of the earliest of `words` in `text` that stands on its own, else None."""
    best = None
    for word in words:
        start = text.find(word)
        while start != -1 and (best is None or start < best):
            if _bounded(text, start, start + len(word)):
                best = start
                break
            start = text.find(word, start + 1)
    return best


def parse_yes_no(text: str, labels: Labels) -> bool | None:
    """Read a classification verdict; None only when the answer holds none.

    Chat models answer "The answer is: Yes.", "**No** — this is a generation task.",
    「はい」 or "いいえ、…", so the earliest verdict word that stands on its own wins ("not",
    "know" and "none" are not "no"; してはいけない is not はい). Lines that echo a task
    (``Task: …``) are skipped: the task text may itself say "yes" or "no".
    """
    task = re.compile(rf"^[ \t*_#>]*{re.escape(labels.task)}[ \t]*[:：]", re.IGNORECASE)
    lines = [line for line in text.splitlines() if not task.match(line)]
    body = unicodedata.normalize("NFKC", "\n".join(lines)).casefold()
    yes = _first_word(body, tuple(w.casefold() for w in labels.yes))
    no = _first_word(body, tuple(w.casefold() for w in labels.no))
    if yes is None and no is None:
        return None
    return no is None or (yes is not None and yes < no)
