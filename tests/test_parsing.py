"""Parsers: lenient about layout, and every unreadable item comes back with a reason."""


import pytest

from selfinstruct.parsing import (
    parse_alpaca,
    parse_instances,
    parse_numbered_list,
    parse_yes_no,
)
from selfinstruct.prompts import PromptSet
from tests.linear_time import LIMIT, growth

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


# --------------------------------------------------------------------------- what chat models write

def items(answer, *, continuation=False, truncated=False):
    return texts(parse_numbered_list(answer, 9, continuation=continuation, truncated=truncated))


@pytest.mark.parametrize(("answer", "expected"), [
    ("Sure! Here are more tasks:\n\n- Write a haiku about rain.\n* Explain photosynthesis.\n"
     "• Name three rivers.\n+ Describe a cat.\n\nLet me know if you need more!",
     ["Write a haiku about rain.", "Explain photosynthesis.", "Name three rivers.",
      "Describe a cat."]),
    ("**9.** Draft a reply.\n**10**. Compare sorting.\n\nHere are some bonus ones:\n"
     "- Bullet one here.\n- Bullet two here.",
     ["Draft a reply.", "Compare sorting.", "Bullet one here.", "Bullet two here."]),
    ("Task 9: Write a poem.\n**Task 10:** Summarize the text.\nTask 11 - Name a planet.\n"
     "### Task 12\nExplain gravity.\n### Task 13\n\nDescribe a cat.\n\nI hope these help!",
     ["Write a poem.", "Summarize the text.", "Name a planet.", "Explain gravity.",
      "Describe a cat."]),
    ("```\n9. Inside a fence.\n10. Also inside.\n```\nLet me know what you think!",
     ["Inside a fence.", "Also inside."]),
    ("9) Paren item.\n(10) Both parens.\n11: Colon item\n9.5 kg is heavy, is it not?",
     ["Paren item.", "Both parens.", "Colon item 9.5 kg is heavy, is it not?"]),
    ("**9. Write the whole item in bold.**\n10. *Write it in italics.*\n11. _Or like this._",
     ["Write the whole item in bold.", "Write it in italics.", "Or like this."]),
    ("9. Write a poem about:\n   - love\n   - loss\n10. Next item.",
     ["Write a poem about: - love - loss", "Next item."]),
    ("## Creative tasks\n9. Write a limerick.\n**Analytical tasks:**\n10. Compare two numbers.",
     ["Write a limerick.", "Compare two numbers."]),
    ("9. First.\n10. Second.\n1. Restarted.\n2. Again.", ["First.", "Second.", "Restarted.",
                                                          "Again."]),
    ("**Task 9**: Name a moon.\n**Task #10.** Name a star.\nInstruction 11: Name a comet.",
     ["Name a moon.", "Name a star.", "Name a comet."]),
    ("9. Explain tides.\n10. Name a bird.\nEach of these tasks is different.",
     ["Explain tides.", "Name a bird."]),  # a closing remark without a blank line
    ("9. Translate the sentence to French.\nInput: Hello\n**Output:** Bonjour\n"
     "10. Name a planet.", ["Translate the sentence to French.", "Name a planet."]),
])
def test_chat_list_shapes(answer, expected):
    assert items(answer) == [(text, None) for text in expected]


@pytest.mark.parametrize(("answer", "expected"), [
    ("タスク9：日本の四季を説明してください。\nタスク１０:敬語に直してください。\n"
     "・箇条書きの項目です。\n９．全角の番号です。\n①丸数字の項目です。\n（１２）括弧の番号です。\n"
     "■四角の項目です。\nこれらのタスクは多様です。",
     ["日本の四季を説明してください。", "敬語に直してください。", "箇条書きの項目です。",
      "全角の番号です。", "丸数字の項目です。", "括弧の番号です。", "四角の項目です。"]),
    ("もちろんです！以下をご覧ください：\n\n**９．** 最初の項目。\n### タスク10\n次の項目。\n\n"
     "他にも必要でしたらお知らせください。", ["最初の項目。", "次の項目。"]),
    # full-width letters in an item are Japanese text, returned as written (not NFKC'd)
    ("9、ＡＢＣを使った例文を作ってください。", ["ＡＢＣを使った例文を作ってください。"]),
])
def test_japanese_list_shapes(answer, expected):
    assert items(answer) == [(text, None) for text in expected]


def test_a_label_without_text_is_empty_with_a_detail():
    parsed = parse_numbered_list("Task 9: Write a poem.\nTask 10:\n\nLet me know!", 9,
                                 continuation=False, truncated=False)
    assert texts(parsed) == [("Write a poem.", None), ("", "empty")]
    assert parsed[1].detail == "the list item 'Task 10:' has no text"


def test_rejected_list_items_carry_details():
    parsed = parse_numbered_list(" One.\n10. Cut of", 9, continuation=True, truncated=True)
    assert parsed[1].reason == "truncated" and "token limit" in parsed[1].detail


