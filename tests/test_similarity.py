"""ROUGE-L and the novelty index, checked against rouge_score itself (Alpaca's reference)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from selfinstruct.rouge import symbol_for
from selfinstruct.similarity import (
    DEFAULT_THRESHOLDS,
    NoveltyIndex,
    Verdict,
    default_threshold,
    rouge_l,
    tokenize,
)
from selfinstruct.tokenizers import tokenize_unicode

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
JA_SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "ja_general.jsonl"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_f(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


def rouge_tokens(text: str) -> list[str]:
    return SCORER._tokenizer.tokenize(text)


def alpaca_loop(
    stream: list[str], pool: list[str], threshold: float = 0.7, tokenizer=rouge_tokens
) -> list[tuple[bool, float]]:
    """Alpaca's generate_instruction.py dedup: score every pooled text, keep iff max <= t."""
    pool_tokens = [tokenizer(text) for text in pool]
    decisions = []
    for text in stream:
        tokens = tokenizer(text)
        scores = [rouge_scorer._score_lcs(tokens, other).fmeasure for other in pool_tokens]
        best = max(scores, default=0.0)
        keep = not best > threshold
        decisions.append((keep, best))
        if keep:
            pool_tokens.append(tokens)
    return decisions


def index_loop(
    stream: list[str], pool: list[str], threshold: float = 0.7, language: str = "en"
) -> list[tuple[bool, float]]:
    index = NoveltyIndex.from_texts(pool, threshold=threshold, language=language)
    decisions = []
    for text in stream:
        verdict = index.check(text)
        decisions.append((verdict.novel, verdict.score))
        if verdict.novel:
            index.add(text)
    return decisions


def assert_same_decisions(ours: list[tuple[bool, float]], alpaca: list[tuple[bool, float]]):
    assert [keep for keep, _ in ours] == [keep for keep, _ in alpaca]
    for (keep, score), (_, best) in zip(ours, alpaca, strict=True):
        if not keep:  # a rejection reports the exact maximum F that caused it
            assert score == best


# Few distinct words and mixed separators/case: many shared tokens, repeats, long LCS.
WORDS = st.sampled_from(["a", "b", "c", "the", "of", "x1", "write", "42", "Poem", "B"])
SEPARATORS = st.sampled_from([" ", "  ", ", ", "-", ". ", "\n", "_", "!? ", "'"])
ascii_texts = st.lists(st.tuples(WORDS, SEPARATORS), max_size=150).map(
    lambda parts: "".join(word + sep for word, sep in parts)
)
short_texts = st.lists(st.tuples(WORDS, SEPARATORS), max_size=14).map(
    lambda parts: "".join(word + sep for word, sep in parts)
)
THRESHOLDS = st.sampled_from([0.0, 0.3, 0.5, 0.65, 0.7, 0.9, 1.0])


# Tokenizers ----------------------------------------------------------------------------------


@FAST
@given(st.text())
def test_en_tokens_equal_rouge_score_on_any_text(text):
    assert tokenize(text, "en") == rouge_tokens(text)


@FAST
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_auto_tokens_equal_rouge_score_on_ascii(text):
    # The Unicode tokenizer itself (not only the ASCII fast path) agrees on ASCII text.
    assert tokenize(text, "auto") == tokenize(text, "ja") == tokenize_unicode(text)
    assert tokenize_unicode(text) == rouge_tokens(text)


def test_en_keeps_rouge_score_quirks():
    assert tokenize("Café crème", "en") == ["caf", "cr", "me"] == rouge_tokens("Café crème")
    assert tokenize("İstanbul", "en") == ["i", "stanbul"]
    assert tokenize("ＡＩについて", "en") == []


def test_japanese_tokens():
    assert tokenize("コーヒー・紅茶、どちらが好き？", "ja") == list("コーヒー紅茶どちらが好き")
    assert tokenize("「PythonでCSVを読む」", "ja") == ["python", "で", "csv", "を", "読", "む"]
    assert tokenize("ＡＩ１０個", "auto") == ["ai10", "個"]  # full-width letters and digits
    assert tokenize("ﾃｽﾄｶﾞ", "auto") == tokenize("テストガ", "auto") == list("テストガ")
    assert tokenize("々〆ゝ", "ja") == ["々", "〆", "ゝ"]


