"""Japanese: character counts (no spaces between words), no ASCII-start rule, its own keyword
list, character-level ROUGE-L and its own measured threshold.

Threshold 0.65. Character-level ROUGE-L on Japanese rises on shared function material alone
(次の…を…してください。), so Japanese has its own default, measured on the 74 distinct
hand-written tasks of seeds/ja_general.jsonl and on 40 hand-written near-duplicates of them
(reworded endings, a synonym or a number swapped, a clause rephrased); section 4 of
bench/rouge_dedup.py prints these numbers:

- each seed's max ROUGE-L against the other seeds: median 0.43, 90th percentile 0.51,
  max 0.55 (two "explain the meaning of a word" tasks);
- the near-duplicate pairs: min 0.57, 10th percentile 0.76, median 0.84;
- seeds rejected when added in order / near-duplicates dropped: 0.50 → 4 / 40 of 40,
  0.55 → 1 / 40, 0.60 → 0 / 39, 0.65 → 0 / 39, 0.70 → 0 / 38, 0.80 → 0 / 27.
Every threshold from 0.57 to 0.67 rejects no seed and drops 39 of 40 near-duplicates; 0.65
sits near the top of that range, leaving distinct tasks the most room as the pool grows (the
pair it keeps rephrases a whole clause: at 0.567 it is barely above the closest seeds). For
comparison, the 176 English seeds of seeds/en_general.jsonl under English's tokenizer: median
0.31, max 0.54, 0.16 below Alpaca's 0.7; 0.65 leaves the Japanese seeds 0.10.
"""

from __future__ import annotations

import re
import string

from selfinstruct.languages.base import LanguageProfile
from selfinstruct.languages.ja_verbs import japanese_predicate
from selfinstruct.languages.scripts import japanese_share
from selfinstruct.tokenizers import tokenize_auto

# Regular expressions, chosen so they do not hit everyday words: 図 alone would drop 意図
# (intent) and 図書館 (library), so only 図 as a drawing (図を, 図で, 図表 …) counts.
BLACKLIST = (
    "画像", "写真", "イラスト", "(?<![意合指系構])図[をでにの表]", "作図", "グラフ", "地図",
    "描いて", "描く", "描け", "描き", "動画", "映像", "音声", "音楽", "ファイル",
    "フローチャート", "ダイアグラム",
)
PUNCTUATION = string.punctuation + "、。・，．！？：；〜ー－"
# Translations, code and romanisation are rightly answered in another script.
OTHER_LANGUAGE_ASKED = re.compile(
    r"英語|英訳|英文|英単語|翻訳|訳し|訳して|ローマ字|アルファベット|スペル|略語|"
    r"コード|プログラム|関数|正規表現|SQL|Python|JavaScript|HTML|English", re.IGNORECASE)
# Refusals and talk about being a model: phrases no task content needs.
REFUSALS = (
    r"AIとして", r"AIアシスタントとして", r"言語モデルとして", r"私は(?:AI|ＡＩ|人工知能)",
    r"(?:お答え|回答|お手伝い|対応)(?:することが)?(?:でき|出来)(?:ません|かねます)",
    r"申し訳(?:あり|ござい)ませんが、?(?:その|この|ご)?(?:ご?依頼|リクエスト|質問)",
)
_MIN_OUTPUT_SHARE = 0.1
_DETECT_SHARE = 0.3


def instruction_mismatch(text: str) -> str | None:
    """A Japanese instruction has at least one Japanese character."""
    if japanese_share(text) == 0:
        return "has no Japanese characters (the dataset is Japanese)"
    return None


def output_mismatch(text: str) -> str | None:
    """A Japanese output is at least 10% Japanese (names and terms may be Latin)."""
    share = japanese_share(text)
    if share < _MIN_OUTPUT_SHARE:
        return f"output is {share:.0%} Japanese"
    return None


def recognises(text: str) -> bool:
    """A text is mainly Japanese when more than 30% of its letters are."""
    return japanese_share(text) > _DETECT_SHARE


PROFILE = LanguageProfile(
    code="ja",
    name="Japanese",
    prompts_folder="ja",
    length_unit="chars",
    unit_label="characters",
    blacklist=BLACKLIST,
    blacklist_whole_words=False,  # Japanese has no word boundaries
    program_prefixes=("プログラムを書",),
    leading_punctuation=PUNCTUATION,
    ascii_start_only=False,  # every Japanese sentence starts with a non-ASCII character
    capitalise_first=False,
    instruction_mismatch=instruction_mismatch,
    output_mismatch=output_mismatch,
    other_language_asked=OTHER_LANGUAGE_ASKED,
    recognises=recognises,
    tokenizer=tokenize_auto,  # a token per CJK character; English words inside stay words
    rouge_threshold=0.65,
    field_labels=("指示", "入力", "出力", "応答", "クラスラベル"),
    label_words={"input": ("入力",), "output": ("出力",),
                 "class_label": ("クラスラベル", "クラス", "ラベル"), "instruction": ("指示",)},
    example_words=("例",),
    task_words=("タスク",),
    refusal_patterns=REFUSALS,
    leading_verb=japanese_predicate,
)
