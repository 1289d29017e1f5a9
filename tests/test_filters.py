"""Instruction and instance filters: each reason, in English and Japanese, and their settings."""


import pytest

from selfinstruct._errors import InputError
from selfinstruct.filters import (
    INSTANCE_ORDER,
    INSTRUCTION_ORDER,
    FilterSettings,
    filter_instances,
    first_drop,
    instance_filters,
    instruction_filters,
    mask_pii,
)
from selfinstruct.parsing import ParsedInstance
from tests.linear_time import LIMIT, growth

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


# --------------------------------------------------------------------------- new heuristics

@pytest.mark.parametrize(("text", "reason"), [
    ("Rewrite the paragraph in the passive voice.", None),
    ("Summarize the article. 10. Write a poem about autumn.", "template_leftover"),
    ("3. Summarize the article in two sentences.", "template_leftover"),
    ("Classify the review. Input: The food was cold.", "template_leftover"),
    ("Explain photosynthesis simply. ### Instruction: Name a planet.", "template_leftover"),
    ("### Instruction: Explain photosynthesis simply.", "starts_with_punctuation"),  # order
    ("Explain the difference between input and output devices.", None),
    ("Explain the rules of chess <noinput> to a beginner.", "template_leftover"),
    ("As an AI language model, describe your favourite food.", "refusal"),
    ("Describe the role of an AI model in weather forecasting.", None),
    ("Say hello hello hello hello hello hello hello hello hello hello hello hello hello.",
     "repetition"),
    ("Write an email to jane.doe@gmail.com about the meeting.", "pii"),
    ("Write an email to someone@example.com about the meeting.", None),  # reserved domain
    ("Call 555-123-4567 and ask about the opening hours of the store.", "pii"),
    ("Explain what happened on 01-02-2023 in the news today.", None),  # a date, not a phone
])
def test_english_new_instruction_filters(text, reason):
    drop = first_drop(EN, text)
    assert (drop.reason if drop else None) == reason


@pytest.mark.parametrize(("text", "reason"), [
    ("次の文章を三行で要約してください。", None),
    ("次の文章を要約してください。2. 俳句を作ってください。", "template_leftover"),
    ("商品の説明文を書いてください。入力: 新しい水筒", "template_leftover"),
    ("入力と出力の違いを説明してください。", None),
    ("AIとして、あなたの好きな食べ物を説明してください。", "refusal"),
    ("申し訳ありませんが、その質問にはお答えできません。", "refusal"),
    ("ありがとうありがとうありがとうありがとうありがとうありがとう", "repetition"),
    ("山田さん（yamada@docomo.ne.jp）にお礼のメールを書いてください。", "pii"),
    ("090-1234-5678に電話する時の挨拶文を書いてください。", "pii"),
    ("2023年の出来事を三つ挙げてください。", None),
])
def test_japanese_new_instruction_filters(text, reason):
    drop = first_drop(JA, text)
    assert (drop.reason if drop else None) == reason


def one(instruction, input_, output, language="en", settings=None):
    kept, dropped = filter_instances([ParsedInstance(input_, output)], 5,
                                     instruction=instruction, language=language,
                                     settings=settings)
    return (kept, dropped[0][1] if dropped else None)


@pytest.mark.parametrize(("instruction", "input_", "output", "reason"), [
    ("Explain the code and state its output.", "print(6)", "It prints a number.\nOutput: 6",
     None),  # the instruction asks for the output: a label line is content
    ("Summarize the text.", "Cats sleep a lot.", "Cats sleep.\n\nInstruction: Write a poem.",
     "template_leftover"),
    ("Summarize the text.", "Cats sleep a lot.\nOutput: Cats sleep.", "Cats sleep.",
     "template_leftover"),
    ("List three fruits.", "", "1. Apple\n2. Banana\n3. Cherry", None),  # lists are answers
    ("Write a short apology.", "", "I'm sorry I missed your party; I hope it was fun.", None),
    ("Write a short apology.", "", "As an AI, I cannot feel sorry, but here is a text.",
     "refusal"),
    ("Rewrite politely.", "I'm unable to help with that, sorry.", "I am afraid I can't help.",
     None),  # inputs may quote refusals; only outputs speak for the model
    ("Explain recursion.", "", "the loop " * 40, "repetition"),
    ("Translate to Japanese.", "Good morning", "おはようございます", None),
    ("Explain the seasons of Japan in detail.", "",
     "日本には四つの季節があり、それぞれに特徴があります。", "output_language_mismatch"),
    ("Write an essay.", "", " ".join(f"w{i}" for i in range(1001)), "too_long"),
    ("Write a contact line.", "", "Reach me at bob.smith@gmail.com any time.", "pii"),
    ("Check the card.", "4111 1111 1111 1111", "It is a test card number.", "pii"),
    ("Check the number.", "4111 1111 1111 1112", "It is not a valid card number.", None),
])
def test_english_instance_filters(instruction, input_, output, reason):
    kept, drop = one(instruction, input_, output)
    assert (drop.reason if drop else None) == reason
    assert bool(kept) == (reason is None)


