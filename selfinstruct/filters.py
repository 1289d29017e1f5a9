"""Heuristic filters for instructions and instances; each drop carries a reason.

Following datatrove's design, each filter is a small object whose `check` returns None to
keep a candidate or a `Drop(reason, detail)`; the pipeline records every drop in
``rejected.jsonl`` and counts it in the manifest's funnel, so nothing disappears silently.

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
contract and is fixed here, not left to configuration):

Instructions (`INSTRUCTION_ORDER`): language, length, blacklist, program_request,
leading_char, template_leftover, refusal, repetition, pii.

Instances (`INSTANCE_ORDER`), per instance: the parser's own reason (truncated, …),
empty_output, input_equals_output, ends_with_colon, duplicate_instance, template_leftover,
refusal, repetition, output_language, output_length, pii; then per task: conflicting_outputs
and the instance limit.

Personal data in ``mask`` mode is not a drop: `mask_pii` rewrites the text (``[EMAIL]``,
``[PHONE]``, ``[CARD]``) before the chain runs, and `filter_instances` does the same for
inputs and outputs.
"""

from __future__ import annotations

import dataclasses
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from selfinstruct._errors import InputError
from selfinstruct.language import detect_language, japanese_share
from selfinstruct.parsing import ParsedInstance

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


class Filter(Protocol):
    """A check on one text: None keeps it, a `Drop` says why it goes."""

    def check(self, text: str) -> Drop | None: ...


@dataclass(frozen=True)
class Drop:
    """Why a candidate was dropped: a stable `reason` (counted) and a human `detail`."""

    reason: str
    detail: str = ""


# --------------------------------------------------------------------------- settings


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

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> FilterSettings:
        """Validated settings from a config table; a bad key raises a one-line InputError.

        `where` names the source, e.g. ``run.toml: [filters]``.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a table of filter settings")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                raise InputError(f"{where}: field '{key}': unknown filter setting "
                                 f"(known: {', '.join(fields)})")
            values[key] = _checked(key, value, where)
        settings = cls(**values)
        for low, high, unit in (("min_words", "max_words", "words"),
                                ("min_chars", "max_chars", "characters")):
            if getattr(settings, low) >= getattr(settings, high):
                raise InputError(f"{where}: field '{low}': must be below {high} "
                                 f"({getattr(settings, low)} >= {getattr(settings, high)} {unit})")
        return settings

    def to_mapping(self) -> dict[str, Any]:
        """The settings as stored in journals and manifests."""
        return dataclasses.asdict(self)


# key: (check, message) — each setting's type and range.
_SETTING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "min_words": (lambda v: _is_int(v) and 0 <= v <= 10_000, "an integer from 0 to 10000"),
    "max_words": (lambda v: _is_int(v) and 1 <= v <= 100_000, "an integer from 1 to 100000"),
    "min_chars": (lambda v: _is_int(v) and 0 <= v <= 10_000, "an integer from 0 to 10000"),
    "max_chars": (lambda v: _is_int(v) and 1 <= v <= 100_000, "an integer from 1 to 100000"),
    "output_max_words": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "output_max_chars": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "repetition_max_ratio": (lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "consistency_temperature": (lambda v: _is_number(v) and 0 < v <= 2,
                                "a number in (0, 2] (0 would repeat the first answer)"),
    "judge_min_score": (lambda v: _is_int(v) and 1 <= v <= 5, "an integer from 1 to 5"),
    "judge_model": (lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
                    "a model name"),
    "pii": (lambda v: v in PII_MODES, f"one of {', '.join(PII_MODES)}"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked(key: str, value: Any, where: str) -> Any:
    check, message = _SETTING_RULES.get(key, (lambda v: isinstance(v, bool), "true or false"))
    if not check(value):
        raise InputError(f"{where}: field '{key}': must be {message} (got {value!r})")
    return float(value) if key in ("repetition_max_ratio", "consistency_temperature") else value


# --------------------------------------------------------------------------- the filters


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


# Field labels of the prompt formats (prompts/*/labels.json and Alpaca's "### Response").
# At the start of a line and followed by a colon they are the template, not content: the
# model continued into the next item or merged two fields. "Task" and "Example" are left
# out on purpose: "Example 1:" is a normal way to answer "give three examples".
_FIELD_LABELS = (
    "Instruction", "Input", "Output", "Response", "Class label",
    "指示", "入力", "出力", "応答", "クラスラベル",
)
_LABELS = "|".join(map(re.escape, _FIELD_LABELS))
# In inputs and outputs a label counts at the start of a line; instructions are one line
# (the parser collapses whitespace), so there it counts after any space or sentence end.
_LABEL_LINE = re.compile(rf"^[ \t>*_#]*(?P<label>{_LABELS})[ \t]*[:：]",
                         re.IGNORECASE | re.MULTILINE)
_LABEL_INLINE = re.compile(rf"(?:^|(?<=[\s.?!。？！]))[>*_#]*\s*(?P<label>{_LABELS})\s*[:：]",
                           re.IGNORECASE)
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
    mentioned = context.lower()
    for match in (_LABEL_INLINE if instruction else _LABEL_LINE).finditer(text):
        if match.group("label").lower() not in mentioned:
            return match.group(0).strip()
    match = _MARKERS.search(text) or (_MERGED.search(text) if instruction else None)
    return match.group(0).strip() if match else None


@dataclass(frozen=True)
class TemplateLeftoverFilter:
    """Prompt scaffolding left in an instruction: field labels, ``###``, ``<noinput>``, and
    list numbers, which mark two instructions merged into one."""

    def check(self, text: str) -> Drop | None:
        found = find_leftover(text, instruction=True)
        return Drop("template_leftover", f"contains {found!r}") if found else None


@dataclass(frozen=True)
class InstanceLeftoverFilter:
    """Scaffolding in an input or output: the model ran on into the next field or item."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        for name in ("input", "output"):
            found = find_leftover(getattr(inst, name), instruction=False, context=instruction)
            if found:
                return Drop("template_leftover", f"{name}: contains {found!r}")
        return None


