"""The pairwise judge and win-rate arithmetic, against the loopback server's judge.

The server's judge (tests/servers/kinds/kind_pairwise.py) has a known taste (worthless answers
lose; otherwise longer and more relevant wins) and a known position bias (25 % of prompts: the
first answer shown, whatever it says), so a test can tell a correct verdict from a biased one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from selfinstruct.llm import LLMClient, Request
from selfinstruct.pairwise import TEMPLATES, pairwise_requests, read_choice, read_verdict
from selfinstruct.prompts import PromptSet
from selfinstruct.winrate import (
    extreme_change,
    fit_glm,
    lc_win_rate,
    length_feature,
    scores,
    win_rates,
)
from tests.servers import kinds
from tests.servers.kinds import kind_pairwise
from tests.servers.openai_server import start_server

# -- reading one answer ------------------------------------------------------------------------

READINGS = [
    ("Better: B\nReason: B answers the question.", "second", "B answers the question."),
    ("**Better:** A\n**Reason:** it is complete.", "first", "it is complete."),
    ("Output (a)", "first", ""),
    ("Output (b)", "second", ""),
    ("**A**", "first", ""),
    ("B", "second", ""),
    ("「A」", "first", ""),
    ("Answer A is better.", "first", "Answer A is better."),
    ("After comparing both answers, I think Answer B is clearly better because it follows the "
     "instruction.", "second", None),
    ('```json\n{"better": "B", "reason": "more complete"}\n```', "second", "more complete"),
    ('{"better_answer": "Answer A", "rationale": "fuller"}', "first", "fuller"),
    ("より良い回答：Ｂ\n理由：指示に正しく従っている。", "second", "指示に正しく従っている。"),
    ("回答Aの方が優れています。", "first", None),
    ("Aを選びます。", "first", None),
    ("Aです", "first", None),
    ("Answer A: short.\nAnswer B: longer.\n\nOverall, Answer B is better.", "second", None),
    ("B is more complete and accurate.", "second", None),
    ("Both answers are fine, but B is more complete.", "second", None),
    ("Answer A is worse than answer B.", "second", None),
    ("The first answer is better.", "first", None),
    ("Better: A, a more complete answer", "first", None),
    ("Verdict: [[B]]", "second", None),
    ("[[A]]", "first", None),
    ("Better: the second answer", "second", None),
    ("Better: B (Answer B covers every step)", "second", None),
    ("Both are correct, but Answer A is more concise.", "first", None),
    ("より良い回答はBです。", "second", None),
    ("回答Bがより適切です。", "second", None),
    ("Answer B is not better than A.", None, None),
    ("The answer that explains how to draw a map is more complete.", None, None),
    ("回答Aは回答Bと同等の長さですが、説明が足りません。", None, None),
    ("二つの回答は同等です。", "tie", None),
    ("Better: Tie", "tie", None),
    ("Both answers are equally good.", "tie", None),
    ("どちらも同程度に良い回答で、引き分けです。", "tie", None),
    # Unreadable: never guessed.
    ("Better: A or B\nReason: <one short sentence>", None, None),
    ("より良い回答: A または B\n理由: <短い一文>", None, None),
    ("I'm sorry, but I can't judge which of these answers is better.", None, None),
    ("Better: A\nBetter: B", None, None),
    ("A lot of detail in both.", None, None),
    # Real answers of the embedded SmolLM2-135M model to the judge prompt: the template's
    # headings echoed back, a copied answer, a sentence that names no letter.
    ("I'm sorry, I can't help with that.\n\n### Answer A\nThe three primary colors are red, "
     "blue and yellow.\n\n### End of answers", None, None),
    ("### Answer A\nCrisp leaves drift and fall / amber light on quiet paths", None, None),
    ("The better answer is indeed 12 times 3, which is 36.", None, None),
    ("Judge the content only: neither the order of the answers nor their length is a reason "
     "to prefer one.", None, None),
    ("", None, None),
]


@pytest.mark.parametrize(("text", "choice", "reason"), READINGS)
def test_read_choice_reads_what_judges_write(text: str, choice: str | None,
                                             reason: str | None) -> None:
    found, why = read_choice(text)
    assert found == choice
    if reason is not None:
        assert why == reason


def test_read_verdict_needs_both_orders_to_agree() -> None:
    # The A/B order shows a first; the B/A order shows b first, so "B" there means a.
    both_a = read_verdict("Better: A", "Better: B")
    assert (both_a.winner, both_a.detail) == (
        "a", "A/B order preferred answer A, B/A order preferred answer A: both agree")
    assert read_verdict("Better: B", "Better: A").winner == "b"
    first_twice = read_verdict("Better: A\nReason: A is fuller.", "Better: A")
    assert first_twice.winner == "tie"
    assert "position bias" in first_twice.detail
    assert first_twice.rationale == "A is fuller."
    assert read_verdict("Better: tie", "Better: tie").winner == "tie"
    assert read_verdict("Better: A", "Better: tie").winner == "tie"


def test_one_unreadable_order_is_no_verdict_and_says_which() -> None:
    verdict = read_verdict("Better: A\nReason: fuller.", "I'm sorry, I cannot help.")
    assert verdict.winner is None and verdict.rationale == ""
    assert "B/A order answered \"I'm sorry, I cannot help.\"" in verdict.detail
    assert "A/B order" not in verdict.detail


# -- the requests ------------------------------------------------------------------------------

class _Maker:
    """The dispatcher's request-building half, as compare and the engine provide it."""

    def __init__(self) -> None:
        self.max_tokens: dict[str, tuple[int, int]] = {}

    def params(self, stage: str, **extra: Any) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens[stage][0], **extra}

    def request(self, stage: str, prompt: str, params: dict[str, Any], nonce: str) -> Request:
        return Request(stage, prompt, params, nonce)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_pairwise_requests_swap_the_answers(language: str) -> None:
    prompts = PromptSet(language, extra_templates=TEMPLATES)
    maker = _Maker()
    ab, ba = pairwise_requests(maker, prompts, "Name a fruit.", "", "Apple.", "Stone.", "p-1")
    assert (ab.nonce, ba.nonce) == ("p-1-ab", "p-1-ba")
    assert ab.params == ba.params == {"max_tokens": 300, "temperature": 0.0, "top_p": 1.0}
    assert ab.stage == ba.stage == "pairwise"
    for request, first, second in ((ab, "Apple.", "Stone."), (ba, "Stone.", "Apple.")):
        instruction, shown_first, shown_second = kind_pairwise.parse_prompt(request.prompt,
                                                                            language)
        assert (instruction, shown_first, shown_second) == ("Name a fruit.", first, second)
    assert kinds.headers()  # the plugin's first lines are the templates' first lines:
    for lang in ("en", "ja"):
        head = PromptSet(lang, extra_templates=TEMPLATES).render(
            "pairwise", **TEMPLATES["pairwise"]).split("\n")[0]
        assert ("pairwise", lang, head) in kind_pairwise.HEADERS


