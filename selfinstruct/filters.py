"""Heuristic filters for instructions and instances; each drop carries a reason and a detail.

Following datatrove's design, each filter is a small object whose `check` returns None to
keep a candidate or a `Drop(reason, detail)`; the pipeline records every drop in
``rejected.jsonl`` and counts it in the manifest's funnel, so nothing disappears silently.
The detail says what was wrong with this candidate (which keyword, how many words against
which limit, which kind of personal data), never empty.

The English set is Self-Instruct's (with Alpaca's longer keyword list). Several of its rules
are wrong for Japanese — word counts (Japanese has no spaces), "starts with a non-ASCII
character" (every Japanese sentence does) — so Japanese gets character counts, no ASCII rule
and its own keyword list.

On top of the recipe come the problems audits of Self-Instruct and Alpaca data found: looping
text, leftover template labels and merged items, refusals and "As an AI…" meta text, outputs
in the wrong language, and personal data (dropped or masked). Every filter can be switched
off and its thresholds changed through `FilterSettings` (the ``[filters]`` table of a run
config); the defaults keep the recipe's own behaviour plus the new checks.

Declared order (the first filter that objects names the reason, so the order is part of the
contract and is fixed, not left to configuration):

Instructions (`INSTRUCTION_ORDER`): language, length, blacklist, program_request,
leading_char, template_leftover, refusal, repetition, pii.

Instances (`INSTANCE_ORDER`): see selfinstruct.instance_filters.

Personal data in ``mask`` mode is not a drop: `mask_pii` rewrites the text (``[EMAIL]``,
``[PHONE]``, ``[CARD]``) before the chain runs, and `filter_instances` does the same for
inputs and outputs.

Every filter is linear in the length of its text (issue 12 item 6). This module is the front
door: the filters live in selfinstruct.text_filters, selfinstruct.pii and
selfinstruct.instance_filters, the settings in selfinstruct.filter_settings.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from selfinstruct.filter_settings import (
    INSTANCE_ORDER,
    INSTRUCTION_ORDER,
    PII_MODES,
    FilterSettings,
)
from selfinstruct.instance_filters import InstanceFilter, filter_instances, instance_filters
from selfinstruct.pii import PiiFilter, find_pii, mask_pii
from selfinstruct.text_filters import (
    Drop,
    Filter,
    KeywordFilter,
    LanguageFilter,
    LeadingCharFilter,
    LengthFilter,
    PrefixFilter,
    RefusalFilter,
    RepetitionFilter,
    TemplateLeftoverFilter,
    find_leftover,
    length_unit,
    repetition_ratio,
    text_length,
)

__all__ = [
    "EN_BLACKLIST", "INSTANCE_ORDER", "INSTRUCTION_ORDER", "JA_BLACKLIST", "JA_PUNCTUATION",
    "PII_MODES", "Drop", "Filter", "FilterSettings", "InstanceFilter", "filter_instances",
    "find_leftover", "find_pii", "first_drop", "instance_filters", "instruction_filters",
    "mask_pii", "repetition_ratio", "text_length",
]

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


def instruction_filters(language: str, *, settings: FilterSettings | None = None) -> list[Filter]:
    """The declared, ordered filter chain for instructions of `language` (INSTRUCTION_ORDER)."""
    s = settings or FilterSettings()
    ja = language == "ja"
    candidates: dict[str, Filter] = {
        "language": LanguageFilter(language),
        "length": LengthFilter(s.min_chars, s.max_chars, "chars") if ja
        else LengthFilter(s.min_words, s.max_words, "words"),
        "blacklist": KeywordFilter(JA_BLACKLIST, whole_words=False) if ja
        else KeywordFilter(tuple(re.escape(word) for word in EN_BLACKLIST), whole_words=True),
        "program_request": PrefixFilter(("プログラムを書",) if ja else ("Write a program",)),
        "leading_char": LeadingCharFilter(JA_PUNCTUATION, ascii_only=False) if ja
        else LeadingCharFilter(string.punctuation, ascii_only=True),
        "template_leftover": TemplateLeftoverFilter(),
        "refusal": RefusalFilter(),
        "repetition": RepetitionFilter(s.repetition_max_ratio, length_unit(language)),
        "pii": PiiFilter(),
    }
    return [candidates[name] for name in INSTRUCTION_ORDER if s.enabled(name)]


def first_drop(filters: Sequence[Filter], text: str) -> Drop | None:
    """Run the chain in order; the first filter that objects decides the reason."""
    for flt in filters:
        drop = flt.check(text)
        if drop is not None:
            return drop
    return None