# Refusals and talk about being a model. Anywhere in the text: phrases no task content needs.
_META = (
    r"\bas an ai\b", r"\bas a(?:n ai)? language model\b", r"\bi(?: am|'m) (?:just |only )?an ai\b",
    r"\bmy (?:knowledge|training) (?:cutoff|cut-off|data)\b",
    r"\bi(?: cannot| can't| can not| am unable to|'m unable to| am not able to) "
    r"(?:help|assist|fulfil|fulfill|comply|provide|complete|answer|generate|browse|access)"
    r"(?: with)? (?:that|this|your|the request|such)\b",
    r"\bi don't have (?:access to|the ability to|personal)\b",
    r"\bi do not have (?:access to|the ability to|personal)\b",
    r"AIとして", r"AIアシスタントとして", r"言語モデルとして", r"私は(?:AI|ＡＩ|人工知能)",
    r"(?:お答え|回答|お手伝い|対応)(?:することが)?(?:でき|出来)(?:ません|かねます)",
    r"申し訳(?:あり|ござい)ませんが、?(?:その|この|ご)?(?:ご?依頼|リクエスト|質問)",
)
_META_RE = re.compile("|".join(_META), re.IGNORECASE)


@dataclass(frozen=True)
class RefusalFilter:
    """Refusals and "As an AI…" meta text: not an answer, and harmful to train on.

    Only phrases about the model itself count, so an output that *is* an apology ("I'm
    sorry I missed your party") is kept.
    """

    def check(self, text: str) -> Drop | None:
        match = _META_RE.search(text)
        return Drop("refusal", f"contains {match.group(0)!r}") if match else None


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


# --------------------------------------------------------------------------- personal data

# Reserved for documentation (RFC 2606/6761): addresses there belong to nobody.
_EXAMPLE_DOMAIN = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test"
                             r"|invalid))$", re.IGNORECASE)
_PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    # Digits next to Japanese text have no \b between them, hence the lookarounds.
    "phone": re.compile(
        r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,3}(?!\d)"
        r"|(?<![\d-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\d-])"  # North American 555-123-4567
        r"|(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])"  # Japanese 03-1234-5678, 090-…
    ),
    "card": re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
}
# Real numbers have 10+ digits with the area code; fewer are dates ("01-02-2023") or codes.
_MIN_PHONE_DIGITS = 10
_PII_MASKS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}