# -- the swap cancels the server's position bias -----------------------------------------------

def _good_and_bad(language: str, count: int) -> list[tuple[str, str, str]]:
    """(instruction, better answer, worse answer): a relevant answer against a refusal."""
    if language == "en":
        return [(f"Explain topic number {i} to a new student.",
                 f"Topic number {i} is explained step by step for a new student here.",
                 "I'm sorry, but I can't help with that.") for i in range(count)]
    return [(f"話題{i}について新入生に説明してください。",
             f"話題{i}を新入生向けに順を追って説明します。",
             "申し訳ありませんが、お答えできません。") for i in range(count)]


@pytest.mark.parametrize(("language", "style"), [("en", "clean"), ("ja", "clean"),
                                                 ("en", "messy")])
def test_swapping_cancels_the_position_bias(language: str, style: str) -> None:
    prompts = PromptSet(language, extra_templates=TEMPLATES)
    cases = _good_and_bad(language, 60)
    # Half the pairs show the better answer as A, half as B.
    pairs = [(ins, good, bad, "a") if i % 2 else (ins, bad, good, "b")
             for i, (ins, good, bad) in enumerate(cases)]
    maker = _Maker()
    requests = [r for i, (ins, a, b, _) in enumerate(pairs)
                for r in pairwise_requests(maker, prompts, ins, "", a, b, f"n{i}")]
    with start_server(style=style) as server, LLMClient(
            base_url=server.base_url, api_key=None, model="judge", api="chat") as client:
        answers = [c.text for c in client.run_batch(requests)]
    single_wrong = single_first = readable_single = 0
    combined: list[str | None] = []
    for i, (_, _, _, truth) in enumerate(pairs):
        ab, ba = answers[2 * i], answers[2 * i + 1]
        choice, _ = read_choice(ab)
        if choice in ("first", "second"):
            readable_single += 1
            single_first += choice == "first"
            single_wrong += {"first": "a", "second": "b"}[choice] != truth
        combined.append(read_verdict(ab, ba).winner)
    # One order alone is biased: it names the worse answer, and it names the first position
    # more often than the half of pairs where the first is the better one.
    assert single_wrong >= 5
    assert single_first > readable_single / 2
    # Both orders never crown the worse answer: the bias only turns wins into ties.
    judged = [(w, truth) for w, (_, _, _, truth) in zip(combined, pairs, strict=True)
              if w is not None]
    assert not [w for w, truth in judged if w in ("a", "b") and w != truth]
    assert sum(w == truth for w, truth in judged) > len(judged) / 2
    assert any(w == "tie" for w, _ in judged)
    if style == "messy":  # refusals, copied prompts, junk: recorded as no verdict
        assert len(judged) < len(pairs)


