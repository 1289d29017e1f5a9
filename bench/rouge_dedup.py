"""ROUGE-L near-duplicate removal: NoveltyIndex against Alpaca's exhaustive rouge_score loop.

    python bench/rouge_dedup.py            # full run, about a minute
    python bench/rouge_dedup.py --quick    # short run: smaller streams and job, no memory pass
    python bench/rouge_dedup.py --million  # only the 1M job (section 5), several minutes

Everything runs in this one process on one core (rapidfuzz workers=1; Alpaca's process pool
is left out: it divides wall time, not CPU time) and is timed with time.process_time.
The texts are generated here, deterministically: instruction-like templates whose slots are
filled from a 40,000-word Zipf vocabulary of made-up words, with 15% of candidates being
light edits (a word replaced, dropped, inserted or swapped) of an earlier candidate: about a
quarter of a stream is rejected, as in a real run. Texts average 16 tokens, the mean
instruction length Self-Instruct reports for its 52K set (15.9 words).

Sections:
1. Pools of 1K, 5K and 20K accepted texts. (a) Alpaca's loop, sampled: rouge_score
   tokenizer, ``rouge_scorer._score_lcs`` against every pooled text, top-10 by np.argsort,
   max > 0.7, for a few candidates spread over the stream (the count is printed). (b)
   NoveltyIndex.add_if_novel over a 2,000-candidate sequential stream. Decisions of (b) are
   compared with an exhaustive reference over the same stream: every pooled text scored,
   rouge_score's tokenizer and F expression, the LCS length from rapidfuzz (rouge_score's
   own DP would need most of an hour at 20K; tests/test_similarity.py checks that both give
   the same L and the same F bits); the sampled (a) candidates are also checked against
   rouge_score itself (same keep/drop, bit-identical max F).
2. The Alpaca-scale job: 175 seed texts, then a stream until 52,000 are accepted; CPU
   seconds of NoveltyIndex calls only (generating the texts is not timed).
3. Peak memory of that 52K index: tracemalloc's peak while the same stream is replayed into
   a fresh index (each candidate copied inside the traced region, so the texts the index
   keeps are counted); interpreter and imported modules are not. ru_maxrss of the whole
   process is printed as an upper bound.
4. The Japanese default threshold: max ROUGE-L of each seed task in seeds/ja_general.jsonl
   against the others, and the scores of 40 hand-written near-duplicate pairs.
5. ``--million`` (instead of 1-4): 175 seeds, then one stream until 1,000,000 are accepted.
   CPU seconds of the NoveltyIndex calls, peak RSS of the process (ru_maxrss: the generated
   texts, the exhaustive reference's encodings and the index together, so an upper bound)
   and the core count. Every SAMPLE_EVERY-th candidate's decision is compared, before it is
   added, with the exhaustive rule over the pool at that moment (ExhaustiveReference: every
   pooled text scored; untimed). At the 200K and 1M pool points: candidates/s of
   NoveltyIndex.check over the next 2,000 candidates, as a ratio against the exhaustive rule
   on 50 of them (the baseline in the same run), and the CPU per row of the provenance
   calls (most_similar(text, 10) + mean_similarity) for a few rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import sys
import time
import tracemalloc
from bisect import bisect
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from rouge_score import rouge_scorer

from selfinstruct.similarity import DEFAULT_THRESHOLDS, NoveltyIndex, rouge_l

THRESHOLD = 0.7
POOL_SIZES = (1_000, 5_000, 20_000)
JOB_ACCEPTED = 52_000
JOB_SEEDS = 175
SEEDS_JA = Path(__file__).resolve().parents[1] / "seeds" / "ja_general.jsonl"

TARGET_RATE = 4_000  # candidates/s at a 20K pool
TARGET_RATIO = 5_000  # vs Alpaca's loop at 20K
TARGET_JOB_CPU = 30.0  # s
TARGET_MEMORY_MB = 500.0
MILLION = 1_000_000
MILLION_POINTS = (200_000, MILLION)
SAMPLE_EVERY = 5_000  # candidates between two exhaustive checks in the 1M job
PROGRESS_EVERY = 100_000  # accepted texts between two progress lines
TARGET_MILLION_CPU = 600.0  # s
TARGET_MILLION_RSS_MB = 2048.0

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

# Generated texts -------------------------------------------------------------------------------

CONSONANTS = (
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "ch", "sh", "th", "st", "tr", "br", "pl",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
FUNCTION_WORDS = (
    "the", "a", "an", "of", "to", "in", "for", "on", "with", "and", "or", "by", "from", "that",
    "this", "as", "at", "about", "into",
)
NUMBERS = ("two", "three", "four", "five", "six", "seven", "ten", "3", "5", "10", "20", "100")
EDIT_WORDS = ("please", "briefly", "also", "carefully", "new")
# Constraints that half of the instructions end with, as generated instructions often do.
SUFFIXES = (
    " Keep it under {num} words.",
    " Use simple language for {np}.",
    " Include {num} examples from {np}.",
    " Answer in the style of {np}.",
    " Explain your reasoning step by step.",
    " Format the answer as a {w} {w}.",
)
TEMPLATES = (
    "Write a {w} {w} about {np}.",
    "Explain the difference between {np} and {np}.",
    "Give {num} tips for {w} {np} in {np}.",
    "Classify the following {w} as {w}, {w} or {w}: {sent}",
    "Generate a list of {num} {w} that {w} {np}.",
    "Summarize the {w} below in one sentence. {sent}",
    "Rewrite this {w} so that it sounds more {w}: {sent}",
    "What is the {w} of {np}?",
    "Translate the following sentence into {w}: {sent}",
    "Create a {w} for a {w} {w} that {w} {np}.",
    "Describe {np} to someone who has never seen {np}.",
    "Suggest {num} ways to {w} {np} without {np}.",
    "Compose a {w} to {np} asking about {np}.",
    "Find the {w} in the {w} below and explain why it is {w}. {sent}",
    "Identify whether the {w} is {w} or {w}. {sent}",
    "Come up with a {w} {w} for {np}.",
    "How can {np} {w} {np} more {w}?",
    "Edit the {w} to make it more {w} and {w}. {sent}",
    "List {num} {w} {w} and describe each in one {w}.",
    "Design a {w} plan for {np} with {num} {w}.",
    "Why does {np} {w} {np}?",
    "Compare {np} with {np} in terms of {w} and {w}.",
    "Predict what will happen if {np} {w} {np}.",
    "Provide an example of {np} used in {np}.",
    "Convert the {w} below into a {w} {w}. {sent}",
    "Name {num} {w} that are {w} for {np}.",
    "Outline the main {w} of {np} for a {w} {w}.",
    "Tell me a {w} story about {np} and {np}.",
    "Evaluate the {w} of this {w}: {sent}",
    "Brainstorm {num} {w} names for {np}.",
)


class InstructionStream:
    """An endless, deterministic stream of instruction-like texts with near-duplicates."""

    def __init__(self, seed: int, vocabulary: int = 40_000, edit_rate: float = 0.15) -> None:
        self.rng = random.Random(seed)
        words: dict[str, None] = {}
        while len(words) < vocabulary:
            syllables = self.rng.choice((1, 2, 2, 3))
            word = "".join(
                self.rng.choice(CONSONANTS) + self.rng.choice(VOWELS) for _ in range(syllables)
            )
            words[word] = None
        self.words = list(words)
        self.cumulative = list(itertools.accumulate(1.0 / (r + 30) for r in range(vocabulary)))
        self.edit_rate = edit_rate
        self.recent: list[str] = []
        self.slots: dict[str, Callable[[], str]] = {
            "w": self.word,
            "np": self.noun_phrase,
            "sent": self.sentence,
            "num": lambda: self.rng.choice(NUMBERS),
        }

    def word(self) -> str:
        return self.words[bisect(self.cumulative, self.rng.random() * self.cumulative[-1])]

    def noun_phrase(self) -> str:
        k = self.rng.random()
        if k < 0.3:
            return f"the {self.word()}"
        if k < 0.55:
            return f"a {self.word()} {self.word()}"
        if k < 0.8:
            return f"{self.word()} {self.word()}"
        return f"{self.word()} of the {self.word()}"

    def sentence(self) -> str:
        words = [
            self.rng.choice(FUNCTION_WORDS) if self.rng.random() < 0.35 else self.word()
            for _ in range(self.rng.randint(5, 16))
        ]
        return " ".join(words).capitalize() + "."

    def fresh(self) -> str:
        template = self.rng.choice(TEMPLATES)
        if self.rng.random() < 0.5:
            template += self.rng.choice(SUFFIXES)
        head, *parts = template.split("{")
        out = [head]
        for part in parts:
            slot, tail = part.split("}", 1)
            out += [self.slots[slot](), tail]
        return "".join(out)

    def edit(self, text: str) -> str:
        words = text.split()
        for _ in range(self.rng.randint(1, 2)):
            op, i = self.rng.random(), self.rng.randrange(len(words))
            if op < 0.4:
                words[i] = self.word()
            elif op < 0.6 and len(words) > 3:
                del words[i]
            elif op < 0.8:
                words.insert(i, self.rng.choice(EDIT_WORDS))
            elif i + 1 < len(words):
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    def __iter__(self) -> Iterator[str]:
        while True:
            if self.recent and self.rng.random() < self.edit_rate:
                text = self.edit(self.rng.choice(self.recent))
            else:
                text = self.fresh()
            self.recent.append(text)
            if len(self.recent) > 20_000:  # edits copy recent candidates, as a model would
                del self.recent[:10_000]
            yield text


# Alpaca's loop and the exhaustive reference ------------------------------------------------------


def rouge_tokens(text: str) -> list[str]:
    return SCORER._tokenizer.tokenize(text)


def alpaca_candidate(
    pool_tokens: list[list[str]], pool_texts: list[str], text: str
) -> tuple[bool, float, list[str]]:
    """One iteration of stanford_alpaca's generate_instruction.py dedup, on one core."""
    tokens = rouge_tokens(text)
    scores = [rouge_scorer._score_lcs(tokens, other).fmeasure for other in pool_tokens]
    neighbours = [pool_texts[i] for i in np.argsort(scores)[-10:][::-1]]
    best = max(scores)
    return not best > THRESHOLD, best, neighbours