def _luhn_ok(number: str) -> bool:
    """The payment-card checksum: a random 16-digit number passes only 1 time in 10."""
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, re.Match[str]]]:
    """(kind, match) for each email, phone number and card-like number in `text`."""
    found = []
    for kind, pattern in _PII_PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(0)
            if (
                (kind == "email" and _EXAMPLE_DOMAIN.search(value))
                or (kind == "phone" and sum(ch.isdigit() for ch in value) < _MIN_PHONE_DIGITS)
                or (kind == "card" and not _luhn_ok(value))
            ):
                continue
            found.append((kind, match))
    return found


@dataclass(frozen=True)
class PiiFilter:
    """Drop texts with an email address, phone number or payment-card-like number."""

    def check(self, text: str) -> Drop | None:
        found = find_pii(text)
        if not found:
            return None
        kinds = sorted({kind for kind, _ in found})
        return Drop("pii", f"contains {', '.join(kinds)}")  # never repeat the value itself


def mask_pii(text: str, settings: FilterSettings | None = None) -> str:
    """Replace personal data with ``[EMAIL]``/``[PHONE]``/``[CARD]`` in ``mask`` mode.

    In ``drop`` or ``off`` mode the text is returned unchanged (the chain drops it, or
    nobody looks). Overlapping finds (a card number that also looks like a phone number)
    are masked once, by the earliest and longest.
    """
    if (settings or FilterSettings()).pii != "mask":
        return text
    spans = sorted(((m.start(), -m.end(), kind) for kind, m in find_pii(text)))
    out, position = [], 0
    for start, neg_end, kind in spans:
        if start < position:
            continue
        out += [text[position:start], _PII_MASKS[kind]]
        position = -neg_end
    return "".join(out) + text[position:]


# --------------------------------------------------------------------------- instruction chain

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


def _unit(language: str) -> str:
    return "chars" if language == "ja" else "words"


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
        "repetition": RepetitionFilter(s.repetition_max_ratio, _unit(language)),
        "pii": PiiFilter(),
    }
    return [candidates[name] for name in INSTRUCTION_ORDER if _enabled(s, name)]


def _enabled(settings: FilterSettings, name: str) -> bool:
    if name == "pii":
        return settings.pii == "drop"
    return bool(getattr(settings, name))


def first_drop(filters: Sequence[Filter], text: str) -> Drop | None:
    """Run the chain in order; the first filter that objects decides the reason."""
    for flt in filters:
        drop = flt.check(text)
        if drop is not None:
            return drop
    return None


# --------------------------------------------------------------------------- instance chain

# An output in another script is right when the task asks for it: translations, code,
# romanisation. Then the language rule does not apply.
_OTHER_LANGUAGE_ASKED = {
    "ja": re.compile(r"英語|英訳|英文|英単語|翻訳|訳し|訳して|ローマ字|アルファベット|スペル|略語|"
                     r"コード|プログラム|関数|正規表現|SQL|Python|JavaScript|HTML|English",
                     re.IGNORECASE),
    "en": re.compile(r"japanese|chinese|korean|kanji|hiragana|katakana|translat", re.IGNORECASE),
}
_MIN_LETTERS_TO_JUDGE_LANGUAGE = 10  # labels, names and numbers are no evidence


@dataclass(frozen=True)
class OutputLanguageFilter:
    """A Japanese dataset's outputs are Japanese, an English one's are not mostly CJK.

    Short outputs (labels, names, numbers) are not judged, and neither are tasks whose
    instruction or input asks for another language or for code.
    """

    language: str

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        letters = sum(ch.isalpha() for ch in inst.output)
        if letters < _MIN_LETTERS_TO_JUDGE_LANGUAGE:
            return None
        asked = _OTHER_LANGUAGE_ASKED["ja" if self.language == "ja" else "en"]
        if asked.search(instruction) or asked.search(inst.input):
            return None
        share = japanese_share(inst.output)
        if self.language == "ja" and share < 0.1:
            return Drop("output_language_mismatch", f"output is {share:.0%} Japanese")
        if self.language != "ja" and share > 0.3:
            return Drop("output_language_mismatch", f"output is {share:.0%} Japanese/CJK")
        return None


