"""Reading and checking the turns of a multi-turn conversation (`--turns`, selfinstruct.turns).

Why a module of its own: these are pure functions over text, so every rule a follow-up or a
later answer is judged by can be tested without a model, and the feature module only decides
when to ask and what to record.

A follow-up (the user's next message, written by the model) is judged by the instruction
filters that make sense for a chat message (language, length, template leftovers, refusals,
repetition, personal data; not the Self-Instruct keyword blacklist, "Write a program" or the
leading-character rule, which are about standalone task instructions), then by checks of its
own, each cheap and explainable:

* ``followup_is_answer``: it reads as the assistant's reply ("Sure! Here is …"), not a user
  message: the model answered instead of asking;
* ``copied_prompt``: it repeats our prompt's own words or transcript headings;
* ``followup_repeats_conversation``: it is (nearly) an earlier user message again, by the
  run's ROUGE-L threshold;
* ``followup_ignores_conversation``: it shares no content term with the conversation. The
  prompt asks the model to refer to something specific from the conversation, so a message
  with no word (scripts written with spaces: 4+ letters, not a function word) and no
  two-character kanji or katakana compound in common could have been written without
  reading it ("What is the capital of Australia?"). A follow-up that depends on the
  conversation only through "it" is dropped too: a known, deliberate strictness.

A later answer goes through the instance filters (selfinstruct.instance_filters) with the
follow-up as its instruction, plus ``repeated_answer`` (an earlier assistant message again).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Sequence

from selfinstruct import languages
from selfinstruct.filter_settings import FilterSettings
from selfinstruct.filters import Drop, filter_instances, first_drop, instruction_filters
from selfinstruct.parse_text import ParsedInstance, snippet
from selfinstruct.rouge import rouge_l
from selfinstruct.turn_messages import Message

# Transcript headings of prompts/<lang>/followup.j2 and continue.j2. Completions answers stop
# at the next user heading; both languages' are always used (a Japanese run's model may still
# write an English heading). tests/test_turns.py checks the templates use exactly these.
USER_HEADINGS = ("### User", "### ユーザー")
ASSISTANT_HEADINGS = ("### Assistant", "### アシスタント")

# A label a chat model puts before the message it was asked for ("User: …", "**Follow-up:**",
# "次のメッセージ：…"), read in every language, removed before the checks.
_LABEL = re.compile(
    r"^[ \t>*_#]{0,6}(?:user|the user|next (?:user )?message|user's next message|follow[- ]?up"
    r"(?: message| question)?|ユーザー|ユーザーの(?:次の)?メッセージ|次の(?:ユーザーの)?メッセージ"
    r"|フォローアップ(?:の質問)?)[ \t*_]{0,4}[:：][ \t*_]{0,4}",
    re.IGNORECASE)
# A chat preamble line before the message ("Sure! Here is the user's next message:").
_PREAMBLE = re.compile(r"^[^\n]{0,120}(?:message|follow[- ]?up|メッセージ|フォローアップ)"
                       r"[^\n]{0,40}[:：]\s*\n", re.IGNORECASE)
# What the assistant says, not the user: the model answered instead of asking.
# Only openings a user hardly writes: "Here is my draft: …" or 「以下は私の文章です」 are users'.
_ANSWER_OPENERS = re.compile(
    r"^[ \t*_\"'「]{0,4}(?:sure\b|certainly\b|of course\b|absolutely\b|great question"
    r"|assistant\s*[:：]|もちろんです|承知しました|かしこまりました|以下に(?:説明|まとめ)"
    r"|アシスタント\s*[:：])", re.IGNORECASE)
_USER_LINE = re.compile(r"^[ \t*_]{0,4}(?:user|ユーザー)[ \t*_]{0,4}[:：]", re.IGNORECASE)
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("「", "」"), ("『", "』"))
# English function words of 4+ letters: sharing one of these is no sign of reading the text.
_FUNCTION_WORDS = frozenset((
    "about", "above", "after", "again", "also", "been", "before", "being", "below", "between",
    "both", "could", "does", "doing", "down", "each", "even", "every", "from", "further",
    "give", "have", "having", "here", "just", "know", "like", "make", "more", "most", "much",
    "need", "once", "only", "other", "over", "please", "really", "same", "should", "some",
    "such", "tell", "than", "thank", "thanks", "that", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "under", "until", "very", "want", "were",
    "what", "when", "where", "which", "while", "with", "would", "your", "yours"
))
# Words of scripts written with spaces (letters that are not kana or CJK ideographs).
_SPACED_WORD = re.compile(r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々]{4,}")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々\u30a1-\u30fa\u30fc]{2,}")


def clean_followup(text: str) -> str:
    """The user's message in a follow-up answer: without a chat preamble, a role label, the
    assistant's turn the model ran on into, or quotes around the whole message."""
    text = text.strip()
    fence = re.fullmatch(r"```[^\n]*\n(.*?)\n?```", text, flags=re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    text = _LABEL.sub("", text, count=1).strip()
    first, _, rest = text.partition("\n")
    if first.strip() in USER_HEADINGS:  # the model repeated the heading it was to write under
        text = rest.strip()
    text = cut_at_headings(text, USER_HEADINGS + ASSISTANT_HEADINGS).strip()
    for left, right in _QUOTES:
        if len(text) > 2 and text.startswith(left) and text.endswith(right) \
                and _balanced(text[len(left):-len(right)], left, right):
            return text[len(left):-len(right)].strip()
    return text


def _balanced(inner: str, left: str, right: str) -> bool:
    """Whether quotes around a whole text enclose it (not `"a" or "b"`): the quotes inside
    pair up, and (same mark both sides) the first one inside opens a quotation."""
    if left != right:
        depth = 0
        for char in inner:
            depth += (char == left) - (char == right)
            if depth < 0:
                return False
        return depth == 0
    at = inner.find(left)
    return at < 0 or (inner.count(left) % 2 == 0 and (at == 0 or not inner[at - 1].isalnum()))


def clean_answer(text: str) -> str:
    """An assistant answer, without the next user turn a completions model ran on into (a
    user heading, or a "User:" line)."""
    lines = cut_at_headings(text.strip(), USER_HEADINGS).split("\n")
    for index, line in enumerate(lines):
        if _USER_LINE.match(line):
            lines = lines[:index]
            break
    return "\n".join(lines).strip()


def cut_at_headings(text: str, headings: Sequence[str]) -> str:
    """`text` up to the first line that starts with one of `headings`."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip().startswith(tuple(headings)):
            return "\n".join(lines[:index])
    return text


def content_terms(text: str) -> set[str]:
    """What a text is about, for the overlap check: words of 4+ letters (scripts written with
    spaces) that are not function words, and every two-character kanji/katakana pair of a
    compound."""
    text = unicodedata.normalize("NFKC", text).lower()
    terms = {w for w in _SPACED_WORD.findall(text) if w not in _FUNCTION_WORDS}
    for run in _CJK_RUN.findall(text):
        terms.update(run[i:i + 2] for i in range(len(run) - 1))
    return terms


def user_turn_filters(language: str, settings: FilterSettings) -> list:
    """The instruction filters that apply to a chat message (see the module docstring)."""
    chat = dataclasses.replace(settings, blacklist=False, program_request=False,
                               leading_char=False)
    return instruction_filters(language, settings=chat)


def check_followup(message: str, conversation: Sequence[Message], prompt: str,
                   language: str, filters: list) -> Drop | None:
    """Keep (None) or drop a cleaned follow-up of `conversation` asked for with `prompt`."""
    drop = first_drop(filters, message)
    if drop is not None:
        return drop
    if _ANSWER_OPENERS.search(message):
        return Drop("followup_is_answer", f"reads as the assistant's reply, not a user "
                                          f"message: {snippet(message, 60)!r}")
    copied = _copied_prompt_line(message, prompt)
    if copied:
        return Drop("copied_prompt", f"repeats the prompt's own words {snippet(copied, 60)!r}")
    threshold = languages.get(language).rouge_threshold
    for earlier in (m["content"] for m in conversation if m["role"] == "user"):
        score = rouge_l(message, earlier, language)
        if score > threshold:
            return Drop("followup_repeats_conversation",
                        f"rouge_l={score:.4f} > {threshold} vs the earlier user message "
                        f"{snippet(earlier, 60)!r}")
    said = set().union(*(content_terms(m["content"]) for m in conversation))
    if not content_terms(message) & said:
        return Drop("followup_ignores_conversation",
                    f"shares no content word with the conversation: {snippet(message, 60)!r}")
    return None


def _copied_prompt_line(message: str, prompt: str) -> str | None:
    """The first line of our prompt's instructions (before the transcript) found in
    `message`, or a transcript heading."""
    for heading in USER_HEADINGS + ASSISTANT_HEADINGS:
        if heading in message:
            return heading
    for line in prompt.split("\n"):
        if line.strip().startswith(USER_HEADINGS + ASSISTANT_HEADINGS):
            break
        if len(line.strip()) >= 20 and line.strip() in message:
            return line.strip()
    return None


def check_answer(answer: str, truncated: bool, followup: str,
                 conversation: Sequence[Message], language: str,
                 settings: FilterSettings) -> tuple[str, Drop | None]:
    """The answer as kept (PII masked in mask mode) and its drop, if any."""
    parsed = ParsedInstance("", answer, "truncated" if truncated else None,
                            "the answer was cut off at max_tokens" if truncated else "")
    kept, dropped = filter_instances([parsed], 1, instruction=followup, language=language,
                                     settings=settings)
    if dropped:
        return answer, dropped[0][1]
    answer = kept[0].output
    threshold = languages.get(language).rouge_threshold
    for earlier in (m["content"] for m in conversation if m["role"] == "assistant"):
        score = rouge_l(answer, earlier, language)
        if score > threshold:
            return answer, Drop("repeated_answer",
                                f"rouge_l={score:.4f} > {threshold} vs the earlier answer "
                                f"{snippet(earlier, 60)!r}")
    return answer, None
