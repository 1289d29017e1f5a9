"""The pairwise judge, win-rate arithmetic and `selfinstruct compare`, on the loopback server.

The server's judge (tests/servers/kinds/kind_pairwise.py) has a known taste (worthless answers
lose; otherwise longer and more relevant wins) and a known position bias (25 % of prompts: the
first answer shown, whatever it says), so a test can tell a correct verdict from a biased one.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfinstruct import cli
from selfinstruct.llm import LLMClient, Request
from selfinstruct.pairwise import TEMPLATES, pairwise_requests, read_choice, read_verdict
from selfinstruct.prompts import PromptSet, bundled_dir
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
from tests.servers.openai_server import RunningServer, start_server

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


# -- selfinstruct compare ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _generate(server: RunningServer, data: Path, name: str, *extra: str) -> Path:
    code = cli.main(["generate", "--seeds", str(ROOT / "seeds" / "en_general.jsonl"),
                     "--num-instructions", "12", "--dataset", name, "--data-dir", str(data),
                     "--base-url", server.base_url, "--model", "test-model", "--seed", "5",
                     "--no-progress", *extra])
    assert code == 0
    return data / name / "v0001"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two versions with the same instructions and different answers: B's instance template
    differs after its first line, so the bootstrap prompts (and instructions) are the same and
    the instance prompts, hence the server's instances, are not."""
    root = tmp_path_factory.mktemp("compare")
    prompts = root / "prompts"
    shutil.copytree(bundled_dir("prompts"), prompts)
    template = prompts / "en" / "instances_input_first.j2"
    first, rest = template.read_text(encoding="utf-8").split("\n", 1)
    template.write_text(f"{first}\nAnswer carefully.\n{rest}", encoding="utf-8")
    with start_server() as server:
        a = _generate(server, root / "data", "a")
        b = _generate(server, root / "data", "b", "--prompts-dir", str(prompts))
    yield a, b


def _compare(*argv: str) -> int:
    """``selfinstruct compare ...`` through the real command line, in this process."""
    return cli.main(["compare", *argv])