def test_completion_continuation_with_other_markers():
    answer = " Write a haiku.\n10) Explain tides.\n- Name a bird."
    assert items(answer, continuation=True) == [
        ("Write a haiku.", None), ("Explain tides.", None), ("Name a bird.", None)]


@pytest.mark.parametrize("answer", ["", "   \n", "I cannot help with that.",
                                    "Sure! Here you go:\n\nLet me know!"])
def test_an_answer_without_items_gives_nothing(answer):
    assert items(answer) == []  # the pipeline records it as an unparseable answer


@pytest.mark.parametrize("answer", ["", "\nCreating tasks is a great way to evaluate a model.",
                                    "\n多様なタスクを考えることは大切です。"])
def test_a_completion_that_leaves_the_open_item_offers_nothing(answer):
    # Prose on a new line after the prompt's "9." is not item 9: small models ramble on.
    assert items(answer, continuation=True) == []
    assert parse_alpaca(answer, EN, 4, continuation=True, truncated=False) == []


def instances(answer, labels=EN, *, output_first=False):
    return [(p.input, p.output, p.reason) for p in
            parse_instances(answer, labels, output_first=output_first, truncated=False)]


@pytest.mark.parametrize(("answer", "expected"), [
    ("Here are some examples:\n\n**Example 1:**\n**Input:** 2 + 2\n**Output:** 4\n\n"
     "### Example 2\n**Input**: N/A\n**Output**: Paris.\n\nExample 3\nInput: None of the above\n"
     "Output: ok\n\nLet me know if you need more examples!",
     [("2 + 2", "4", None), ("", "Paris.", None), ("None of the above", "ok", None)]),
    ("```\nExample 1\nInput: a\nOutput: b\n```\n\nI hope this helps.", [("a", "b", None)]),
    ("Input: x1\nOutput: y1\n\nInput: x2\nOutput: y2\nTask: An invented next task\nOutput: z",
     [("x1", "y1", None), ("x2", "y2", None)]),
    ("Example 1\nInput: (none)\nOutput: **Yes**\n\nExample 2\nInput: <noinput>\nOutput: No\n\n"
     "Example 3\n- Input: None\n- Output: Maybe", [("", "Yes", None), ("", "No", None),
                                                   ("", "Maybe", None)]),
    ("Example 1\nOutput:\n```python\nprint(1)\n```\n\nExample 2\nOutput: *args are positional",
     [("", "print(1)", None), ("", "*args are positional", None)]),
    ("Example 1\nOutput: A poem\nline two\n\nsecond stanza\n\nHope this helps!",
     [("", "A poem\nline two\n\nsecond stanza", None)]),
    ("Example 1\nInput: only input", [("only input", "", "no_output_field")]),
    # the embedded model's completions: "Example 2" and the output without its label
    ("Example 2\nAn API is like a phone line.\nYou call it.\n\nExample 3\nOutputs: x",
     [("", "An API is like a phone line.\nYou call it.", None), ("", "x", None)]),
])
def test_input_first_shapes(answer, expected):
    assert instances(answer) == expected


def test_japanese_instance_shapes():
    answer = ("はい、こちらが例です：\n\n例1\n入力：なし\n出力：東京です。\n\n"
              "例 2\n**入力：** （なし）\n**出力：** 大阪です。\n\n"
              "例３：\n入力: 猫\nOutput: ねこ\n\nお役に立てば幸いです。")
    assert instances(answer, JA) == [("", "東京です。", None), ("", "大阪です。", None),
                                     ("猫", "ねこ", None)]


@pytest.mark.parametrize(("answer", "labels", "expected"), [
    ("**Class label:** Positive\n**Input:** Great movie!\n\n**Class label:** Negative\n"
     "**Input:** Boring.", EN, [("Great movie!", "Positive", None), ("Boring.", "Negative", None)]),
    ("Label: Positive\nInput: Great movie!\nClass: Negative\nInput: Bad.", EN,
     [("Great movie!", "Positive", None), ("Bad.", "Negative", None)]),
    ("Input: Cheap pills!!!\nOutput: spam", EN, [("Cheap pills!!!", "spam", None)]),
    ("Input: no label here", EN, [("no label here", "", "no_class_label")]),
    ("**クラスラベル：** 肯定的\n**入力：** 良い映画。\n\nラベル: 否定的\n入力: 退屈。", JA,
     [("良い映画。", "肯定的", None), ("退屈。", "否定的", None)]),
])
def test_output_first_shapes(answer, labels, expected):
    assert instances(answer, labels, output_first=True) == expected


