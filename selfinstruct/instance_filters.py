"""The instance chain: Self-Instruct's instance filters plus the content filters, per task.

Per instance, in `INSTANCE_ORDER`: the parser's own reason (truncated, no_output_field, …),
empty_output, input_equals_output, ends_with_colon, duplicate_instance, template_leftover,
refusal, repetition, output_language, output_length, pii; then per task: conflicting_outputs
and the instance limit. Every drop names what was wrong with this instance in its detail.
Each per-instance check is an `InstanceFilter` object (keep = None, or a `Drop`), Self-Instruct's
own rules included, so the chain is one list run in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from selfinstruct import languages
from selfinstruct.filter_settings import INSTANCE_ORDER, FilterSettings
from selfinstruct.languages import LanguageProfile
from selfinstruct.parse_text import ParsedInstance, snippet
from selfinstruct.pii import PiiFilter, mask_pii
from selfinstruct.text_filters import (
    Drop,
    Filter,
    LengthFilter,
    RefusalFilter,
    RepetitionFilter,
    find_leftover,
    length_limits,
)

_MIN_LETTERS_TO_JUDGE_LANGUAGE = 10  # labels, names and numbers are no evidence


@dataclass(frozen=True)
class OutputLanguageFilter:
    """Outputs are in the dataset's language, as its profile judges (a Japanese dataset's
    are Japanese, an English one's not mostly CJK).

    Short outputs (labels, names, numbers) are not judged, and neither are tasks whose
    instruction or input asks for another language or for code (translations, romanisation):
    the profile's `other_language_asked`.
    """

    profile: LanguageProfile

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        letters = sum(ch.isalpha() for ch in inst.output)
        if letters < _MIN_LETTERS_TO_JUDGE_LANGUAGE:
            return None
        asked = self.profile.other_language_asked
        if asked.search(instruction) or asked.search(inst.input):
            return None
        detail = self.profile.output_mismatch(inst.output)
        if detail:
            return Drop("output_language_mismatch", detail)
        return None


@dataclass(frozen=True)
class InstanceLeftoverFilter:
    """Scaffolding in an input or output: the model ran on into the next field or item."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        for name in ("input", "output"):
            found = find_leftover(getattr(inst, name), instruction=False, context=instruction)
            if found:
                return Drop("template_leftover", f"{name}: contains prompt scaffolding {found!r}")
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


class ParserReasonFilter:
    """The parser's own verdict on the item (truncated, no_output_field, …) comes first."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        if inst.reason:
            return Drop(inst.reason, inst.detail or f"the parser rejected it ({inst.reason})")
        return None


class EmptyOutputFilter:
    """An instance without an output teaches nothing (always on)."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        if not inst.output.strip():
            return Drop("empty_output", "the output is empty")
        return None


class InputEqualsOutputFilter:
    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        if inst.input.strip() == inst.output.strip():
            return Drop("input_equals_output",
                        f"the output repeats the input: {snippet(inst.output, 60)!r}")
        return None


class EndsWithColonFilter:
    """A field ending with a colon is unfinished (the model stopped at the next label)."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        for name in ("input", "output"):
            if getattr(inst, name).rstrip().endswith((":", "：")):
                return Drop("ends_with_colon", f"the {name} ends with a colon (an unfinished "
                                               f"field): {snippet(getattr(inst, name), 60)!r}")
        return None


class DuplicateInstanceFilter:
    """The same input and output as an instance kept earlier for this task.

    Per task: `filter_instances` builds one for each call and adds every kept instance.
    """

    def __init__(self) -> None:
        self.kept: set[tuple[str, str]] = set()

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None:
        if (inst.input, inst.output) in self.kept:
            return Drop("duplicate_instance",
                        "the same input and output as an earlier instance of this task")
        return None


class InstanceFilter(Protocol):
    """A check on one instance of a task (the instruction gives context)."""

    def check(self, instruction: str, inst: ParsedInstance) -> Drop | None: ...


def instance_filters(
    language: str, *, settings: FilterSettings | None = None
) -> list[InstanceFilter]:
    """The content filters of the instance chain, in INSTANCE_ORDER (see `filter_instances`)."""
    s = settings or FilterSettings()
    profile = languages.get(language)
    unit = profile.length_unit
    _, _, max_output = length_limits(s, unit)
    candidates: dict[str, InstanceFilter] = {
        "template_leftover": InstanceLeftoverFilter(),
        # Inputs quote other people's text, apologies included: only outputs speak for the model.
        "refusal": _FieldsFilter(RefusalFilter(), ("output",)),
        "repetition": _FieldsFilter(RepetitionFilter(s.repetition_max_ratio, unit)),
        "output_language": OutputLanguageFilter(profile),
        "output_length": _FieldsFilter(LengthFilter(-1, max_output, unit), ("output",)),
        "pii": _FieldsFilter(PiiFilter()),
    }
    return [candidates[name] for name in INSTANCE_ORDER
            if name in candidates and s.enabled(name)]


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
        language = languages.detect([instruction] if instruction else
                                    [inst.output for inst in instances]).code
    duplicates = DuplicateInstanceFilter()
    rules: dict[str, InstanceFilter] = {"input_equals_output": InputEqualsOutputFilter(),
                                        "ends_with_colon": EndsWithColonFilter(),
                                        "duplicate_instance": duplicates}
    chain: list[InstanceFilter] = [
        ParserReasonFilter(), EmptyOutputFilter(),
        *(rules[name] for name in INSTANCE_ORDER if name in rules and s.enabled(name)),
        *instance_filters(language, settings=s)]
    kept: list[ParsedInstance] = []
    dropped: list[tuple[ParsedInstance, Drop]] = []
    for original in instances:
        inst = dataclasses.replace(original, input=mask_pii(original.input, s),
                                   output=mask_pii(original.output, s))
        drop = next((d for d in (flt.check(instruction, inst) for flt in chain) if d), None)
        if drop:
            dropped.append((inst, drop))
        else:
            duplicates.kept.add((inst.input, inst.output))
            kept.append(inst)
    outputs_by_input: dict[str, list[str]] = {}
    for inst in kept:
        if inst.input and inst.output not in outputs_by_input.setdefault(inst.input, []):
            outputs_by_input[inst.input].append(inst.output)
    conflicts = {input_: outputs for input_, outputs in outputs_by_input.items()
                 if len(outputs) > 1}
    if s.conflicting_outputs and conflicts:
        input_, outputs = next(iter(conflicts.items()))
        detail = (f"the input {snippet(input_, 40)!r} has {len(outputs)} different outputs "
                  f"({', '.join(repr(snippet(o, 30)) for o in outputs[:3])}), so none of "
                  f"this task's {len(kept)} instances can be trusted")
        return [], dropped + [(inst, Drop("conflicting_outputs", detail)) for inst in kept]
    for inst in kept[max_instances:]:
        dropped.append((inst, Drop("over_instance_limit",
                                   f"the task already has {max_instances} instances "
                                   f"(max_instances = {max_instances})")))
    return kept[:max_instances], dropped