@pytest.mark.parametrize(("instruction", "input_", "output", "reason"), [
    ("日本の四季を説明してください。", "", "日本には四つの季節があります。", None),
    ("日本の四季を説明してください。", "", "Japan has four distinct seasons with their own charms.",
     "output_language_mismatch"),
    ("「ありがとう」を英語に訳してください。", "", "Thank you very much for your kindness.", None),
    ("次の関数の出力を答えてください。", "print(6)", "6", None),  # short: not judged
    ("次の文を要約してください。", "猫はよく眠る。", "猫は眠る。\n\n指示: 俳句を作ってください。",
     "template_leftover"),
    ("お礼の文を書いてください。", "",
     "AIとして、感謝の気持ちを持つことはできませんが、例文を示します。", "refusal"),
    ("自己紹介を書いてください。", "", "よろしく" * 30, "repetition"),
    ("連絡先を書いてください。", "", "電話は03-1234-5678までお願いします。", "pii"),
])
def test_japanese_instance_filters(instruction, input_, output, reason):
    _, drop = one(instruction, input_, output, language="ja")
    assert (drop.reason if drop else None) == reason


def test_pii_mask_mode_rewrites_instead_of_dropping():
    settings = FilterSettings(pii="mask")
    text = "Mail ann@gmail.com or call +81 90-1234-5678; card 4111-1111-1111-1111."
    assert mask_pii(text, settings) == "Mail [EMAIL] or call [PHONE]; card [CARD]."
    assert mask_pii(text) == text  # default mode drops in the chain, never rewrites
    assert first_drop(instruction_filters("en", settings=settings), "Write to ann@gmail.com "
                                                                    "about the trip.") is None
    kept, drop = one("Write a contact line.", "", "Reach me at bob.smith@gmail.com now.",
                     settings=settings)
    assert drop is None and kept[0].output == "Reach me at [EMAIL] now."
    off = FilterSettings(pii="off")
    assert one("Write a contact line.", "", "Mail bob.smith@gmail.com.", settings=off)[1] is None


def test_every_filter_can_be_switched_off():
    all_off = FilterSettings.from_mapping(
        {name: False for name in INSTRUCTION_ORDER if name != "pii"} | {"pii": "off"}, "t")
    assert instruction_filters("en", settings=all_off) == []
    assert first_drop(instruction_filters("ja", settings=all_off), "Do it.") is None
    relaxed = FilterSettings.from_mapping({"input_equals_output": False, "min_words": 1}, "t")
    assert one("Echo it.", "same", "same", settings=relaxed)[1] is None
    assert first_drop(instruction_filters("en", settings=relaxed), "Do it.") is None
    kept, dropped = filter_instances(
        [ParsedInstance("2+2", "4"), ParsedInstance("2+2", "5")], 5,
        settings=FilterSettings(conflicting_outputs=False))
    assert len(kept) == 2 and dropped == []


def test_declared_order_decides_the_reason():
    # Both too short and PII: the length filter comes first in INSTRUCTION_ORDER.
    assert INSTRUCTION_ORDER.index("length") < INSTRUCTION_ORDER.index("pii")
    assert first_drop(EN, "Mail a@gmail.com").reason == "too_short"
    # Template debris and repetition in one output: the leftover check runs first.
    assert INSTANCE_ORDER.index("template_leftover") < INSTANCE_ORDER.index("repetition")
    assert one("Summarize.", "", "ok ok ok ok ok ok ok ok ok ok ok ok ok ok\nInput: x")[1].reason \
        == "template_leftover"