def test_other_scripts_are_words():
    assert tokenize("Café crème", "auto") == ["café", "crème"]
    assert tokenize("हिंदी भाषा", "auto") == ["हिंदी", "भाषा"]  # vowel signs stay inside
    assert tokenize("Привет, мир", "auto") == ["привет", "мир"]
    assert tokenize("한국어 문장", "auto") == ["한국어", "문장"]


# rouge_l against rouge_score --------------------------------------------------------------------


@FAST
@given(ascii_texts, ascii_texts)
def test_rouge_l_bit_identical_to_rouge_score(a, b):
    expected = reference_f(a, b)
    assert rouge_l(a, b, "en") == expected
    assert rouge_l(a, b, "auto") == expected


@FAST
@given(st.text(max_size=60), st.text(max_size=60))
def test_rouge_l_en_bit_identical_on_any_unicode(a, b):
    assert rouge_l(a, b, "en") == reference_f(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("", ""),
        ("", "a b"),
        ("!!! ???", "a"),
        ("a " * 100, "a " * 37),
        ("a b " * 40, "b a " * 33),
        (" ".join(map(str, range(64))), " ".join(map(str, range(1, 65)))),
        (" ".join(map(str, range(65))), " ".join(map(str, range(64, -1, -1)))),
        (" ".join(str(i % 7) for i in range(200)), " ".join(str(i % 5) for i in range(130))),
        ("日本の首都はどこですか。", "日本の首都はどこですか。"),
    ],
)
def test_rouge_l_adversarial(a, b):
    assert rouge_l(a, b, "en") == reference_f(a, b)


def test_float_boundary_12_8_7():
    # (m, n, L) = (12, 8, 7): 2L/(m+n) is exactly 0.7 (kept), rouge_score's F is not (dropped).
    a = " ".join(f"w{i}" for i in range(12))
    b = " ".join([f"w{i}" for i in range(7)] + ["z"])
    assert 2 * 7 / (12 + 8) == 0.7
    assert reference_f(a, b) == rouge_l(a, b) == 0.7000000000000001
    assert not NoveltyIndex.from_texts([a]).is_novel(b)
    assert not NoveltyIndex.from_texts([b]).is_novel(a)


@pytest.mark.parametrize(("threshold", "max_len"), [(0.7, 40), (0.65, 30), (0.5, 24)])
def test_decisions_on_every_boundary_triple(threshold, max_len):
    """Every (m, n, L) near the threshold, with the shared tokens where the bounds are tight.

    from_texts ranks equally frequent elements by first appearance, incremental adds rank
    later elements rarer: the shared tokens go last, resp. first, in the pooled text's order,
    so the prefix and positional bounds are met with equality when L is the required overlap.
    """
    checked = 0
    for m in range(1, max_len + 1):
        target = [f"w{i}" for i in range(m)]
        rebuilt = NoveltyIndex.from_texts([" ".join(target)], threshold=threshold)
        incremental = NoveltyIndex(threshold=threshold)
        incremental.add(" ".join(target))
        for n in range(1, max_len + 1):
            for lcs in range(min(m, n) + 1):
                if abs(2 * lcs / (m + n) - threshold) > 0.03:
                    continue
                fresh = [f"z{i}" for i in range(n - lcs)]
                for index, shared in ((rebuilt, target[m - lcs :]), (incremental, target[:lcs])):
                    prediction = fresh + shared
                    expected = rouge_scorer._score_lcs(target, prediction).fmeasure
                    assert index.is_novel(" ".join(prediction)) == (not expected > threshold), (
                        m,
                        n,
                        lcs,
                    )
                    checked += 1
    assert checked > 500


# The index against Alpaca's exhaustive loop -----------------------------------------------------