class _FieldsFilter:
    """A text filter applied to an instance's input and output, naming the field it hit."""

    def __init__(self, inner: Filter, fields: tuple[str, ...] = ("input", "output")) -> None:
        self.inner = inner
        self.fields = fields

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        for name in self.fields:
            drop = self.inner.check(getattr(inst, name))
            if drop is not None:
                return Drop(drop.reason, f"{name}: {drop.detail}" if drop.detail else name)
        return None


class InstanceFilter(Protocol):
    """A check on one instance of a task (the instruction gives context)."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None: ...


def instance_filters(
    language: str, *, settings: FilterSettings | None = None
) -> list[InstanceFilter]:
    """The content filters of the instance chain, in INSTANCE_ORDER (see `filter_instances`)."""
    s = settings or FilterSettings()
    unit = _unit(language)
    max_output = s.output_max_chars if unit == "chars" else s.output_max_words
    candidates: dict[str, InstanceFilter] = {
        "template_leftover": InstanceLeftoverFilter(),
        # Inputs quote other people's text, apologies included: only outputs speak for the model.
        "refusal": _FieldsFilter(RefusalFilter(), ("output",)),
        "repetition": _FieldsFilter(RepetitionFilter(s.repetition_max_ratio, unit)),
        "output_language": OutputLanguageFilter(language),
        "output_length": _FieldsFilter(LengthFilter(-1, max_output, unit), ("output",)),
        "pii": _FieldsFilter(PiiFilter()),
    }
    return [candidates[name] for name in INSTANCE_ORDER
            if name in candidates and _enabled(s, name)]


def filter_instances(
    instances: Sequence[ParsedInstance],
    max_instances: int,
    *,
    instruction: str = "",
    language: str | None = None,
    settings: FilterSettings | None = None,
) -> tuple[list[ParsedInstance], list[tuple[ParsedInstance, Drop]]]:
    """Self-Instruct's instance filters plus the content filters, for one task's instances.

    Returns (kept, dropped-with-reason). In PII ``mask`` mode inputs and outputs are masked
    first, and the kept instances carry the masked text. If one non-empty input appears with
    different outputs the task's instances are unreliable, so all of them are dropped.
    `language` is the dataset's; without it, it is detected from the instruction (or, lacking
    one, the outputs), so a caller that predates it never judges Japanese by English rules.
    """
    s = settings or FilterSettings()
    if language is None:
        language = detect_language([instruction] if instruction else
                                   [inst.output for inst in instances])
    chain = instance_filters(language, settings=s)
    kept: list[ParsedInstance] = []
    dropped: list[tuple[ParsedInstance, Drop]] = []
    seen: set[tuple[str, str]] = set()
    for original in instances:
        inst = ParsedInstance(mask_pii(original.input, s), mask_pii(original.output, s),
                              original.reason)
        drop = _instance_drop(inst, seen, s)
        for flt in chain:
            if drop is not None:
                break
            drop = flt.check(instruction, inst)
        if drop:
            dropped.append((inst, drop))
        else:
            seen.add((inst.input, inst.output))
            kept.append(inst)
    outputs_by_input: dict[str, set[str]] = {}
    for inst in kept:
        if inst.input:
            outputs_by_input.setdefault(inst.input, set()).add(inst.output)
    if s.conflicting_outputs and any(len(outputs) > 1 for outputs in outputs_by_input.values()):
        detail = "the same input has different outputs"
        return [], dropped + [(inst, Drop("conflicting_outputs", detail)) for inst in kept]
    for inst in kept[max_instances:]:
        dropped.append((inst, Drop("over_instance_limit", f"keeps {max_instances} per task")))
    return kept[:max_instances], dropped


def _instance_drop(
    inst: ParsedInstance, seen: set[tuple[str, str]], settings: FilterSettings
) -> Drop | None:
    if inst.reason:
        return Drop(inst.reason)
    if not inst.output.strip():
        return Drop("empty_output")
    if settings.input_equals_output and inst.input.strip() == inst.output.strip():
        return Drop("input_equals_output")
    if settings.ends_with_colon and (inst.input.rstrip().endswith((":", "："))
                                     or inst.output.rstrip().endswith((":", "："))):
        return Drop("ends_with_colon", "input or output ends with ':'")
    if settings.duplicate_instance and (inst.input, inst.output) in seen:
        return Drop("duplicate_instance")
    return None
