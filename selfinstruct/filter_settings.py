"""Which filters run and their thresholds: `FilterSettings`, the ``[filters]`` table of a run.

Also the declared order of each chain (`INSTRUCTION_ORDER`, `INSTANCE_ORDER`): the first
filter that objects names the reason, so the order is part of the contract and is fixed
here, not left to configuration. The filters themselves are in selfinstruct.text_filters,
selfinstruct.pii and selfinstruct.instance_filters; selfinstruct.filters is the front door.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.validation import BOOLEAN, Rule, integer, one_of, refuse_unknown

INSTRUCTION_ORDER = (
    "language", "length", "blacklist", "program_request", "leading_char",
    "template_leftover", "refusal", "repetition", "pii",
)
INSTANCE_ORDER = (
    "empty_output", "input_equals_output", "ends_with_colon", "duplicate_instance",
    "template_leftover", "refusal", "repetition", "output_language", "output_length", "pii",
    "conflicting_outputs",
)
PII_MODES = ("drop", "mask", "off")


@dataclass(frozen=True)
class FilterSettings:
    """Which filters run and their thresholds: the ``[filters]`` table of a run config.

    Lengths are words for English and characters (without spaces) for Japanese, because
    Japanese is written without spaces between words.
    """

    language: bool = True
    length: bool = True
    min_words: int = 3  # an English instruction needs more than this many words
    max_words: int = 150
    min_chars: int = 5  # a Japanese instruction needs more than this many characters
    max_chars: int = 300
    blacklist: bool = True
    program_request: bool = True
    leading_char: bool = True
    template_leftover: bool = True
    refusal: bool = True
    repetition: bool = True
    # Share of repeated word 3-grams (English) or character 5-grams (Japanese) above which
    # a text is looping. Hand-written seeds and fluent model text stay well below 0.3.
    repetition_max_ratio: float = 0.3
    input_equals_output: bool = True
    ends_with_colon: bool = True
    duplicate_instance: bool = True
    conflicting_outputs: bool = True
    output_language: bool = True
    output_length: bool = True
    output_max_words: int = 1000
    output_max_chars: int = 3000
    pii: str = "drop"  # "drop" | "mask" | "off"
    # LLM checks (selfinstruct.quality): they cost requests, so they are opt-in.
    consistency: bool = False
    consistency_temperature: float = 0.7
    judge_model: str | None = None  # None: no judge
    judge_min_score: int = 3  # both scores (1-5) must reach this
    # Confidence (selfinstruct.confidence, with --confidence): an answer whose geometric-mean
    # token probability, exp(mean token log-prob), is below this is dropped (low_confidence).
    # A probability in (0, 1], so it means the same for short and long answers. None: the
    # figures are recorded, nothing is dropped for them.
    min_confidence: float | None = None
    # Multi-model agreement (--verify-model): the share in [0, 1] of verifiers that must agree
    # with an answer; below it the answer is dropped (models_disagree). None: record only.
    min_agreement: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> FilterSettings:
        """Validated settings from a config table; a bad key raises a one-line InputError.

        `where` names the source, e.g. ``run.toml: [filters]``.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a table of filter settings")
        refuse_unknown(data, _RULES, where, "filter setting")
        settings = cls(**{key: _RULES[key].coerce(value, f"{where}: field '{key}'")
                          for key, value in data.items()})
        for low, high, unit in (("min_words", "max_words", "words"),
                                ("min_chars", "max_chars", "characters")):
            if getattr(settings, low) >= getattr(settings, high):
                raise InputError(f"{where}: field '{low}': must be below {high} "
                                 f"({getattr(settings, low)} >= {getattr(settings, high)} {unit})")
        return settings

    def to_mapping(self) -> dict[str, Any]:
        """The settings as stored in journals and manifests."""
        return dataclasses.asdict(self)

    def enabled(self, name: str) -> bool:
        """Whether the filter `name` of a chain runs (``pii`` runs as a filter in drop mode)."""
        if name == "pii":
            return self.pii == "drop"
        return bool(getattr(self, name))


# Each setting's rule (selfinstruct.validation); a setting not listed is an on/off switch.
_RULES: dict[str, Rule] = {f.name: BOOLEAN for f in dataclasses.fields(FilterSettings)} | {
    "min_words": integer(0, 10_000),
    "max_words": integer(1, 100_000),
    "min_chars": integer(0, 10_000),
    "max_chars": integer(1, 100_000),
    "output_max_words": Rule(int, lambda v: v >= 1, "must be a positive integer"),
    "output_max_chars": Rule(int, lambda v: v >= 1, "must be a positive integer"),
    "repetition_max_ratio": Rule(float, lambda v: 0 < v < 1, "must be a number in (0, 1)"),
    "consistency_temperature": Rule(float, lambda v: 0 < v <= 2, "must be a number in (0, 2] "
                                    "(0 would repeat the first answer)"),
    "judge_min_score": integer(1, 5),
    "judge_model": Rule(str, lambda v: bool(v.strip()), "must be a model name", optional=True),
    "pii": one_of(PII_MODES),
    "min_confidence": Rule(float, lambda v: 0 < v <= 1, "must be a probability in (0, 1] "
                           "(the geometric-mean token probability an answer must reach)",
                           optional=True),
    "min_agreement": Rule(float, lambda v: 0 <= v <= 1, "must be a share in [0, 1] (of the "
                          "verifiers that must agree)", optional=True),
}