@FAST
@given(st.lists(short_texts, max_size=12), st.lists(short_texts, max_size=25), THRESHOLDS)
def test_stream_decisions_equal_alpaca_loop(pool, stream, threshold):
    assert_same_decisions(
        index_loop(stream, pool, threshold), alpaca_loop(stream, pool, threshold)
    )


def _random_stream(rng: random.Random, size: int, vocabulary: list[str]) -> list[str]:
    """Texts over a small vocabulary, a third of them light edits of earlier ones."""
    stream: list[str] = []
    for _ in range(size):
        if stream and rng.random() < 0.35:
            words = rng.choice(stream).split()
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
            if rng.random() < 0.5:
                words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary))
        else:
            words = rng.choices(vocabulary, k=rng.randint(3, 12))
        stream.append(" ".join(words))
    return stream


@pytest.mark.parametrize("threshold", [0.7, 0.5])
def test_long_stream_equals_alpaca_loop_across_rebuilds(threshold):
    rng = random.Random(threshold)
    vocabulary = [f"t{i}" for i in range(80)] + ["the", "a", "of", "write"] * 10
    stream = _random_stream(rng, 500, vocabulary)
    ours = index_loop(stream, [], threshold)
    assert sum(keep for keep, _ in ours) > 256  # the index was rebuilt at 128 and 256 texts
    assert_same_decisions(ours, alpaca_loop(stream, [], threshold))


def test_japanese_stream_equals_exhaustive_loop():
    rng = random.Random(7)
    vocabulary = [*"日本語の文章をくださいして説明書き換え要約アイウエオー", "AI", "SNS"]
    stream = ["".join(words.split()) for words in _random_stream(rng, 300, vocabulary)]
    t = DEFAULT_THRESHOLDS["ja"]
    assert_same_decisions(
        index_loop(stream, [], t, "ja"),
        alpaca_loop(stream, [], t, tokenizer=lambda text: tokenize(text, "ja")),
    )


def test_check_reports_the_best_neighbour():
    pool = ["write a poem about the sea", "write a poem about the blue sea", "list three fruits"]
    index = NoveltyIndex.from_texts(pool)
    verdict = index.check("Write a poem about the blue sea!")
    assert verdict == Verdict(False, "write a poem about the blue sea", 1.0)
    assert index.check("name three rivers") == Verdict(True)
    assert not index.add_if_novel("write a poem about the sea")
    assert index.add_if_novel("name three rivers in asia")
    assert len(index) == 4


def test_edge_cases():
    index = NoveltyIndex()
    assert index.check("anything") == Verdict(True)  # empty pool
    index.add("")
    index.add("!!!")
    assert index.is_novel("") and index.is_novel("a b")  # no tokens: F = 0
    long = " ".join(f"w{i % 90}" for i in range(300))
    index.add(long)
    assert not index.is_novel(long.upper())
    assert NoveltyIndex(threshold=0.0).add_if_novel("a b")
    zero = NoveltyIndex.from_texts(["a b"], threshold=0.0)
    assert not zero.is_novel("b c") and zero.is_novel("c d")
    assert NoveltyIndex.from_texts(["a b"], threshold=1.0).is_novel("a b")


def test_most_similar_and_mean_equal_alpaca():
    rng = random.Random(3)
    pool = _random_stream(rng, 60, [f"t{i}" for i in range(25)])
    index = NoveltyIndex.from_texts(pool)
    candidate = "t1 t2 t3 t4 t5 t6 t7"
    scores = [reference_f(candidate, text) for text in pool]
    assert index.mean_similarity(candidate) == float(np.mean(scores))
    top = index.most_similar(candidate, k=10)
    assert [s for _, s in top] == sorted(scores, reverse=True)[:10]
    assert all(reference_f(candidate, text) == s for text, s in top)
    assert len(index.most_similar(candidate, k=500)) == 60
    assert index.most_similar(candidate, k=0) == []
    assert NoveltyIndex().most_similar(candidate) == []
    assert NoveltyIndex().mean_similarity(candidate) == 0.0