@pytest.mark.parametrize(("table", "message"), [
    ({"lenght": True}, "run.toml: [filters]: field 'lenght': unknown filter setting"),
    ({"pii": "hide"}, "field 'pii': must be one of drop, mask, off (got 'hide')"),
    ({"repetition": "yes"}, "field 'repetition': must be true or false (got 'yes')"),
    ({"max_words": True}, "field 'max_words': must be an integer from 1 to 100000"),
    ({"repetition_max_ratio": 1.5}, "field 'repetition_max_ratio': must be a number in (0, 1)"),
    ({"judge_min_score": 6}, "field 'judge_min_score': must be an integer from 1 to 5"),
    ({"min_chars": 400}, "field 'min_chars': must be below max_chars"),
])
def test_settings_errors_name_the_bad_key(table, message):
    with pytest.raises(InputError) as caught:
        FilterSettings.from_mapping(table, "run.toml: [filters]")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_round_trip():
    settings = FilterSettings.from_mapping({"pii": "mask", "repetition_max_ratio": 1 / 4,
                                            "judge_model": "judge-model"}, "t")
    assert settings.repetition_max_ratio == 0.25
    assert FilterSettings.from_mapping(settings.to_mapping(), "t") == settings


def test_callers_without_a_language_get_the_detected_one():
    # The pipeline's original call: filter_instances(parsed, max_instances).
    japanese = [ParsedInstance("", "日本には四つの季節があり、それぞれに特徴があります。")]
    assert filter_instances(japanese, 5)[0] == japanese
    seasons = "日本の四季を説明してください。"
    assert filter_instances(japanese, 5, instruction=seasons)[0] == japanese
    english = "Japan has four distinct seasons with their own charms."
    _, dropped = filter_instances([ParsedInstance("", english)], 5, instruction=seasons)
    assert dropped[0][1].reason == "output_language_mismatch"


# --------------------------------------------------------------------------- details

# For each language, texts that fail each instruction filter (one or more per filter).
FAILING_INSTRUCTIONS = {
    "en": ["日本の首都はどこですか。教えてください。", "12345 67890 !!!", "Do it now.",
           " ".join(["word"] * 151), "Draw a cat sitting on a mat.",
           "Write a program that sorts a list of numbers.",
           "- List three fruits rich in vitamin C.",
           "Éxplain the French revolution to a child.",
           "Summarize the article. 10. Write a poem about autumn.",
           "As an AI language model, describe your favourite food.",
           "Say hello hello hello hello hello hello hello hello hello hello hello hello hello.",
           "Write an email to jane.doe@gmail.com about the meeting."],
    "ja": ["Explain the seasons of Japan in detail.", "要約して", "あ" * 301,
           "猫の画像を説明してください。", "プログラムを書いて素数を求めてください。",
           "、次の文を丁寧語にしてください。", "商品の説明文を書いてください。入力: 新しい水筒",
           "AIとして、あなたの好きな食べ物を説明してください。",
           "ありがとうありがとうありがとうありがとうありがとうありがとう",
           "090-1234-5678に電話する時の挨拶文を書いてください。"],
}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_every_instruction_filter_explains_its_drop(language):
    settings = FilterSettings()
    for flt in instruction_filters(language, settings=settings):
        drops = [d for d in map(flt.check, FAILING_INSTRUCTIONS[language]) if d is not None]
        assert drops, f"no failing example for {type(flt).__name__}"
        for drop in drops:
            assert drop.reason and drop.detail.strip(), (type(flt).__name__, drop)


def test_instruction_details_say_what_was_wrong():
    def detail(text, language="en"):
        return first_drop(instruction_filters(language), text).detail

    assert detail("Do it now.") == "3 words (needs more than 3)"
    assert detail(" ".join(["word"] * 151)) == "151 words (limit 150)"
    assert "'Draw'" in detail("Draw a cat sitting on a mat.")
    assert detail("Write an email to jane.doe@gmail.com about the meeting.") == \
        "contains an e-mail address"
    assert "jane" not in detail("Write to jane.doe@gmail.com about the meeting now.")
    assert detail("Explain the seasons of Japan in detail.", "ja") == \
        "has no Japanese characters (the dataset is Japanese)"