class ExhaustiveReference:
    """Alpaca's keep rule (max F over every pooled text <= 0.7), every pair scored.

    rouge_score's tokenizer and F expression; L from rapidfuzz on its own token encoding.
    """

    def __init__(self, pool: list[str], capacity: int) -> None:
        self.symbols: dict[str, str] = {}
        self.codes: list[str] = []
        self.lengths = np.zeros(capacity, dtype=np.int64)
        for text in pool:
            self._append(rouge_tokens(text))

    def _append(self, tokens: list[str]) -> None:
        self.lengths[len(self.codes)] = len(tokens)
        self.codes.append(self._encode(tokens))

    def _encode(self, tokens: list[str]) -> str:
        # Code points from U+10000 up: never a surrogate, 1M distinct tokens.
        symbols = self.symbols
        return "".join(symbols.setdefault(t, chr(0x10000 + len(symbols))) for t in tokens)

    def is_novel(self, text: str) -> bool:
        """Max F over every pooled text <= THRESHOLD (the pool is not changed)."""
        return self._is_novel(rouge_tokens(text))

    def _is_novel(self, tokens: list[str]) -> bool:
        if tokens and self.codes:
            lcs = process.cdist(
                [self._encode(tokens)], self.codes, scorer=LCSseq.similarity, dtype=np.int64,
                workers=1,
            )[0]
            hit = lcs > 0
            p = lcs[hit] / self.lengths[: len(self.codes)][hit]
            r = lcs[hit] / len(tokens)
            if (2 * p * r / (p + r) > THRESHOLD).any():
                return False
        return True

    def add(self, text: str) -> None:
        """Pool ``text`` unconditionally (the capacity grows as needed)."""
        if len(self.codes) == self.lengths.size:
            self.lengths = np.concatenate([self.lengths, np.zeros_like(self.lengths)])
        self._append(rouge_tokens(text))

    def add_if_novel(self, text: str) -> bool:
        tokens = rouge_tokens(text)
        if not self._is_novel(tokens):
            return False
        self._append(tokens)
        return True