def test_instance_rejections_carry_details():
    [parsed] = parse_instances("Example 1\nInput: x", EN, output_first=False, truncated=False)
    assert parsed.detail == "the example has no 'Output:' field"
    [parsed] = parse_instances("入力: x", JA, output_first=True, truncated=False)
    assert parsed.detail == "the example has no 'クラスラベル:' field"
    [parsed] = parse_instances("Output: cut", EN, output_first=False, truncated=True)
    assert parsed.reason == "truncated" and parsed.detail


@pytest.mark.parametrize(("answer", "verdict"), [
    ("The answer is: Yes.", True), ("**No** — this is a generation task.", False),
    ("Yes, it is a classification task", True), ("Answer: No", False),
    ("I do not know", None), ("Not sure, none of these apply.", None),
    ("Task: Answer yes or no.\nIs it classification? No", False),
    ("It is not a classification task.", False), ("This is a classification task.", True),
])
def test_chatty_verdicts_english(answer, verdict):
    assert parse_yes_no(answer, EN) is verdict


@pytest.mark.parametrize(("answer", "verdict"), [
    ("「はい」", True), ("いいえ、生成タスクです。", False), ("はい。分類タスクです", True),
    ("答え：はい", True), ("**いいえ**", False), ("Yes", True),
    ("これはしてはいけない例です。", None),  # はい inside a word is no verdict
    ("これは分類タスクではありません。", False), ("これは分類タスクです。", True),
])
def test_chatty_verdicts_japanese(answer, verdict):
    assert parse_yes_no(answer, JA) is verdict


def alpaca(answer, labels=EN):
    return [(p.instruction, p.input, p.output, p.reason)
            for p in parse_alpaca(answer, labels, 1, continuation=False, truncated=False)]


def test_alpaca_chat_shapes():
    answer = ("Sure! Here are 4 tasks:\n\n###\n**1. Instruction:** Give a synonym.\n"
              "**1. Input:** <noinput>\n**1. Output:** Joyful.\n###\n2) Instruction: Sort.\n"
              "2) Input:\nN/A\n2) Output:\n1, 2\n\n### Task 3\nInstruction: Name a fruit.\n"
              "Input: None\nOutput: Apple\n\n**Task 4:** Translate hello.\nOutput: Bonjour\n\n"
              "```\nInstruction: Add.\nInput: 1, 2\nOutput: 3\n```\n\nLet me know!")
    assert alpaca(answer) == [
        ("Give a synonym.", "", "Joyful.", None), ("Sort.", "", "1, 2", None),
        ("Name a fruit.", "", "Apple", None), ("Translate hello.", "", "Bonjour", None),
        ("Add.", "1, 2", "3", None)]


def test_alpaca_japanese_chat_shapes():
    answer = ("### タスク1\n**指示：** 対義語を答えてください。\n**入力：** 明るい\n"
              "**出力：** 暗い\n###\n"
              "2. 指示: 挨拶を書いてください。\n2. 入力: なし\n2. 出力: こんにちは。")
    assert alpaca(answer, JA) == [("対義語を答えてください。", "明るい", "暗い", None),
                                  ("挨拶を書いてください。", "", "こんにちは。", None)]


def test_alpaca_item_without_output_has_a_detail():
    tasks = parse_alpaca("1. Instruction: Only an instruction\n###\n2. Instruction: Fine.\n"
                         "2. Output: Yes.", EN, 1, continuation=False, truncated=False)
    assert (tasks[0].instruction, tasks[0].reason, tasks[0].detail) == (
        "Only an instruction", "unparseable", "the item has no 'Output:' field")
    # An answer with no field of its own is prose, not an item with missing fields.
    assert parse_alpaca("1. Instruction: Only an instruction", EN, 1, continuation=False,
                        truncated=False) == []


def test_alpaca_completion_may_start_its_instruction_on_a_new_line():
    answer = "\nWrite a note to a friend.\n4. Input:\n<noinput>\n4. Output:\nHi!\n###"
    assert alpaca_items(answer) == [("Write a note to a friend.", "", "Hi!", None)]


def alpaca_items(answer):
    return [(p.instruction, p.input, p.output, p.reason)
            for p in parse_alpaca(answer, EN, 4, continuation=True, truncated=False)]


# Shapes that would make a backtracking pattern rescan from every position.
ADVERSARIAL = ["a", ".", "@", "1", " ", "\n", "*", "_a", "#", "9. ", "**9.", "Input: ",
               "Example 1\n", "- ", "・", "Task 9:", "```\n"]


def _parse_everything(text: str) -> None:
    for continuation in (False, True):
        parse_numbered_list(text, 9, continuation=continuation, truncated=False)
        parse_alpaca(text, EN, 4, continuation=continuation, truncated=False)
    for output_first in (False, True):
        parse_instances(text, EN, output_first=output_first, truncated=False)
    parse_yes_no(text, JA)


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_parsers_are_linear_on_adversarial_answers(unit):
    ratio = growth(_parse_everything, unit, 25_000, floor=2e-2)
    assert ratio < LIMIT, f"{ratio:.1f}x the time for 8x the answer"
