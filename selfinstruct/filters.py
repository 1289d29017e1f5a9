"""Heuristic filters for instructions and instances; each drop carries a reason and a detail.

Following datatrove's design, each filter is a small object whose `check` returns None to
keep a candidate or a `Drop(reason, detail)`; the pipeline records every drop in
``rejected.jsonl`` and counts it in the manifest's funnel, so nothing disappears silently.
The detail says what was wrong with this candidate (which keyword, how many words against
which limit, which kind of personal data), never empty.

The English set is Self-Instruct's (with Alpaca's longer keyword list). Several of its rules
are wrong for Japanese — word counts (Japanese has no spaces), "starts with a non-ASCII
character" (every Japanese sentence does) — so Japanese gets character counts, no ASCII rule
and its own keyword list. Each language's rules live in its profile (selfinstruct.languages).

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

from collections.abc import Sequence

from selfinstruct import languages
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
    length_limits,
    repetition_ratio,
    text_length,
)

__all__ = [
    "INSTANCE_ORDER", "INSTRUCTION_ORDER", "PII_MODES", "Drop", "Filter", "FilterSettings",
    "InstanceFilter", "filter_instances", "find_leftover", "find_pii", "first_drop",
    "instance_filters", "instruction_filters", "mask_pii", "repetition_ratio", "text_length",
]


def instruction_filters(language: str, *, settings: FilterSettings | None = None) -> list[Filter]:
    """The declared, ordered filter chain for instructions of `language` (INSTRUCTION_ORDER),
    each rule taken from the language's profile (selfinstruct.languages)."""
    s = settings or FilterSettings()
    profile = languages.get(language)
    unit = profile.length_unit
    shortest, longest, _ = length_limits(s, unit)
    candidates: dict[str, Filter] = {
        "language": LanguageFilter(profile),
        "length": LengthFilter(shortest, longest, unit),
        "blacklist": KeywordFilter(profile.blacklist, whole_words=profile.blacklist_whole_words),
        "program_request": PrefixFilter(profile.program_prefixes),
        "leading_char": LeadingCharFilter(profile.leading_punctuation,
                                          ascii_only=profile.ascii_start_only),
        "template_leftover": TemplateLeftoverFilter(),
        "refusal": RefusalFilter(),
        "repetition": RepetitionFilter(s.repetition_max_ratio, unit),
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
