"""English: Self-Instruct's own rules (word counts, ASCII start, Alpaca's keyword list),
rouge_score's tokenizer bit for bit, and Alpaca's ROUGE-L threshold 0.7."""

from __future__ import annotations

import re
import string

from selfinstruct.languages.base import LanguageProfile
from selfinstruct.languages.en_verbs import english_verb
from selfinstruct.languages.scripts import japanese_share
from selfinstruct.tokenizers import tokenize_rouge_score

# Alpaca's list: tasks a text-only model cannot carry out. Matched as whole words.
BLACKLIST_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map",
    "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)
# A task asking for Japanese/CJK or a translation may be answered in another script.
OTHER_LANGUAGE_ASKED = re.compile(r"japanese|chinese|korean|kanji|hiragana|katakana|translat",
                                  re.IGNORECASE)
_MAX_CJK_SHARE = 0.3
# Refusals and talk about being a model: phrases no task content needs.
REFUSALS = (
    r"\bas an ai\b", r"\bas a(?:n ai)? language model\b", r"\bi(?: am|'m) (?:just |only )?an ai\b",
    r"\bmy (?:knowledge|training) (?:cutoff|cut-off|data)\b",
    r"\bi(?: cannot| can't| can not| am unable to|'m unable to| am not able to) "
    r"(?:help|assist|fulfil|fulfill|comply|provide|complete|answer|generate|browse|access)"
    r"(?: with)? (?:that|this|your|the request|such)\b",
    r"\bi don't have (?:access to|the ability to|personal)\b",
    r"\bi do not have (?:access to|the ability to|personal)\b",
)


def instruction_mismatch(text: str) -> str | None:
    """An English instruction is not mostly Japanese/CJK."""
    share = japanese_share(text)
    if share > _MAX_CJK_SHARE:
        return f"{share:.0%} of its letters are Japanese/CJK (the dataset is English)"
    return None


def output_mismatch(text: str) -> str | None:
    """An English output is not mostly Japanese/CJK."""
    share = japanese_share(text)
    if share > _MAX_CJK_SHARE:
        return f"output is {share:.0%} Japanese/CJK"
    return None


PROFILE = LanguageProfile(
    code="en",
    name="English",
    prompts_folder="en",
    length_unit="words",
    unit_label="words",
    blacklist=tuple(re.escape(word) for word in BLACKLIST_WORDS),
    blacklist_whole_words=True,
    program_prefixes=("Write a program",),
    leading_punctuation=string.punctuation,
    ascii_start_only=True,
    capitalise_first=True,
    instruction_mismatch=instruction_mismatch,
    output_mismatch=output_mismatch,
    other_language_asked=OTHER_LANGUAGE_ASKED,
    recognises=None,  # the fallback: seeds that are not mainly another language are English
    tokenizer=tokenize_rouge_score,
    rouge_threshold=0.7,
    field_labels=("Instruction", "Input", "Output", "Response", "Class label"),
    label_words={"input": ("Input",), "output": ("Output",),
                 "class_label": ("Class label", "Class", "Label"),
                 "instruction": ("Instruction",)},
    example_words=("Example", "Instance"),
    task_words=("Task",),
    refusal_patterns=REFUSALS,
    leading_verb=english_verb,
)