# Sections ---------------------------------------------------------------------------------------


def build_pools(stream_length: int) -> tuple[list[str], list[str], dict[int, int]]:
    """Candidates and accepted texts until the largest pool, then stream_length more."""
    candidates: list[str] = []
    accepted: list[str] = []
    starts: dict[int, int] = {}
    index = NoveltyIndex(THRESHOLD, "en")
    stream = iter(InstructionStream(seed=1))
    while len(accepted) < max(POOL_SIZES):
        text = next(stream)
        candidates.append(text)
        if index.add_if_novel(text):
            accepted.append(text)
            if len(accepted) in POOL_SIZES:
                starts[len(accepted)] = len(candidates)
    candidates += itertools.islice(stream, stream_length)
    return candidates, accepted, starts


def compare_with_alpaca(stream_length: int, samples: dict[int, int]) -> dict[int, dict]:
    candidates, accepted, starts = build_pools(stream_length)
    print("Sample candidates:", *(f"  {t}" for t in candidates[:3]), sep="\n")
    print(
        f"\n{'pool':>6} | {'(a) Alpaca cand/s':>17} | {'sampled':>7} | {'(b) index cand/s':>16} |"
        f" {'b/a':>9} | {'rejected':>8} | identical decisions"
    )
    results: dict[int, dict] = {}
    for size in POOL_SIZES:
        pool = accepted[:size]
        stream = candidates[starts[size] : starts[size] + stream_length]
        # (a) Alpaca's loop on a few candidates of the stream, the pool tokenized up front.
        pool_tokens = [rouge_tokens(t) for t in pool]
        sampled = stream[:: len(stream) // samples[size]][: samples[size]]  # spread out
        start = time.process_time()
        alpaca = [alpaca_candidate(pool_tokens, pool, text) for text in sampled]
        rate_a = len(sampled) / (time.process_time() - start)
        static = NoveltyIndex.from_texts(pool, THRESHOLD, "en")
        verdicts = [static.check(text) for text in sampled]
        sampled_agree = all(
            v.novel == keep and (keep or v.score == best)
            for v, (keep, best, _) in zip(verdicts, alpaca, strict=True)
        )
        # (b) the index over the whole sequential stream.
        index = NoveltyIndex.from_texts(pool, THRESHOLD, "en")
        start = time.process_time()
        ours = [index.add_if_novel(text) for text in stream]
        rate_b = len(stream) / (time.process_time() - start)
        reference = ExhaustiveReference(pool, size + len(stream))
        identical = ours == [reference.add_if_novel(text) for text in stream] and sampled_agree
        results[size] = {"a": rate_a, "b": rate_b, "identical": identical}
        print(
            f"{size:>6} | {rate_a:>17.2f} | {len(sampled):>7} | {rate_b:>16,.0f} |"
            f" {rate_b / rate_a:>8,.0f}x | {ours.count(False):>8} |"
            f" {'yes' if identical else 'NO'} ({len(stream)}-candidate stream vs exhaustive"
            f" reference; {len(sampled)} sampled vs rouge_score)"
        )
    return results


def run_job(target: int) -> tuple[float, list[str], list[str]]:
    """Seeds, then candidates until ``target`` accepted; CPU of the index calls only."""
    stream = InstructionStream(seed=2)
    seeds = [stream.fresh() for _ in range(JOB_SEEDS)]
    chunks = iter(lambda: list(itertools.islice(stream, 10_000)), None)  # generated untimed
    candidates: list[str] = []
    start = time.process_time()
    index = NoveltyIndex.from_texts(seeds, THRESHOLD, "en")
    cpu = time.process_time() - start
    accepted = 0
    for chunk in chunks:
        start = time.process_time()
        for text in chunk:
            candidates.append(text)
            accepted += index.add_if_novel(text)
            if accepted == target:
                break
        cpu += time.process_time() - start
        if accepted == target:
            return cpu, seeds, candidates
    raise AssertionError("unreachable: the stream is endless")


def traced_peak_mb(seeds: list[str], candidates: list[str]) -> tuple[float, float, int]:
    """tracemalloc peak and retained MB while replaying the job into a fresh index."""
    tracemalloc.start()
    index = NoveltyIndex.from_texts([s.encode().decode() for s in seeds], THRESHOLD, "en")
    for text in candidates:
        index.add_if_novel(text.encode().decode())  # a copy: the index's own texts count
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, current / 2**20, len(index)


JA_NEAR_DUPLICATES = [
    ("次の文を、取引先に送っても失礼にならない丁寧な敬語に書き換えてください。",
     "次の文章を、取引先に送っても失礼のない丁寧な敬語に直してください。"),
    ("指定された月にふさわしい、ビジネス文書の書き出しに使う時候の挨拶を一文で書いてください。",
     "指定した月に合った、ビジネス文書の冒頭で使う時候の挨拶を一文で書いてください。"),
    ("四字熟語の意味を説明し、その熟語を使った例文を一つ作ってください。",
     "四字熟語の意味を説明して、その熟語を使った例文を二つ作ってください。"),
    ("次のことわざの意味を、小学生にも分かる言葉で説明し、どんな場面で使うかも教えてください。",
     "次のことわざの意味を小学生でも分かる言葉で説明し、どのような場面で使うかも教えてください。"),
    ("次の漢字の読み方を、ひらがなで答えてください。",
     "次の漢字の読みを、ひらがなで書いてください。"),
    ("日本の年中行事について、由来と主な過ごし方を三文程度で説明してください。",
     "日本の年中行事について、その由来と一般的な過ごし方を三文ほどで説明してください。"),
    ("次のニュースの見出しを「政治」「経済」「スポーツ」「科学」「エンタメ」のいずれかに分類してください。",
     "次のニュース見出しを「政治」「経済」「スポーツ」「科学」「エンタメ」のどれかに分類してください。"),
    ("この商品レビューは「肯定的」「否定的」「中立」のどれに当たりますか。ラベルだけで答えてください。",
     "次の商品レビューが「肯定的」「否定的」「中立」のどれに当たるか、ラベルのみで答えてください。"),
    ("次の発言の丁寧さを「丁寧」「普通」「くだけた」の三段階で判定してください。",
     "次の発言がどのくらい丁寧かを「丁寧」「普通」「くだけた」の三段階で評価してください。"),
    ("次の文章を50字以内で要約してください。",
     "次の文章を100字以内で要約してください。"),
    ("次の文章題を解いてください。途中の式も示してください。",
     "次の文章題を解き、途中の計算式も書いてください。"),
    ("税抜きの定価と割引率から、消費税10%を含めた支払額を計算してください。1円未満は切り捨てとします。",
     "税抜価格と割引率から、消費税10%込みの支払金額を計算してください。1円未満は切り捨てます。"),
    ("冷蔵庫にある材料だけで作れる簡単な料理を一品提案し、作り方を手順ごとに書いてください。",
     "冷蔵庫の残り物だけで作れる簡単な料理を一品提案し、作り方を順番に書いてください。"),
    ("次の条件に合う国内旅行の日程案を、時間帯ごとに作ってください。",
     "次の条件に合った国内旅行のスケジュールを、時間帯ごとに作成してください。"),
    ("納期の遅れを取引先に知らせて謝罪するメールを、件名を含めて作成してください。",
     "納品の遅れを取引先に伝えて謝罪するメールを、件名も含めて書いてください。"),
    ("上司に有給休暇の取得を申請する社内チャットのメッセージを、簡潔かつ失礼のない文面で書いてください。",
     "上司に有給休暇を申請するための社内チャットのメッセージを、簡潔で失礼のない文面で作ってください。"),
    ("次のメール本文が「迷惑メール」か「通常メール」かを判定してください。",
     "次のメールが「迷惑メール」と「通常メール」のどちらかを判定してください。"),
    ("次の単語の品詞を「名詞」「動詞」「形容詞」「形容動詞」「副詞」の中から選んでください。",
     "次の単語の品詞を「名詞」「動詞」「形容詞」「副詞」の中から一つ選んでください。"),
    ("次の文は事実を述べたものですか、それとも意見ですか。「事実」か「意見」で答えてください。",
     "次の文は事実と意見のどちらを述べていますか。「事実」か「意見」で答えてください。"),
    ("お客様からの問い合わせを、「配送」「返品・交換」「支払い」「その他」のうち適切な担当窓口に振り分けてください。",
     "お客様からの問い合わせ内容を、「配送」「返品・交換」「支払い」「その他」のうち適切な窓口に分類してください。"),
    ("俳句に含まれる季語を手がかりに、詠まれている季節を「春」「夏」「秋」「冬」のいずれかで答えてください。",
     "俳句の季語から、詠まれている季節を「春」「夏」「秋」「冬」のどれかで答えてください。"),
    ("前提から結論が必ず正しいと言えるかどうかを、「はい」または「いいえ」で答えてください。",
     "前提から結論が必ず導けるかどうかを、「はい」か「いいえ」で答えてください。"),
    ("社内チャットに届いたメッセージの緊急度を、「高」「中」「低」で判定してください。",
     "社内チャットで受け取ったメッセージの緊急度を「高」「中」「低」の三段階で判定してください。"),
    ("次の文で使われている敬語の種類を、「尊敬語」「謙譲語」「丁寧語」から一つ選んでください。",
     "次の文の敬語が「尊敬語」「謙譲語」「丁寧語」のどれにあたるか答えてください。"),
    ("定年退職する上司への贈り物のアイデアを、おおよその予算とあわせて5つ挙げてください。",
     "定年退職する上司へのプレゼントのアイデアを、予算の目安とあわせて5つ挙げてください。"),
    ("次の文章の誤字・脱字や不自然な表現を直し、修正後の文章だけを示してください。",
     "次の文章の誤字脱字や不自然な言い回しを修正し、修正した文章のみを示してください。"),
    ("次の文章から日付と予定を抜き出し、「日付：予定」の形で箇条書きにしてください。",
     "次の文章から日付と予定を抽出して、「日付：予定」の形式で箇条書きにしてください。"),
    ("次の箇条書きを、列見出し付きのMarkdownの表に整えてください。",
     "次の箇条書きを、見出し行のあるMarkdownの表に変換してください。"),
    ("指定された処理を行うPythonの関数を書き、簡単な使用例も添えてください。",
     "指定された処理をするPython関数を書いて、簡単な使い方の例も付けてください。"),
    ("文章を読んで、後の質問に文章の内容だけを根拠にして答えてください。",
     "文章を読み、後に続く質問に文章の内容だけを根拠に答えてください。"),
    ("寝つきが悪いという悩みに対して、生活習慣の面から具体的なアドバイスを5つ挙げてください。",
     "寝つきが悪いという悩みに、生活習慣の観点から具体的なアドバイスを3つ挙げてください。"),
    ("複利の仕組みを、具体的な数字を使った例で分かりやすく説明してください。",
     "複利の仕組みを、具体的な数字を使った例を挙げて簡単に説明してください。"),
    ("次のテーマについて、メリットとデメリットを二つずつ挙げてください。",
     "次のテーマについて、メリットとデメリットを三つずつ挙げてください。"),
    ("会社の忘年会で使える、1分程度の乾杯の挨拶を考えてください。",
     "会社の新年会で使える、1分程度の乾杯の挨拶を考えてください。"),
    ("お中元をいただいた相手に送る、丁寧なお礼状の文面を書いてください。",
     "お歳暮をいただいた相手に送る、丁寧なお礼状の文面を作ってください。"),
    ("次の関西弁の文を、意味を変えずに標準語に直してください。",
     "次の関西弁の文章を、意味を変えないで標準語に書き換えてください。"),
    ("地震に備えて家庭で準備しておきたいものを、理由とともに挙げてください。",
     "地震に備えて家で用意しておくべきものを、理由と一緒に挙げてください。"),
    ("次の書き出しに続けて、200字程度の短い物語を書いてください。",
     "次の書き出しに続けて、300字程度の短いお話を書いてください。"),
    ("次の文章から、内容を表す重要なキーワードを5つ抜き出してください。",
     "次の文章から、内容を表すキーワードを3つ抜き出してください。"),
    ("和食の席で避けたい箸の使い方のマナー違反を、名前と内容をセットで4つ紹介してください。",
     "和食の席で避けるべき箸のマナー違反を、名前と内容をセットで5つ紹介してください。"),
]


def japanese_threshold_evidence() -> bool:
    """Print the measurements behind DEFAULT_THRESHOLDS["ja"]; True if it separates them."""
    threshold = DEFAULT_THRESHOLDS["ja"]
    if not SEEDS_JA.exists():
        print(f"{SEEDS_JA} missing: skipped")
        return False
    lines = SEEDS_JA.read_text(encoding="utf-8").splitlines()
    seeds = [json.loads(line)["instruction"] for line in lines if line.strip()]
    nearest = [
        max(rouge_l(a, b, "ja") for j, b in enumerate(seeds) if j != i)
        for i, a in enumerate(seeds)
    ]
    pairs = [rouge_l(a, b, "ja") for a, b in JA_NEAR_DUPLICATES]

    def describe(values: list[float]) -> str:
        q = np.percentile(values, [0, 10, 50, 90, 100])
        return "min {:.3f}  p10 {:.3f}  median {:.3f}  p90 {:.3f}  max {:.3f}".format(*q)

    print(f"{len(seeds)} distinct seed tasks, max ROUGE-L against the other seeds:")
    print(f"  {describe(nearest)}")
    print(f"{len(pairs)} hand-written near-duplicate pairs (seed, light rewording):")
    print(f"  {describe(pairs)}")
    print(f"\n{'threshold':>9} | seeds rejected (added in file order) | near-duplicates dropped")
    for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        index = NoveltyIndex(t, "ja")
        rejected = sum(not index.add_if_novel(s) for s in seeds)
        dropped = sum(score > t for score in pairs)
        mark = "  <- default" if t == threshold else ""
        print(f"{t:>9.2f} | {rejected:>36} | {dropped:>2} of {len(pairs)}{mark}")
    english = SEEDS_JA.with_name("en_general.jsonl")
    if english.exists():
        lines = english.read_text(encoding="utf-8").splitlines()
        en = [json.loads(line)["instruction"] for line in lines if line.strip()]
        en_nearest = [
            max(rouge_l(a, b, "en") for j, b in enumerate(en) if j != i) for i, a in enumerate(en)
        ]
        print(f"\nFor comparison, {len(en)} English seeds ('en', threshold 0.7):")
        print(f"  {describe(en_nearest)}")
    index = NoveltyIndex(threshold, "ja")
    kept_all = all(index.add_if_novel(s) for s in seeds)
    return kept_all and sum(score > threshold for score in pairs) >= 0.95 * len(pairs)


def million_point(
    index: NoveltyIndex, reference: ExhaustiveReference, stream: Iterator[str], rows: list[str]
) -> tuple[float, float, float, float, float]:
    """Candidates/s of ``check`` over 2,000 candidates, and of the exhaustive rule (every
    pooled text scored, one cdist call per candidate) over the first 50 of them, the
    baseline of the ratio; the one-time CPU s of the provenance postings (built on the first
    provenance call, for the whole pool); CPU s per row of most_similar(text, 10) +
    mean_similarity after that; CPU s per row of the same means batched (one
    mean_similarities call for all rows)."""
    probe = list(itertools.islice(stream, 2_000))
    start = time.process_time()
    for text in probe:
        index.check(text)
    rate = len(probe) / (time.process_time() - start)
    start = time.process_time()
    for text in probe[:50]:
        reference.is_novel(text)
    exhaustive = 50 / (time.process_time() - start)
    start = time.process_time()
    index.most_similar(probe[0], 10)
    build = time.process_time() - start
    start = time.process_time()
    for text in rows:
        index.most_similar(text, 10)
        index.mean_similarity(text)
    single = (time.process_time() - start) / len(rows)
    start = time.process_time()
    index.mean_similarities([(text, len(index)) for text in rows])
    return rate, exhaustive, build, single, (time.process_time() - start) / len(rows)


def run_million(target: int = MILLION) -> bool:
    """Section 5: the job until ``target`` accepted; True if every target is met."""
    stream = iter(InstructionStream(seed=3))
    seeds = [next(stream) for _ in range(JOB_SEEDS)]
    start = time.process_time()
    index = NoveltyIndex.from_texts(seeds, THRESHOLD, "en")
    cpu = time.process_time() - start
    reference = ExhaustiveReference(seeds, 1 << 16)
    accepted = candidates = checked = duplicates = 0
    mismatches: list[str] = []
    points: dict[int, tuple[float, float, float, float, float]] = {}
    wall = time.perf_counter()
    progress = PROGRESS_EVERY
    while accepted < target:
        chunk = list(itertools.islice(stream, SAMPLE_EVERY))  # generated untimed
        probe, decisions = chunk[0], []
        expected = reference.is_novel(probe)
        if expected != index.is_novel(probe):
            mismatches.append(probe)
        checked += 1
        duplicates += not expected
        start = time.process_time()
        for text in chunk:
            novel = index.add_if_novel(text)
            decisions.append(novel)
            accepted += novel
            candidates += 1
            if (accepted in MILLION_POINTS or accepted == target) and novel:
                break
        cpu += time.process_time() - start
        for text, novel in zip(chunk, decisions, strict=False):
            if novel:
                reference.add(text)
        if accepted >= progress:
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"  {accepted:>9,} accepted of {candidates:,} candidates: job CPU {cpu:.1f} s,"
                f" peak RSS {rss_mb:,.0f} MB", flush=True,
            )
            progress += PROGRESS_EVERY
        if (accepted in MILLION_POINTS or accepted == target) and accepted not in points:
            rows = list(itertools.islice(stream, 20))
            points[accepted] = million_point(index, reference, stream, rows)
            rate, exhaustive, build, provenance, batched = points[accepted]
            print(
                f"  pool {accepted:>9,}: check() {rate:,.0f} candidates/s, the exhaustive rule"
                f" {exhaustive:,.1f} ({rate / exhaustive:,.0f}x); provenance postings"
                f" built once in {build:.1f} s CPU, then most_similar(10) + mean_similarity"
                f" {provenance * 1000:.1f} ms CPU per row; means batched {len(rows)} at a time"
                f" {batched * 1000:.1f} ms CPU per row", flush=True,
            )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{candidates:,} candidates, {accepted:,} accepted ({candidates - accepted:,} rejected):"
        f" {cpu:.1f} s CPU of NoveltyIndex calls ({candidates / cpu:,.0f} candidates/s),"
        f" {time.perf_counter() - wall:.0f} s wall for the whole section"
    )
    print(f"peak RSS of this process (ru_maxrss, upper bound): {rss_mb:,.0f} MB")
    print(
        f"{checked} candidates (one per {SAMPLE_EVERY:,}) checked against the exhaustive rule"
        f" over the pool at that moment ({duplicates} of them near-duplicates):"
        f" {checked - len(mismatches)} identical"
    )
    checks = [
        (f"{target:,}-accepted job <= {TARGET_MILLION_CPU:.0f} s CPU", cpu <= TARGET_MILLION_CPU),
        (f"peak RSS <= {TARGET_MILLION_RSS_MB:.0f} MB", rss_mb <= TARGET_MILLION_RSS_MB),
        ("sampled decisions identical to the exhaustive rule", not mismatches),
    ]
    print("\n== Targets ==")
    for name, ok in checks:
        print(f"  {verdict(ok):<22} {name}")
    return all(ok for _, ok in checks)


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "not measured (--quick)"}[ok]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (~10 s)")
    parser.add_argument("--million", action="store_true", help="only the 1M-accepted job")
    parser.add_argument(
        "--accepted", type=int, default=MILLION, help="with --million: stop at this many accepted"
    )
    args = parser.parse_args()
    stream_length = 500 if args.quick else 2_000
    samples = dict(zip(POOL_SIZES, (10, 3, 1) if args.quick else (40, 10, 4), strict=True))
    job_target = 10_000 if args.quick else JOB_ACCEPTED

    print(
        f"Python {platform.python_version()} on {platform.machine()}, one core;"
        f" rapidfuzz {version('rapidfuzz')}, rouge-score {version('rouge-score')},"
        f" numpy {np.__version__}. CPU time: time.process_time. {os.cpu_count()} cores,"
        f" {time.strftime('%Y-%m-%d', time.gmtime())}.\n"
    )
    if args.million:
        print(f"== 5. {JOB_SEEDS} seeds, stream until {args.accepted:,} accepted (one core) ==")
        return 0 if run_million(args.accepted) else 1
    print("== 1. Candidates per second against a pool (threshold 0.7, language 'en') ==")
    pools = compare_with_alpaca(stream_length, samples)

    print(f"\n== 2. Alpaca-scale job: {JOB_SEEDS} seeds, stream until {job_target:,} accepted ==")
    cpu, seeds, candidates = run_job(job_target)
    print(
        f"{len(candidates):,} candidates, {job_target:,} accepted,"
        f" {len(candidates) - job_target:,} rejected: {cpu:.2f} s CPU"
        f" ({len(candidates) / cpu:,.0f} candidates/s)"
    )

    print(f"\n== 3. Peak memory of the {job_target:,}-text index ==")
    peak_mb = None
    if not args.quick:
        peak_mb, retained_mb, size = traced_peak_mb(seeds, candidates)
        print(
            f"tracemalloc while replaying the job ({size:,} texts pooled):"
            f" peak {peak_mb:.1f} MB, retained at the end {retained_mb:.1f} MB"
        )
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ru_maxrss of this whole benchmark process (upper bound): {maxrss_mb:.0f} MB")

    print(f"\n== 4. Japanese default threshold ({DEFAULT_THRESHOLDS['ja']}) ==")
    ja_ok = japanese_threshold_evidence()

    big = pools[max(POOL_SIZES)]
    full = not args.quick
    checks = [
        (f">= {TARGET_RATE:,} candidates/s at a 20K pool", big["b"] >= TARGET_RATE),
        (f">= {TARGET_RATIO:,}x Alpaca's loop at a 20K pool", big["b"] / big["a"] >= TARGET_RATIO),
        (f"52K job <= {TARGET_JOB_CPU:.0f} s CPU", cpu <= TARGET_JOB_CPU if full else None),
        (
            f"52K index peak memory <= {TARGET_MEMORY_MB:.0f} MB",
            peak_mb <= TARGET_MEMORY_MB if peak_mb is not None else None,
        ),
        ("decisions identical to Alpaca's loop", all(p["identical"] for p in pools.values())),
        ("Japanese threshold keeps seeds, drops >= 95% near-duplicates", ja_ok),
    ]
    print("\n== Targets ==")
    for name, ok in checks:
        print(f"  {verdict(ok):<22} {name}")
    return 1 if any(ok is False for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