def test_clean_ties_are_exactly_the_biased_single_orders() -> None:
    """With readable answers, a tie happens exactly when one order fell for the position."""
    prompts = PromptSet("en", extra_templates=TEMPLATES)
    cases = _good_and_bad("en", 40)
    requests = [r for i, (ins, good, bad) in enumerate(cases)
                for r in pairwise_requests(_Maker(), prompts, ins, "", bad, good, f"t{i}")]
    with start_server() as server, LLMClient(base_url=server.base_url, api_key=None,
                                            model="judge", api="chat") as client:
        answers = [c.text for c in client.run_batch(requests)]
    wrong = sum(read_choice(answers[2 * i])[0] == "first" for i in range(len(cases)))
    wrong += sum(read_choice(answers[2 * i + 1])[0] == "second" for i in range(len(cases)))
    verdicts = [read_verdict(answers[2 * i], answers[2 * i + 1]).winner
                for i in range(len(cases))]
    assert verdicts.count("tie") == wrong > 0
    assert verdicts.count("b") == len(cases) - wrong and verdicts.count("a") == 0


# -- win rates ---------------------------------------------------------------------------------

def test_win_rate_counts_ties_as_half() -> None:
    rates = win_rates(["a", "a", "tie", "b"], [5, 5, 5, 5], [5, 5, 5, 5], resamples=10)
    assert (rates.wins, rates.ties, rates.losses, rates.judged) == (2, 1, 1, 4)
    assert rates.win_rate == 2.5 / 4


def test_lc_win_rate_matches_the_saturated_glm_by_hand() -> None:
    """Two length groups, two weights: the fit reproduces each group's rate exactly, so
    sigmoid(theta + phi c) = 3/4 and sigmoid(theta - phi c) = 1/2, theta = ln(3)/2, and the
    LC win rate is sigmoid(ln sqrt 3) = sqrt 3 / (1 + sqrt 3)."""
    outcomes = ["a", "a", "a", "b", "a", "a", "b", "b"]
    y = scores(outcomes)
    x = length_feature([20] * 4 + [10] * 4, [10] * 4 + [20] * 4)
    assert np.allclose(x, [math.tanh(10 / np.std([10] * 4 + [-10] * 4, ddof=1))] * 4
                       + [-math.tanh(10 / np.std([10] * 4 + [-10] * 4, ddof=1))] * 4)
    theta, _ = fit_glm(y, x, penalty=0.0)
    assert theta == pytest.approx(math.log(3) / 2, abs=1e-9)
    assert lc_win_rate(y, x, penalty=0.0) == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)),
                                                           abs=1e-9)
    assert y.mean() == 5 / 8
    # The default small penalty moves it by little.
    rates = win_rates(outcomes, [20] * 4 + [10] * 4, [10] * 4 + [20] * 4, resamples=10)
    assert rates.lc_win_rate == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)), abs=2e-3)


