"""The rules every turn of a `--turns` conversation is judged by (selfinstruct.turn_text), and
the templates' transcript headings they rely on."""

from __future__ import annotations

import pytest

from selfinstruct.filter_settings import FilterSettings
from selfinstruct.prompts import PromptSet
from selfinstruct.turn_text import (
    ASSISTANT_HEADINGS,
    USER_HEADINGS,
    check_answer,
    check_followup,
    clean_answer,
    clean_followup,
    user_turn_filters,
)
from selfinstruct.turns import TEMPLATES
from tests.servers.kinds import kind_turns


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


@pytest.mark.parametrize(("raw", "message"), [
    ('User: Thanks! Why "rain"?', 'Thanks! Why "rain"?'),
    ('**User:** Thanks! Why "rain"?', 'Thanks! Why "rain"?'),
    ('"Thanks! Why "rain" and not "snow"?"', 'Thanks! Why "rain" and not "snow"?'),
    ('"Rain" or "snow", which is it?', '"Rain" or "snow", which is it?'),
    ("Here is the user's next message:\n\nWhy does it rain?", "Why does it rain?"),
    ("### User\nWhy does it rain?\n\n### Assistant\nBecause.", "Why does it rain?"),
    ("```\nWhy does it rain?\n```", "Why does it rain?"),
    ("ユーザー：「円安」の影響は？", "「円安」の影響は？"),
    ("「ありがとう。「円安」について教えて」", "ありがとう。「円安」について教えて"),
])
def test_clean_followup(raw: str, message: str) -> None:
    assert clean_followup(raw) == message


def test_clean_answer_stops_at_the_next_user_turn() -> None:
    assert clean_answer("It rains.\n\n### User\nAnd snow?") == "It rains."
    assert clean_answer("It rains.\nUser: And snow?") == "It rains."
    assert clean_answer("ユーザーの質問です。\nユーザー：次は？") == "ユーザーの質問です。"


CONVERSATION = _turns(("user", "Explain the water cycle to a child."),
                      ("assistant", "Water rises from oceans into clouds and falls as rain."))
FOLLOWUP_PROMPT = ("Write the user's next message in the conversation below.\n"
                   "A user is talking with an AI assistant.\n\n### User\nx")


@pytest.mark.parametrize(("message", "reason"), [
    ('Thanks! Why do "clouds" fall as rain?', None),
    ("What is the capital of Australia?", "followup_ignores_conversation"),
    ("Sure! Here is more about the oceans.", "followup_is_answer"),
    ('Here is my draft about "clouds": is the rain part right?', None),
    ("Explain the water cycle to a child.", "followup_repeats_conversation"),
    ("Write the user's next message in the conversation below.", "copied_prompt"),
    ("I'm sorry, but I can't help with that request.", "refusal"),
    ("ありがとうございます。雲についてもう少し詳しく教えてください。", "language_mismatch"),
    ("Why rain?", "too_short"),
])
def test_check_followup(message: str, reason: str | None) -> None:
    drop = check_followup(message, CONVERSATION, FOLLOWUP_PROMPT, "en",
                          user_turn_filters("en", FilterSettings()))
    assert (drop and drop.reason) == reason, drop


def test_check_followup_japanese_overlap() -> None:
    conversation = _turns(("user", "円安について説明してください。"),
                          ("assistant", "円安は輸入品の価格を押し上げます。"))
    filters = user_turn_filters("ja", FilterSettings())
    assert check_followup("ありがとうございます。「輸入品」の例を挙げてください。", conversation,
                          "", "ja", filters) is None
    drop = check_followup("ところで、おすすめの映画を教えてください。", conversation, "", "ja",
                          filters)
    assert drop is not None and drop.reason == "followup_ignores_conversation"


def test_check_answer() -> None:
    settings = FilterSettings()
    assert check_answer("Clouds get heavy.", False, "why?", CONVERSATION, "en", settings)[1] \
        is None
    reasons = [check_answer(text, truncated, "why?", CONVERSATION, "en", settings)[1]
               for text, truncated in (("Clouds get heavy", True),
                                       ("As an AI language model, I cannot.", False),
                                       (CONVERSATION[1]["content"], False))]
    assert [d.reason if d else None for d in reasons] == ["truncated", "refusal",
                                                          "repeated_answer"]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_templates_use_the_headings_the_reader_stops_at(lang: str) -> None:
    prompts = PromptSet(lang, extra_templates=TEMPLATES)
    text = prompts.render("continue", **TEMPLATES["continue"])
    index = 0 if lang == "en" else 1
    assert f"\n{USER_HEADINGS[index]}\n" in text and text.endswith(ASSISTANT_HEADINGS[index])
    followup = prompts.render("followup", **TEMPLATES["followup"])
    assert followup.endswith(USER_HEADINGS[index])
    assert any(followup.startswith(h) for kind, _, h in kind_turns.HEADERS if kind == "followup")
    assert any(text.startswith(h) for kind, _, h in kind_turns.HEADERS if kind == "continue")
