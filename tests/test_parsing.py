"""Parsers: lenient about layout, and every unreadable item comes back with a reason."""

import pytest

from selfinstruct.parsing import (
    parse_alpaca,
    parse_instances,
    parse_numbered_list,
    parse_yes_no,
)
from selfinstruct.prompts import PromptSet

EN = PromptSet("en").labels
JA = PromptSet("ja").labels


def texts(items):
    return [(i.text, i.reason) for i in items]


def test_completion_continues_after_the_open_number():
    answer = " Write a haiku about rain.\n10. Explain photosynthesis simply.\n11. Name two rivers."
    assert texts(parse_numbered_list(answer, 9, continuation=True, truncated=False)) == [
        ("Write a haiku about rain.", None),
        ("Explain photosynthesis simply.", None),
        ("Name two rivers.", None),
    ]


def test_chat_answer_with_preamble_bold_restart_wrap_and_epilogue():
    answer = (
        "Sure! Here are more tasks:\n\n"
        "**9.** Draft a **polite** reply to a customer.\n"
        "10) Compare two sorting\n   algorithms briefly.\n"
        "1. Restarted numbering still counts.\n\n"
        "Let me know if you need more!"
    )
    assert texts(parse_numbered_list(answer, 9, continuation=False, truncated=False)) == [
        ("Draft a polite reply to a customer.", None),
        ("Compare two sorting algorithms briefly.", None),
        ("Restarted numbering still counts.", None),
    ]


def test_truncated_answer_rejects_only_the_last_item():
    answer = " First complete item here.\n10. Second item cut o"
    items = parse_numbered_list(answer, 9, continuation=True, truncated=True)
    assert texts(items) == [("First complete item here.", None), ("Second item cut o", "truncated")]


def test_japanese_list_with_full_width_dot():
    answer = "9．日本の四季について説明してください。\n10. 次の文を敬語に直してください。"
    assert [i.text for i in parse_numbered_list(answer, 9, continuation=False, truncated=False)] \
        == ["日本の四季について説明してください。", "次の文を敬語に直してください。"]


def test_empty_item_is_reported():
    items = parse_numbered_list("\n10. Real item text.", 9, continuation=True, truncated=False)
    assert texts(items) == [("Real item text.", None)]
    assert texts(parse_numbered_list("9. **\n10. Ok then", 9, continuation=False,
                                     truncated=False))[0][1] == "empty"


def test_input_first_instances_with_and_without_input():
    answer = ("Example 1\nInput: 2 + 2\nOutput: 4\n\nExample 2\nOutput: Paris is the capital.\n"
              "\nExample 3\nInput: multi\nline input\nOutput: done")
    parsed = parse_instances(answer, EN, output_first=False, truncated=False)
    assert [(p.input, p.output) for p in parsed] == [
        ("2 + 2", "4"), ("", "Paris is the capital."), ("multi\nline input", "done")]


def test_input_first_block_without_output_is_rejected():
    parsed = parse_instances("Example 1\nInput: only input", EN, output_first=False,
                             truncated=False)
    assert [(p.input, p.reason) for p in parsed] == [("only input", "no_output_field")]


def test_output_first_instances_japanese():
    answer = ("クラスラベル: 肯定的\n入力: とても良い映画でした。\n"
              "クラスラベル: 否定的\n入力: 退屈だった。")
    parsed = parse_instances(answer, JA, output_first=True, truncated=False)
    assert [(p.input, p.output) for p in parsed] == [
        ("とても良い映画でした。", "肯定的"), ("退屈だった。", "否定的")]


def test_truncated_instances_reject_the_last():
    answer = "Example 1\nOutput: fine\n\nExample 2\nOutput: cut"
    parsed = parse_instances(answer, EN, output_first=False, truncated=True)
    assert [p.reason for p in parsed] == [None, "truncated"]


@pytest.mark.parametrize(("answer", "verdict"), [
    (" Yes", True), ("no.", False), ("**Yes**, it is", True), ("Maybe", None),
])
def test_yes_no_english(answer, verdict):
    assert parse_yes_no(answer, EN) is verdict


@pytest.mark.parametrize(("answer", "verdict"),
                         [(" はい", True), ("いいえ。", False), ("たぶん", None)])
def test_yes_no_japanese(answer, verdict):
    assert parse_yes_no(answer, JA) is verdict


def test_alpaca_continuation_and_noinput():
    answer = (" Give a synonym for happy.\n4. Input:\n<noinput>\n4. Output:\nJoyful.\n###\n"
              "5. Instruction: Sort the numbers.\n5. Input:\n3, 1, 2\n5. Output:\n1, 2, 3\n###\n"
              "6. Instruction: Broken item without fields\n###\n7. Instruction: Cut")
    parsed = parse_alpaca(answer, EN, 4, continuation=True, truncated=True)
    assert [(p.instruction, p.input, p.output, p.reason) for p in parsed] == [
        ("Give a synonym for happy.", "", "Joyful.", None),
        ("Sort the numbers.", "3, 1, 2", "1, 2, 3", None),
        ("Broken item without fields", "", "", "unparseable"),
        ("Cut", "", "", "truncated"),
    ]


def test_alpaca_japanese():
    answer = " 次の単語の対義語を答えてください。\n4. 入力:\n明るい\n4. 出力:\n暗い"
    parsed = parse_alpaca(answer, JA, 4, continuation=True, truncated=False)
    assert [(p.instruction, p.input, p.output) for p in parsed] == [
        ("次の単語の対義語を答えてください。", "明るい", "暗い")]