def test_every_instance_drop_explains_itself():
    instances = [
        ParsedInstance("", "cut", "truncated", "the answer hit the token limit"),
        ParsedInstance("x", "", "no_output_field", "the example has no 'Output:' field"),
        ParsedInstance("q", "", "some_parser_reason"),  # a parser reason without detail
        ParsedInstance("x", ""),
        ParsedInstance("same", "same"),
        ParsedInstance("q", "answer:"),
        ParsedInstance("a", "b"),
        ParsedInstance("a", "b"),
        ParsedInstance("c", "d\nInstruction: Write a poem."),
        ParsedInstance("", "As an AI, I cannot feel sorry, but here is a text."),
        ParsedInstance("", "the loop " * 40),
        ParsedInstance("", "日本には四つの季節があり、それぞれに特徴があります。"),
        ParsedInstance("", " ".join(f"w{i}" for i in range(1001))),
        ParsedInstance("", "Reach me at bob.smith@gmail.com any time."),
    ] + [ParsedInstance(f"in{i}", f"out{i}") for i in range(6)]
    kept, dropped = filter_instances(instances, 5, instruction="Summarize the text.",
                                     language="en")
    assert len(kept) == 5
    reasons_seen = {drop.reason for _, drop in dropped}
    assert reasons_seen == {
        "truncated", "no_output_field", "some_parser_reason", "empty_output",
        "input_equals_output", "ends_with_colon", "duplicate_instance", "template_leftover",
        "refusal", "repetition", "output_language_mismatch", "too_long", "pii",
        "over_instance_limit"}
    for inst, drop in dropped:
        assert drop.detail.strip(), (inst, drop)
    by_reason = {drop.reason: drop.detail for _, drop in dropped}
    assert by_reason["no_output_field"] == "the example has no 'Output:' field"
    assert by_reason["ends_with_colon"] == "the output ends with a colon (an unfinished " \
                                           "field): 'answer:'"
    assert by_reason["too_long"] == "output: 1001 words (limit 1000)"
    assert by_reason["pii"] == "output: contains an e-mail address"
    assert "some_parser_reason" in by_reason["some_parser_reason"]
    _, conflicting = filter_instances([ParsedInstance("2+2", "4"), ParsedInstance("2+2", "5")], 5)
    assert conflicting[0][1].detail.startswith("the input '2+2' has 2 different outputs ('4', '5')")


def test_every_content_filter_of_the_instance_chain_is_covered():
    failing = [ParsedInstance("c", "d\nInstruction: Write a poem."),
               ParsedInstance("", "As an AI, I cannot feel sorry, but here is a text."),
               ParsedInstance("", "the loop " * 40),
               ParsedInstance("", "日本には四つの季節があり、それぞれに特徴があります。"),
               ParsedInstance("", " ".join(f"w{i}" for i in range(1001))),
               ParsedInstance("", "Reach me at bob.smith@gmail.com any time.")]
    for flt in instance_filters("en"):
        drops = [d for d in (flt.check("Summarize.", inst) for inst in failing) if d]
        assert drops and all(d.detail.strip() for d in drops), type(flt).__name__


# --------------------------------------------------------------------------- linear time

# Shapes that made regexes rescan from every position: runs of one address character, of
# dots, '@', digits, spaces, markup, and label-like words.
ADVERSARIAL = {
    "letters": "a", "dots": ".", "at": "@", "digits": "1", "spaces": " ", "a.": "a.",
    "a@": "a@", "digit-dash": "1-", "digit-space": "1 ", "underscore": "_a", "hashes": "#",
    "stars": "*", "lt": "< ", "address-ish": "ab.cd@ef-", "labels": "Input ", "kana": "あ",
}


def _filter_everything(text: str) -> None:
    for language in ("en", "ja"):
        for flt in instruction_filters(language):
            flt.check(text)
        filter_instances([ParsedInstance(text, text + "x")], 5, instruction=text,
                         language=language)
    mask_pii(text, FilterSettings(pii="mask"))


def test_a_200k_character_text_without_spaces_is_filtered_in_linear_time():
    # 8x the text must cost about 8x the time; a quadratic pattern costs 64x (the old e-mail
    # regex took 36 s on 100K characters without spaces).
    ratio = growth(_filter_everything, "a", 25_000)
    assert ratio < LIMIT, f"{ratio:.1f}x the time for 8x the text"


@pytest.mark.parametrize("unit", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_filters_are_linear_on_adversarial_text(unit):
    # Smaller than the 200K case to keep the suite fast; quadratic still shows as ~64x.
    ratio = growth(_filter_everything, unit, 12_500)
    assert ratio < LIMIT, f"{ratio:.1f}x the time for 8x the text"