def _rows(version: Path) -> dict[tuple[str, str], str]:
    rows: dict[tuple[str, str], str] = {}
    for line in (version / "train.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.setdefault((row["instruction"], row["input"]), row["output"])
    return rows


def _expected_winner(instruction: str, input_: str, a: str, b: str) -> str:
    """What the server's judge decides, from the same two prompts the command sends (the
    same text twice is a tie without asking)."""
    if a.strip() == b.strip():
        return "tie"
    prompts = PromptSet("en", extra_templates=TEMPLATES)
    ab, ba = pairwise_requests(_Maker(), prompts, instruction, input_, a, b, "x")
    first = {"A": "a", "B": "b"}[kind_pairwise.choice(ab.prompt, "en")]
    second = {"A": "b", "B": "a"}[kind_pairwise.choice(ba.prompt, "en")]
    return first if first == second else "tie"


def test_compare_two_versions_end_to_end(versions: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = versions
    rows_a, rows_b = _rows(a), _rows(b)
    shared = [key for key in rows_a if key in rows_b]
    assert len(shared) >= 4 and any(rows_a[k] != rows_b[k] for k in shared)
    out = tmp_path / "report"
    with start_server() as server:
        assert _compare(str(a), str(b), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        sent = server.stats()["requests_total"]
        printed = capsys.readouterr().out
        report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
        pairs = [json.loads(line) for line in
                 (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
        assert sent == 2 * sum(rows_a[k].strip() != rows_b[k].strip() for k in shared)
        # Every verdict is the server judge's, from both orders.
        assert [(p["instruction"], p["input"]) for p in pairs] == shared
        for pair in pairs:
            key = (pair["instruction"], pair["input"])
            assert pair["winner"] == _expected_winner(*key, rows_a[key], rows_b[key])
            asked = rows_a[key].strip() != rows_b[key].strip()
            assert pair["detail"] and len(pair["request_ids"]) == (2 if asked else 0)
        winners = [p["winner"] for p in pairs]
        assert (report["wins"], report["ties"], report["losses"]) == (
            winners.count("a"), winners.count("tie"), winners.count("b"))
        assert report["judged"] == report["compared"] == len(shared)
        assert report["win_rate"] == pytest.approx(
            (winners.count("a") + winners.count("tie") / 2) / len(shared))
        low, high = report["win_rate_ci95"]
        assert low <= report["win_rate"] <= high
        assert f"A wins {report['wins']}, ties {report['ties']}, B wins {report['losses']}" \
            in printed
        assert "length-controlled win rate:" in printed and "95% CI" in printed
        assert printed.splitlines()[-1] == str(out)
        assert "## Method" in (out / "compare.md").read_text(encoding="utf-8")
        # The same comparison again pays nothing: every answer is in the journal.
        server.reset()
        capsys.readouterr()
        assert _compare(str(a), str(b), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        assert server.stats()["requests_total"] == 0
    again = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in again.items() if k not in ("created_at", "usage")} == \
        {k: v for k, v in report.items() if k not in ("created_at", "usage")}


def test_compare_a_version_with_a_model(versions: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """model:NAME answers A's instructions; the server's answers to a bare instruction are
    its generic replies, which its judge finds worthless: A never loses, and only the
    position bias turns some of A's wins into ties."""
    a, _ = versions
    instructions = len(_rows(a))
    out = tmp_path / "vs-model"
    with start_server(style="clean") as server:
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out), "--limit", "10") == 0
        assert server.stats()["requests_total"] == 10 + 2 * 10
        report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
        assert report["compared"] == report["judged"] == min(10, instructions)
        assert report["losses"] == 0 and report["wins"] > report["ties"]
        # Both orders of every pair: a judge without position bias names "first" exactly
        # half the time; this one's bias shows, and every disagreement is one of the ties.
        positions = report["judge_positions"]
        assert positions["choices"] == 2 * report["judged"]
        assert positions["first_rate"] > 0.55
        assert positions["orders_agree"] == report["wins"] + report["losses"]
        assert positions["both_orders_read"] - positions["orders_agree"] == report["ties"]
        assert report["b"] == "model:other-model"
        usage = report["usage"]["stages"]
        assert usage["compare_answer"]["requests"] == 10 and usage["pairwise"]["requests"] == 20
        # A larger --limit reuses the first ten answers and judgements.
        server.reset()
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out), "--limit", "12") == 0
        assert server.stats()["requests_total"] == 3 * (min(12, instructions) - 10)
    capsys.readouterr()


def test_identical_answers_are_ties_without_a_request(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "self"
    with start_server() as server:
        assert _compare(str(a), str(a), "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
        assert server.stats()["requests_total"] == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["ties"] == report["judged"] == len(_rows(a)) > 0
    assert report["win_rate"] == 0.5 and report["lc_win_rate"] == pytest.approx(0.5)
    capsys.readouterr()


def test_a_budget_stop_resumes_without_paying_twice(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "budget"
    argv = [str(a), "model:other-model", "--judge-model", "judge", "--output", str(out),
            "--limit", "6"]
    with start_server() as server:
        assert _compare(*argv, "--base-url", server.base_url, "--max-requests", "5") == 3
        first = server.stats()["requests_total"]
        assert first == 5 and not (out / "compare.json").exists()
        assert "--max-requests" in capsys.readouterr().err
        server.reset()
        assert _compare(*argv, "--base-url", server.base_url) == 0
        assert server.stats()["requests_total"] == 3 * 6 - first
    assert json.loads((out / "compare.json").read_text(encoding="utf-8"))["judged"] == 6


def test_compare_in_japanese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with start_server() as server:
        code = cli.main(["generate", "--seeds", str(ROOT / "seeds" / "ja_general.jsonl"),
                         "--num-instructions", "4", "--dataset", "ja", "--data-dir",
                         str(tmp_path), "--base-url", server.base_url, "--model", "test-model",
                         "--seed", "3", "--no-progress"])
        assert code == 0
        version = tmp_path / "ja" / "v0001"
        out = tmp_path / "vs-model"
        assert _compare(str(version), "model:other-model", "--judge-model", "judge",
                        "--base-url", server.base_url, "--output", str(out)) == 0
        kinds_seen = {o["kind"] for o in server.offered()}
        langs_seen = {o["lang"] for o in server.offered() if o["kind"] == "pairwise"}
    assert "pairwise" in kinds_seen and langs_seen == {"ja"}
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["judged"] == len(_rows(version)) and report["losses"] == 0
    pairs = (out / "pairs.jsonl").read_text(encoding="utf-8")
    assert "回答" in pairs  # the Japanese judge's reasons, kept unescaped
    capsys.readouterr()


def test_a_refused_key_is_one_line_without_the_password(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Credentials in the URL become HTTP basic auth, which the server refuses (401): the
    command stops at once with one line, and the password is in no output and no file."""
    a, _ = versions
    out = tmp_path / "refused"
    with start_server() as server:
        url = server.base_url.replace("http://", "http://user:hunter2secret@")
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        url, "--output", str(out)) == 2
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "401" in printed.err
    assert "hunter2secret" not in printed.err + printed.out
    assert not [p for p in out.iterdir() if p.is_file() and "hunter2secret" in
                p.read_text("utf-8")]
    assert not (out / "compare.json").exists()


def test_compare_records_unreadable_verdicts(versions: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    out = tmp_path / "messy"
    with start_server(style="messy") as server:
        assert _compare(str(a), "model:other-model", "--judge-model", "judge", "--base-url",
                        server.base_url, "--output", str(out)) == 0
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    pairs = [json.loads(line) for line in
             (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    missing = [p for p in pairs if p["winner"] is None]
    assert report["unjudged"] == len(missing) > 0
    assert all(p["detail"] for p in missing)
    assert report["judged"] + report["unjudged"] == report["compared"] == len(pairs)
    assert f"{report['unjudged']} without a verdict" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["{a}", "{a}/../../nowhere/v0001"], "no such dataset folder"),
    (["{a}", "model:"], "names no model"),
    (["{a}", "model:x", "--base-url", ""], "--base-url is required"),
    (["{a}", "model:x", "--limit", "0"], "--limit: must be at least 1"),
    (["{a}", "model:x", "--output", "{a}/report"], "immutable"),
    (["{a}", "model:x", "--config", "{a}/../nowhere.toml"], "nowhere.toml"),
    (["{a}", "model:x", "--max-cost", "-1"], "--max-cost: must be a non-negative"),
    (["{a}", "model:x", "--timeout", "0"], "--timeout: must be a positive"),
])
def test_compare_refuses_bad_input_in_one_line(versions: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    a, _ = versions
    with start_server() as server:
        args = [arg.format(a=a) for arg in argv]
        if "--base-url" not in args:
            args += ["--base-url", server.base_url]
        before = sorted(p.relative_to(a.parent.parent) for p in a.parent.parent.rglob("*"))
        assert _compare(*args, "--judge-model", "judge") == 2
        assert server.stats()["requests_total"] == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("selfinstruct: error: ") and message in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(a.parent.parent) for p in a.parent.parent.rglob("*")) == before


def test_compare_refuses_versions_without_shared_instructions(
        versions: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = versions
    other = tmp_path / "other" / "v0001"
    shutil.copytree(a, other)
    (other / "train.jsonl").write_text(json.dumps(
        {"instruction": "Something else entirely.", "input": "", "output": "x"}) + "\n",
        encoding="utf-8")
    with start_server() as server:
        assert _compare(str(a), str(other), "--judge-model", "judge", "--base-url",
                        server.base_url) == 2
        assert server.stats()["requests_total"] == 0
    assert "share no instruction" in capsys.readouterr().err


def test_compare_needs_a_judge_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["compare", "data/x/v0001", "model:m"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--judge-model" in err


def test_compare_prices_and_caps_the_cost(versions: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Each stage at the price of the model that answered it: the judge's for the verdicts,
    model B's for its answers; --max-cost stops the run like generate's budgets."""
    a, _ = versions
    config = tmp_path / "prices.toml"
    config.write_text('[prices."judge"]\ninput = 2.0\noutput = 8.0\n'
                      '[prices."other-model"]\ninput = 0.5\noutput = 1.0\n', encoding="utf-8")
    out = tmp_path / "priced"
    argv = [str(a), "model:other-model", "--judge-model", "judge", "--output", str(out),
            "--limit", "4", "--config", str(config)]
    with start_server() as server:
        assert _compare(*argv, "--base-url", server.base_url) == 0
        usage = json.loads((out / "compare.json").read_text(encoding="utf-8"))["usage"]
        judge, answer = usage["stages"]["pairwise"], usage["stages"]["compare_answer"]
        assert usage["cost_usd"] == pytest.approx(
            (judge["prompt_tokens"] * 2 + judge["completion_tokens"] * 8
             + answer["prompt_tokens"] * 0.5 + answer["completion_tokens"] * 1) / 1e6)
        assert f"cost ${usage['cost_usd']:.4f}" in capsys.readouterr().out
        server.reset()
        capped = tmp_path / "capped"
        # Model B's four answers cost more than the cap: no judge request is sent.
        assert _compare(*argv[:5], str(capped), *argv[6:], "--base-url", server.base_url,
                        "--max-cost", "0.00001") == 3
        assert server.stats()["requests_total"] == 4
    assert "budget reached (--max-cost 1e-05" in capsys.readouterr().err
    assert not (capped / "compare.json").exists()