def test_lc_win_rate_removes_a_win_rate_that_length_explains() -> None:
    """A longer in 9 pairs (wins 6), shorter in 3 (wins 1): raw 7/12, but at equal length the
    groups are 2/3 and 1/3 around 1/2, so theta = 0 and the LC win rate is exactly 1/2."""
    outcomes = ["a"] * 6 + ["b"] * 3 + ["a"] + ["b"] * 2
    len_a, len_b = [30] * 9 + [10] * 3, [10] * 9 + [30] * 3
    y, x = scores(outcomes), length_feature(len_a, len_b)
    theta, phi = fit_glm(y, x, penalty=0.0)
    assert theta == pytest.approx(0.0, abs=1e-9) and phi > 0
    assert lc_win_rate(y, x, penalty=0.0) == pytest.approx(0.5, abs=1e-9)
    assert win_rates(outcomes, len_a, len_b, resamples=10).win_rate == 7 / 12


def test_equal_lengths_leave_the_win_rate_alone() -> None:
    y = scores(["a", "a", "a", "b"])
    x = length_feature([7] * 4, [7] * 4)
    assert not x.any()
    assert lc_win_rate(y, x, penalty=0.0) == pytest.approx(0.75, abs=1e-9)


def test_fit_solves_the_penalised_score_equations() -> None:
    rng = np.random.default_rng(3)
    outcomes = list(rng.choice(["a", "b", "tie"], 200))
    y = scores(outcomes)
    x = length_feature(rng.integers(10, 400, 200), rng.integers(10, 400, 200))
    theta, phi = fit_glm(y, x, penalty=0.01)
    p = 1 / (1 + np.exp(-(theta + phi * x)))
    gradient = np.array([np.sum(p - y) + 0.01 * theta, np.sum((p - y) * x) + 0.01 * phi])
    assert np.abs(gradient).max() < 1e-8


def test_bootstrap_interval_holds_the_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    outcomes = list(rng.choice(["a", "a", "b", "tie"], 120))
    len_a, len_b = rng.integers(20, 300, 120).tolist(), rng.integers(20, 300, 120).tolist()
    first = win_rates(outcomes, len_a, len_b, seed=1, resamples=300)
    again = win_rates(outcomes, len_a, len_b, seed=1, resamples=300)
    other = win_rates(outcomes, len_a, len_b, seed=2, resamples=300)
    assert first == again
    assert other.win_rate_ci != first.win_rate_ci
    for rate, (low, high) in ((first.win_rate, first.win_rate_ci),
                              (first.lc_win_rate, first.lc_win_rate_ci)):
        assert low < rate < high
        assert high - low < 0.3
    sweep = win_rates(["a"] * 12, [9] * 12, [4] * 12, resamples=50)
    assert sweep.win_rate_ci == (1.0, 1.0) and sweep.lc_win_rate > 0.99


def test_extreme_changes_follow_alpacaevals_rule() -> None:
    """Flagged: more than 10 points and more than a quarter of the way to 0 or 100."""
    assert extreme_change(0.75, 0.173) and extreme_change(0.20, 0.09)
    assert not extreme_change(0.75, 0.66) and not extreme_change(0.50, 0.59)
    assert extreme_change(0.50, 0.63) and not extreme_change(0.50, 0.61)
    assert not extreme_change(0.90, 0.70) and extreme_change(0.90, 0.60)


def test_no_verdict_is_no_win_rate() -> None:
    with pytest.raises(ValueError, match="at least one verdict"):
        win_rates([], [], [])