def test_ties_keep_insertion_order():
    index = NoveltyIndex.from_texts(["a b x", "a b y", "a b z", "q r s"])
    assert [text for text, _ in index.most_similar("a b", k=2)] == ["a b x", "a b y"]
    index = NoveltyIndex.from_texts(["q r s", "A b c!", "a b c"])
    assert index.check("a b c") == Verdict(False, "A b c!", 1.0)


# Japanese and mixed scripts ----------------------------------------------------------------------

JA_NEAR_DUPLICATES = [
    ("次の文章を50字以内で要約してください。", "次の文章を100字以内で要約してください。"),
    (
        "会社の忘年会で使える、1分程度の乾杯の挨拶を考えてください。",
        "会社の新年会で使える、1分程度の乾杯の挨拶を考えてください。",
    ),
    (
        "次の関西弁の文を、意味を変えずに標準語に直してください。",
        "次の関西弁の文章を、意味を変えないで標準語に書き換えてください。",
    ),
    (
        "次の文章から日付と予定を抜き出し、「日付：予定」の形で箇条書きにしてください。",
        "次の文章から日付と予定を抽出して、「日付：予定」の形式で箇条書きにしてください。",
    ),
]


def test_japanese_identical_sentences_score_one():
    text = "日本の四季について説明してください。"
    assert reference_f(text, text) == 0.0  # rouge_score sees no tokens at all
    assert rouge_l(text, text) == rouge_l(text, text, "ja") == 1.0
    index = NoveltyIndex(language="ja")
    assert index.add_if_novel(text) and not index.add_if_novel(text)


def test_japanese_sentences_sharing_only_ai_are_different():
    a, b = "AIの歴史を年表にまとめてください。", "AIが書いた詩を批評する"
    assert reference_f(a, b) == 1.0  # rouge_score: both are just ["ai"]
    assert rouge_l(a, b, "ja") < 0.3
    assert NoveltyIndex.from_texts([a], language="ja").is_novel(b)


@pytest.mark.parametrize(("seed", "paraphrase"), JA_NEAR_DUPLICATES)
def test_japanese_near_duplicates_are_dropped(seed, paraphrase):
    assert rouge_l(seed, paraphrase, "ja") > DEFAULT_THRESHOLDS["ja"]
    assert not NoveltyIndex.from_texts([seed], language="ja").is_novel(paraphrase)


def test_full_width_and_half_width_forms_match():
    assert rouge_l("ＡＩの未来を予測してください", "AIの未来を予測してください") == 1.0
    assert rouge_l("ｶﾀｶﾅで書いてください", "カタカナで書いてください") == 1.0


def test_mixed_scripts_in_one_index_equal_exhaustive_loop():
    pool = ["Explain AI safety.", "AIの安全性を説明してください。", "Café recipes", "café レシピ"]
    stream = ["explain ai safety", "AIの安全性を説明して", "Cafe recipes", "CAFÉ レシピ!", "ai"]
    assert_same_decisions(
        index_loop(stream, pool, 0.7, "auto"),
        alpaca_loop(stream, pool, 0.7, tokenizer=lambda text: tokenize(text, "auto")),
    )


def test_japanese_seed_tasks_are_mutually_novel_at_the_default_threshold():
    if not JA_SEEDS.exists():
        pytest.skip(f"{JA_SEEDS} not present")
    seeds = [json.loads(line)["instruction"] for line in JA_SEEDS.read_text("utf-8").splitlines()]
    index = NoveltyIndex(language="ja")
    rejected = [(seed, index.check(seed)) for seed in seeds if not index.add_if_novel(seed)]
    assert rejected == []


# Thresholds, persistence, validation --------------------------------------------------------------


def test_default_thresholds():
    assert default_threshold("en") == default_threshold("auto") == 0.7
    assert NoveltyIndex().threshold == 0.7
    assert NoveltyIndex(language="ja").threshold == DEFAULT_THRESHOLDS["ja"]
    assert NoveltyIndex(0.5, "ja").threshold == 0.5


