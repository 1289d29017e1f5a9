"""`LanguageProfile`: everything the pipeline treats differently per data language, in one place.

Filters, the novelty index, the report and the engine ask the profile instead of testing a
language code, so a new language is a new profile module plus a registry line (and a prompts
folder): nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from selfinstruct.tokenizers import Tokenizer

# One instruction's (verb, object) in dictionary form for the report; None where there is none.
VerbAnalyser = Callable[[str], tuple[str | None, str | None]]
# The detail of a language-mismatch drop for a text, or None if the text fits the language.
ScriptCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class LanguageProfile:
    """One data language: lengths, instruction filters, similarity, detection and report."""

    code: str  # the value of --language and of the manifest's "language"
    name: str  # shown in the report ("English")
    prompts_folder: str  # prompts/<folder>/ holds this language's templates and labels.json
    # Lengths: "words" (split on whitespace) or "chars" (characters without whitespace); the
    # limits of each unit are FilterSettings' (min_words/max_words or min_chars/max_chars).
    length_unit: str
    unit_label: str  # the unit as the report writes it ("words", "characters")
    # Instruction filters (Self-Instruct's set, adapted per language).
    blacklist: tuple[str, ...]  # regular expressions a text-only model cannot carry out
    blacklist_whole_words: bool  # match at word boundaries (scripts with spaces)
    program_prefixes: tuple[str, ...]  # "Write a program…": cannot be checked by reading
    leading_punctuation: str  # a text starting with one of these is list debris
    ascii_start_only: bool  # Self-Instruct's English rule: a non-ASCII first character drops
    capitalise_first: bool  # Self-Instruct upper-cases an English instruction's first letter
    # Language checks: the detail of a mismatch for an instruction / an output, or None.
    instruction_mismatch: ScriptCheck
    output_mismatch: ScriptCheck
    # A task whose instruction or input matches this asks for another language or for code,
    # so its outputs are not held to this language.
    other_language_asked: re.Pattern[str]
    # Detection: is this text mainly in this language? None: the fallback language.
    recognises: Callable[[str], bool] | None
    # Similarity: the ROUGE-L tokens (selfinstruct.tokenizers) and the measured default
    # threshold above which a candidate is a near-duplicate.
    tokenizer: Tokenizer
    rouge_threshold: float
    # Words in every language's data: the field labels of the prompt formats (labels.json and
    # Alpaca's "Response"), which left in a text are scaffolding, and refusal / "as an AI"
    # phrases (regular expressions). Models drift between languages, so the filters look for
    # the words of every registered language in every dataset.
    field_labels: tuple[str, ...]
    refusal_patterns: tuple[str, ...]
    # Parsing: words models write for fields (besides labels.json's own), for example and task
    # markers. The parsers accept those of every registered language, for the same reason.
    label_words: dict[str, tuple[str, ...]]  # "input" | "output" | "class_label" | "instruction"
    example_words: tuple[str, ...]
    task_words: tuple[str, ...]
    # Report: the Self-Instruct paper's verb-noun view of an instruction.
    leading_verb: VerbAnalyser
