"""The text filters: checks on one string that keep it (None) or say why it goes (`Drop`).

Following datatrove's design, each filter is a small object whose `check` returns None to
keep a candidate or a `Drop(reason, detail)`: `reason` is the stable name counted in the
manifest's funnel, `detail` says what was wrong with this text (which keyword, how many
words against which limit, ...) for the rejected row a person reads.

Every check is linear in the text's length: no regex here lets an unbounded repetition start
at every position, because a model can answer with 200K characters of one symbol (issue 12
item 6: the old e-mail pattern took 36 s on 100K characters without spaces).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from selfinstruct import languages
from selfinstruct.filter_settings import FilterSettings
from selfinstruct.languages import LanguageProfile


@dataclass(frozen=True)
class Drop:
    """Why a candidate was dropped: a stable `reason` (counted) and a human `detail`."""

    reason: str
    detail: str = ""


class Filter(Protocol):
    """A check on one text: None keeps it, a `Drop` says why it goes."""

    def check(self, text: str) -> Drop | None: ...


@dataclass(frozen=True)
class LengthFilter:
    """Keep texts with min_exclusive < length <= max_inclusive (words or characters)."""

    min_exclusive: int
    max_inclusive: int
    unit: str  # "words" | "chars"

    def check(self, text: str) -> Drop | None:
        size = text_length(text, self.unit)
        if size <= self.min_exclusive:
            return Drop("too_short", f"{size} {self.unit} (needs more than {self.min_exclusive})")
        if size > self.max_inclusive:
            return Drop("too_long", f"{size} {self.unit} (limit {self.max_inclusive})")
        return None


def length_limits(settings: FilterSettings, unit: str) -> tuple[int, int, int]:
    """(min exclusive, max inclusive, output max) of instructions and outputs in `unit`."""
    if unit == "chars":
        return settings.min_chars, settings.max_chars, settings.output_max_chars
    return settings.min_words, settings.max_words, settings.output_max_words


def text_length(text: str, unit: str) -> int:
    """Words (split on whitespace) or characters without whitespace: the filters' lengths."""
    return len(text.split()) if unit == "words" else len("".join(text.split()))


@dataclass(frozen=True)
class KeywordFilter:
    """Drop instructions a text-only model cannot carry out (images, files, ...)."""

    patterns: tuple[str, ...]  # regular expressions
    whole_words: bool  # English matches words; Japanese has no word boundaries

    def __post_init__(self) -> None:
        body = "|".join(rf"\b(?:{p})\b" if self.whole_words else p for p in self.patterns)
        object.__setattr__(self, "_pattern", re.compile(body, re.IGNORECASE))

    def check(self, text: str) -> Drop | None:
        match = self._pattern.search(text)  # type: ignore[attr-defined]
        if match is None:
            return None
        return Drop("blacklisted_keyword", f"contains the blacklisted keyword {match.group(0)!r}")


@dataclass(frozen=True)
class PrefixFilter:
    """Self-Instruct drops "Write a program…": such tasks cannot be checked by reading."""

    prefixes: tuple[str, ...]

    def check(self, text: str) -> Drop | None:
        for prefix in self.prefixes:
            if text.lower().startswith(prefix.lower()):
                return Drop("program_request", f"starts with {prefix!r}")
        return None


@dataclass(frozen=True)
class LeadingCharFilter:
    """Leading punctuation (or, for English, a non-ASCII start) marks list debris."""

    punctuation: str
    ascii_only: bool

    def check(self, text: str) -> Drop | None:
        first = text[:1]
        if first and first in self.punctuation:
            return Drop("starts_with_punctuation", f"starts with {first!r}")
        if self.ascii_only and first and not first.isascii():
            return Drop("starts_with_non_ascii", f"starts with {first!r}")
        return None


@dataclass(frozen=True)
class LanguageFilter:
    """An instruction is in the dataset's language, as its profile judges (a Japanese dataset
    stays Japanese, an English one mostly Latin script)."""

    profile: LanguageProfile

    def check(self, text: str) -> Drop | None:
        if not any(ch.isalpha() for ch in text):
            return Drop("language_mismatch", "has no letters at all")
        detail = self.profile.instruction_mismatch(text)
        return Drop("language_mismatch", detail) if detail else None


@dataclass(frozen=True)
class _Words:
    """The field labels and refusal phrases of every registered language, compiled.

    Field labels (the profiles' `field_labels`) at the start of a line and followed by a
    colon are the template, not content: the model continued into the next item or merged
    two fields. "Task" and "Example" are left out on purpose: "Example 1:" is a normal way to
    answer "give three examples". Refusals and talk about being a model (the profiles'
    `refusal_patterns`) count anywhere in a text: no task content needs them.
    """

    labels: tuple[str, ...]
    label_line: re.Pattern[str]
    label_inline: re.Pattern[str]
    refusal: re.Pattern[str]


