"""Heuristic filters for instructions and instances; each drop carries a reason.

Following datatrove's design, each filter is a small object whose `check` returns None to
keep a candidate or a `Drop(reason, detail)`; the pipeline records every drop in
``rejected.jsonl`` and counts it in the manifest's funnel, so nothing disappears silently.

The English set is Self-Instruct's (with Alpaca's longer keyword list). Several of its rules
are wrong for Japanese — word counts (Japanese has no spaces), "starts with a non-ASCII
character" (every Japanese sentence does) — so Japanese gets character counts, no ASCII rule
and its own keyword list.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from selfinstruct.language import japanese_share
from selfinstruct.parsing import ParsedInstance


class Filter(Protocol):
    """A check on one text: None keeps it, a `Drop` says why it goes."""

    def check(self, text: str) -> Drop | None: ...


@dataclass(frozen=True)
class Drop:
    """Why a candidate was dropped: a stable `reason` (counted) and a human `detail`."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class LengthFilter:
    """Keep texts with min_exclusive < length <= max_inclusive (words or characters)."""

    min_exclusive: int
    max_inclusive: int
    unit: str  # "words" | "chars"

    def check(self, text: str) -> Drop | None:
        size = len(text.split()) if self.unit == "words" else len("".join(text.split()))
        if size <= self.min_exclusive:
            return Drop("too_short", f"{size} {self.unit} (needs more than {self.min_exclusive})")
        if size > self.max_inclusive:
            return Drop("too_long", f"{size} {self.unit} (limit {self.max_inclusive})")
        return None


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
        return Drop("blacklisted_keyword", f"contains {match.group(0)!r}") if match else None


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
    """A Japanese dataset stays Japanese; an English one stays mostly Latin script."""

    language: str

    def check(self, text: str) -> Drop | None:
        if not any(ch.isalpha() for ch in text):
            return Drop("language_mismatch", "no letters")
        share = japanese_share(text)
        if self.language == "ja" and share == 0:
            return Drop("language_mismatch", "no Japanese characters")
        if self.language == "en" and share > 0.3:
            return Drop("language_mismatch", "mostly Japanese/CJK characters")
        return None


EN_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map",
    "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)
# Regular expressions, chosen so they do not hit everyday words: 図 alone would drop 意図
# (intent) and 図書館 (library), so only 図 as a drawing (図を, 図で, 図表 …) counts.
JA_BLACKLIST = (
    "画像", "写真", "イラスト", "(?<![意合指系構])図[をでにの表]", "作図", "グラフ", "地図",
    "描いて", "描く", "描け", "描き", "動画", "映像", "音声", "音楽", "ファイル",
    "フローチャート", "ダイアグラム",
)
JA_PUNCTUATION = string.punctuation + "、。・，．！？：；〜ー－"


def instruction_filters(language: str) -> list[Filter]:
    """The declared, ordered filter chain for instructions of `language`."""
    if language == "ja":
        return [
            LanguageFilter("ja"),
            LengthFilter(5, 300, "chars"),
            KeywordFilter(JA_BLACKLIST, whole_words=False),
            PrefixFilter(("プログラムを書",)),
            LeadingCharFilter(JA_PUNCTUATION, ascii_only=False),
        ]
    return [
        LanguageFilter("en"),
        LengthFilter(3, 150, "words"),
        KeywordFilter(tuple(re.escape(word) for word in EN_BLACKLIST), whole_words=True),
        PrefixFilter(("Write a program",)),
        LeadingCharFilter(string.punctuation, ascii_only=True),
    ]


def first_drop(filters: Sequence[Filter], text: str) -> Drop | None:
    """Run the chain in order; the first filter that objects decides the reason."""
    for flt in filters:
        drop = flt.check(text)
        if drop is not None:
            return drop
    return None


def filter_instances(
    instances: Sequence[ParsedInstance], max_instances: int
) -> tuple[list[ParsedInstance], list[tuple[ParsedInstance, Drop]]]:
    """Self-Instruct's instance filters, applied to one task's instances.

    Returns (kept, dropped-with-reason). If one non-empty input appears with different outputs
    the task's instances are unreliable, so all of them are dropped.
    """
    kept: list[ParsedInstance] = []
    dropped: list[tuple[ParsedInstance, Drop]] = []
    seen: set[tuple[str, str]] = set()
    for inst in instances:
        drop = _instance_drop(inst, seen)
        if drop:
            dropped.append((inst, drop))
        else:
            seen.add((inst.input, inst.output))
            kept.append(inst)
    outputs_by_input: dict[str, set[str]] = {}
    for inst in kept:
        if inst.input:
            outputs_by_input.setdefault(inst.input, set()).add(inst.output)
    if any(len(outputs) > 1 for outputs in outputs_by_input.values()):
        detail = "the same input has different outputs"
        return [], dropped + [(inst, Drop("conflicting_outputs", detail)) for inst in kept]
    for inst in kept[max_instances:]:
        dropped.append((inst, Drop("over_instance_limit", f"keeps {max_instances} per task")))
    return kept[:max_instances], dropped


def _instance_drop(inst: ParsedInstance, seen: set[tuple[str, str]]) -> Drop | None:
    if inst.reason:
        return Drop(inst.reason)
    if not inst.output.strip():
        return Drop("empty_output")
    if inst.input.strip() == inst.output.strip():
        return Drop("input_equals_output")
    if inst.input.rstrip().endswith((":", "：")) or inst.output.rstrip().endswith((":", "：")):
        return Drop("ends_with_colon", "input or output ends with ':'")
    if (inst.input, inst.output) in seen:
        return Drop("duplicate_instance")
    return None
