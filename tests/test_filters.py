"""Instruction and instance filters: each reason, in English and Japanese."""

import pytest

from selfinstruct.filters import filter_instances, first_drop, instruction_filters
from selfinstruct.parsing import ParsedInstance

EN = instruction_filters("en")
JA = instruction_filters("ja")


@pytest.mark.parametrize(("text", "reason"), [
    ("Summarize the article in two sentences.", None),
    ("Do it now.", "too_short"),
    (" ".join(["word"] * 151), "too_long"),
    ("Draw a cat sitting on a mat.", "blacklisted_keyword"),
    ("Describe the image below in detail.", "blacklisted_keyword"),
    ("Explain how to go to the station from here.", "blacklisted_keyword"),
    ("Explain the mapping between keys and values.", None),  # 'map' only as a whole word
    ("Write a program that sorts a list of numbers.", "program_request"),
    ("- List three fruits rich in vitamin C.", "starts_with_punctuation"),
    ("Éxplain the French revolution to a child.", "starts_with_non_ascii"),
    ("日本の首都はどこですか。教えてください。", "language_mismatch"),
])
def test_english_instruction_filters(text, reason):
    drop = first_drop(EN, text)
    assert (drop.reason if drop else None) == reason


@pytest.mark.parametrize(("text", "reason"), [
    ("日本の四季の特徴を説明してください。", None),
    ("「ありがとう」を英語に訳してください。", None),  # starting with 「 is fine in Japanese
    ("要約して", "too_short"),
    ("あ" * 301, "too_long"),
    ("Explain the seasons of Japan in detail.", "language_mismatch"),
    ("猫の画像を説明してください。", "blacklisted_keyword"),
    ("売上のグラフを作成してください。", "blacklisted_keyword"),
    ("図書館の利用方法を説明してください。", None),  # 図 inside an everyday word
    ("この文章の意図を説明してください。", None),
    ("合図の意味と使い方を説明してください。", None),
    ("会社の組織図を作成してください。", "blacklisted_keyword"),
    ("プログラムを書いて素数を求めてください。", "program_request"),
    ("、次の文を丁寧語にしてください。", "starts_with_punctuation"),
])
def test_japanese_instruction_filters(text, reason):
    drop = first_drop(JA, text)
    assert (drop.reason if drop else None) == reason


def reasons(dropped):
    return [d.reason for _, d in dropped]


def test_instance_filters_each_reason():
    instances = [
        ParsedInstance("a", "b"),
        ParsedInstance("same", "same"),
        ParsedInstance("x", ""),
        ParsedInstance("Input:", "y"),
        ParsedInstance("q", "answer："),
        ParsedInstance("a", "b"),
        ParsedInstance("", "cut", "truncated"),
    ]
    kept, dropped = filter_instances(instances, max_instances=5)
    assert kept == [ParsedInstance("a", "b")]
    assert reasons(dropped) == ["input_equals_output", "empty_output", "ends_with_colon",
                                "ends_with_colon", "duplicate_instance", "truncated"]


def test_conflicting_outputs_drop_the_tasks_instances():
    kept, dropped = filter_instances(
        [ParsedInstance("2+2", "4"), ParsedInstance("2+2", "5"), ParsedInstance("", "x")], 5)
    assert kept == []
    assert reasons(dropped) == ["conflicting_outputs"] * 3


def test_instance_limit():
    kept, dropped = filter_instances([ParsedInstance(str(i), f"o{i}") for i in range(7)], 5)
    assert len(kept) == 5 and reasons(dropped) == ["over_instance_limit"] * 2