@cache
def _words(codes: tuple[str, ...]) -> _Words:
    """`_Words` of the languages `codes`, compiled once per registry state."""
    profiles = [languages.get(code) for code in codes]
    labels = tuple(label for profile in profiles for label in profile.field_labels)
    alternatives = "|".join(map(re.escape, labels))
    return _Words(
        labels,
        # In inputs and outputs a label counts at the start of a line; instructions are one
        # line (the parser collapses whitespace), so there it counts after any space or
        # sentence end.
        re.compile(rf"^[ \t>*_#]*(?P<label>{alternatives})[ \t]*[:：]",
                   re.IGNORECASE | re.MULTILINE),
        # The markup and space runs are bounded: unbounded, they would rescan a long run of
        # spaces from every position inside it.
        re.compile(rf"(?:^|(?<=[\s.?!。？！]))[>*_#]{{0,6}}\s{{0,6}}(?P<label>{alternatives})"
                   rf"\s{{0,6}}[:：]", re.IGNORECASE),
        re.compile("|".join(p for profile in profiles for p in profile.refusal_patterns),
                   re.IGNORECASE),
    )


# A bare "###" line is Alpaca's item separator; a markdown heading ("## Steps") is content.
_MARKERS = re.compile(r"^[ \t]*#{3,}[ \t]*$|<\s*no\s*input\s*>", re.IGNORECASE | re.MULTILINE)
# In an instruction: "1. Do this" at the start, "…end. 10. Next task" or "###" inside mark
# list numbering or separators the parser left, i.e. two items merged into one.
_MERGED = re.compile(r"^\s*\d{1,3}[.)．]\s|[.?!。？！]\s*\d{1,3}[.)．]\s*\S|#{3,}")


def find_leftover(text: str, *, instruction: bool, context: str = "") -> str | None:
    """The first piece of prompt scaffolding in `text`, or None.

    `instruction`: `text` is a (one-line) instruction, where list numbering also counts; in
    inputs and outputs a numbered list is a normal answer. A label the `context` (the
    instruction) itself mentions is content: "state its output" may be answered "Output: 6".
    """
    words = _words(languages.codes())
    mentioned = {label.lower() for label in words.labels if label.lower() in context.lower()}
    for match in (words.label_inline if instruction else words.label_line).finditer(text):
        if match.group("label").lower() not in mentioned:
            return match.group(0).strip()
    marker = _MARKERS.search(text) or (_MERGED.search(text) if instruction else None)
    return marker.group(0).strip() if marker else None


@dataclass(frozen=True)
class TemplateLeftoverFilter:
    """Prompt scaffolding left in an instruction: field labels, ``###``, ``<noinput>``, and
    list numbers, which mark two instructions merged into one."""

    def check(self, text: str) -> Drop | None:
        found = find_leftover(text, instruction=True)
        if not found:
            return None
        return Drop("template_leftover", f"contains prompt scaffolding {found!r}")


@dataclass(frozen=True)
class RefusalFilter:
    """Refusals and "As an AI…" meta text: not an answer, and harmful to train on.

    Only phrases about the model itself count, so an output that *is* an apology ("I'm
    sorry I missed your party") is kept.
    """

    def check(self, text: str) -> Drop | None:
        match = _words(languages.codes()).refusal.search(text)
        if match is None:
            return None
        return Drop("refusal", f"contains the refusal/meta phrase {match.group(0)!r}")


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RepetitionFilter:
    """Looping text: the share of n-grams that repeat an earlier one.

    Tokens are words for English and characters (no spaces or punctuation) for Japanese.
    ``1 - distinct/total`` is 0 for text that never repeats itself and approaches 1 for a
    loop. Texts with fewer than `min_ngrams` n-grams are too short to judge.
    """

    max_ratio: float
    unit: str  # "words" | "chars"
    min_ngrams: int = 10

    def check(self, text: str) -> Drop | None:
        ratio = repetition_ratio(text, self.unit)
        if ratio is None or ratio <= self.max_ratio:
            return None
        return Drop("repetition", f"{ratio:.0%} of its n-grams repeat (limit "
                                  f"{self.max_ratio:.0%})")


def repetition_ratio(text: str, unit: str, min_ngrams: int = 10) -> float | None:
    """Share of repeated n-grams (word 3-grams or character 5-grams); None if too short."""
    if unit == "words":
        tokens: list[str] = _WORD.findall(text.lower())
        n = 3
    else:
        tokens = [ch for ch in unicodedata.normalize("NFKC", text) if ch.isalnum()]
        n = 5
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if len(grams) < min_ngrams:
        return None
    return 1 - len(set(grams)) / len(grams)