def test_save_and_load_keep_the_pool(tmp_path):
    rng = random.Random(11)
    stream = ["日本語の指示です。", *_random_stream(rng, 400, [f"t{i}" for i in range(60)])]
    index = NoveltyIndex(threshold=0.6, language="ja")
    for text in stream[:300]:
        index.add_if_novel(text)
    path = tmp_path / "pool.json"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["pool.json"]
    assert json.loads(path.read_text("utf-8"))["texts"] == index.texts  # insertion order
    assert "日本語の指示です。" in path.read_text("utf-8")
    restored = NoveltyIndex.load(path)
    assert (restored.texts, restored.threshold, restored.language) == (index.texts, 0.6, "ja")
    for text in stream[300:]:
        assert restored.check(text) == index.check(text)
        assert restored.add_if_novel(text) == index.add_if_novel(text)


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"texts": []}))
    with pytest.raises(ValueError, match="not a"):
        NoveltyIndex.load(path)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="language"):
        NoveltyIndex(language="fr")
    with pytest.raises(ValueError, match="language"):
        rouge_l("a", "b", language="xx")
    with pytest.raises(ValueError, match="threshold"):
        NoveltyIndex(threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        NoveltyIndex(threshold=float("nan"))


def test_symbols_skip_surrogates():
    assert symbol_for(0xD7FF) == "\ud7ff"
    assert symbol_for(0xD800) == "\ue000"
    assert symbol_for(0x110000 - 0x800 - 1) == "\U0010ffff"
    with pytest.raises(OverflowError):
        symbol_for(0x110000 - 0x800)


# Pruned provenance (selfinstruct.neighbours) against brute force -------------------------------


def brute_top_k(candidate: str, pool: list[str], k: int) -> list[tuple[str, float]]:
    """Every pooled text scored with rouge_score; best first, ties in insertion order."""
    scored = sorted(enumerate(reference_f(text, candidate) for text in pool), key=lambda p: -p[1])
    return [(pool[i], score) for i, score in scored[:k]]


@pytest.mark.parametrize("seed", range(6))
def test_pruned_top_k_and_mean_equal_brute_force(seed):
    """Few words and short texts: many texts tie on the k-th score, many share no token, and
    top-k needs several doubling rounds (pool of 600 > the first batch of 64)."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(rng.choice((6, 30, 200)))]
    pool = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 9))) for _ in range(600)]
    index = NoveltyIndex.from_texts(pool)
    for _ in range(8):
        candidate = " ".join(rng.choices(vocabulary, k=rng.randint(0, 9)))
        for k in (1, 3, 10, 40, 700):
            assert index.most_similar(candidate, k) == brute_top_k(candidate, pool, k)
        scores = [reference_f(text, candidate) for text in pool]
        assert index.mean_similarity(candidate) == float(np.mean(scores))


def test_provenance_follows_a_growing_pool():
    """Postings are caught up lazily: rows added after a query are seen by the next one."""
    index = NoveltyIndex.from_texts(["a b c", "d e f"])
    assert index.most_similar("a b c x", 1) == [("a b c", reference_f("a b c", "a b c x"))]
    index.add("a b c x")
    assert index.most_similar("a b c x", 1) == [("a b c x", 1.0)]
    assert index.mean_similarity("a b c x") == float(np.mean(
        [reference_f(t, "a b c x") for t in ("a b c", "d e f", "a b c x")]))


def test_batched_means_equal_the_mean_at_acceptance():
    """mean_similarities over (text, pool size when accepted) gives the bits mean_similarity
    gave at that moment, for a pool that grew in between (empty texts included)."""
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(40)]
    index = NoveltyIndex.from_texts(["w1 w2 w3", ""])
    rows, expected = [], []
    for _ in range(300):
        text = " ".join(rng.choices(vocabulary, k=rng.randint(0, 12)))
        if index.is_novel(text):
            rows.append((text, len(index)))
            expected.append(index.mean_similarity(text))
            index.add(text)
    assert len(rows) > 100
    assert index.mean_similarities(rows) == expected
    assert index.mean_similarities([]) == []
    assert index.mean_similarities([("w1", 0)]) == [0.0]
    with pytest.raises(ValueError, match="outside the pool"):
        index.mean_similarities([("w1", len(index) + 1)])
