"""What the answer parsers return, and the text clean-up all of them share.

Chat models wrap what our prompts ask for in markdown and chat (shared DESIGN.md §10):
``**bold**`` and ``*italic*`` around whole items, code fences around whole answers, a closing
remark ("Let me know if you need more!") after the last item, and "no input" spelled a dozen
ways. The list, field and verdict parsers (selfinstruct.parsing, selfinstruct.parse_fields)
all meet these, so the rules live here once.

Every regular expression here and in the parsers is linear in the answer's length: no
unbounded repetition starts at more than one place per line, because answers can be huge
(issue 12 item 6).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Parsed:
    """A parsed list item, or a rejected one with `reason` and a human `detail` set."""

    text: str
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ParsedInstance:
    """One input/output pair of a task; `reason` and `detail` set when it was rejected."""

    input: str
    output: str
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ParsedTask:
    """One item of an Alpaca-style answer (instruction with its input and output)."""

    instruction: str
    input: str
    output: str
    reason: str | None = None
    detail: str = ""


TRUNCATED_DETAIL = "the answer hit the token limit (finish_reason 'length') inside this item"

# Markdown emphasis markers around a label or number: "**9.**", "__Input:__", "*Task 9*".
EMPHASIS = r"[*_]{0,3}"
# Spaces a line may start with, including the ideographic space Japanese text uses.
INDENT = r"[ \t\u3000]*"
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_WHITESPACE = re.compile(r"\s+")
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)")
# A horizontal rule or a bare "###": a separator between items, never content.
SEPARATOR = re.compile(r"^[ \t]*(?:#{3,}|-{3,}|\*{3,}|_{3,}|={3,})[ \t]*$")
# The openings of the remarks chat models add after the last item. Matched at the start of a
# line (after markup), so a sentence inside an item that happens to contain them is kept.
_CHATTER = re.compile(
    r"[ \t\u3000>*_#]{0,8}(?:let me know|i hope|hope (?:this|these|that)|feel free|"
    r"if you (?:need|want|would|have|'d)|would you like|do you (?:want|need)|"
    r"i can (?:also |provide|generate|create|help|give|make)|happy to help|"
    r"these (?:tasks|instructions|examples|are|should)|enjoy|good luck|note that|remember|"
    r"(?:each|all|both|any|some|many) of (?:these|the above|them)|"
    r"これらの(?:タスク|例|指示)|"
    r"他にも|ほかにも|お役に立て|何か|いかがでしょうか|以上|ご不明|必要(?:でしたら|であれば|なら)|"
    r"参考になれば|ご希望)",
    re.IGNORECASE,
)
# Whole values that mean "this task has no input", compared after NFKC and casefolding.
NO_INPUT_WORDS = frozenset({
    "<noinput>", "<no input>", "noinput", "no input", "none", "(none)", "n/a", "(n/a)",
    "not applicable", "empty", "(empty)", "no input required", "no input needed", "nothing",
    "なし", "無し", "(なし)", "入力なし", "該当なし", "不要", "入力不要", "特になし",
})


def clean(text: str) -> str:
    """Collapse whitespace and drop markdown emphasis: the form instructions are compared in.

    Stray ``*`` at either end go too (an instruction never starts or ends with one, while a
    model's unclosed ``**9. Write…`` is common).
    """
    text = _MARKDOWN_EMPHASIS.sub(r"\2", text)
    return unwrap(_WHITESPACE.sub(" ", text).strip().strip("*").strip())


# Markup pairs a model wraps a whole value in, longest first.
_WRAPPERS = (("***", "***"), ("**", "**"), ("__", "__"), ("*", "*"), ("_", "_"), ("`", "`"),
             ('"', '"'), ("“", "”"))


def unwrap(text: str) -> str:
    """Strip markup wrapped around a whole value: ``**…**``, ``_…_``, `` `…` ``, ``"…"``.

    Only a pair at both ends goes, and only when neither half appears inside, so
    ``"Hello" is a greeting``, ``**a** and **b**`` and ``*args`` keep their characters.
    """
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for left, right in _WRAPPERS:
            inner = text[len(left):len(text) - len(right)]
            if len(text) > len(left) + len(right) and text.startswith(left) \
                    and text.endswith(right) and inner.strip() and left not in inner \
                    and right not in inner:
                text, changed = inner.strip(), True
                break
    return text


def is_fence(line: str) -> bool:
    """A code-fence line (```` ``` ```` or ``~~~``, with or without a language name)."""
    return _FENCE.match(line) is not None


def is_chatter(line: str) -> bool:
    """A line that opens a closing remark ("Let me know…", 「お役に立てば…」)."""
    return _CHATTER.match(line) is not None


def is_no_input(value: str, no_input_label: str) -> bool:
    """The WHOLE value says there is no input (``N/A``, ``None``, ``<noinput>``, 「なし」).

    ``None of the above`` or ``N/A values in a table`` are inputs, so only the whole value
    counts.
    """
    word = unicodedata.normalize("NFKC", unwrap(value)).casefold().rstrip(".。").strip()
    return word == "" or word == no_input_label.casefold() or word in NO_INPUT_WORDS


def drop_closing_remarks(value: str) -> str:
    """Cut trailing paragraphs that are chat ("I hope these help!") from a multi-line value.

    Only paragraphs after a blank line, and only from the end: a remark-like sentence in the
    middle of an essay is content.
    """
    paragraphs = re.split(r"\n[ \t\u3000]*\n", value.strip())
    while len(paragraphs) > 1 and is_chatter(paragraphs[-1]):
        paragraphs.pop()
    return "\n\n".join(paragraphs).strip()


def snippet(text: str, limit: int = 80) -> str:
    """`text` on one line, cut to `limit` characters: for details that quote an answer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
