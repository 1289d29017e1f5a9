"""Multi-model agreement (`--verify-model`): comparisons by hand, the test server's verifier
kind, and whole runs against loopback servers (a second one for a `[[verify]]` table)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.agreement import (
    agreement_summary,
    as_number,
    compare,
    numbers_agree,
    parse_answers,
    parse_verdicts,
    share_agreeing,
)
from selfinstruct.cli import main
from selfinstruct.config import build_config
from selfinstruct.pipeline import run
from selfinstruct.prompts import PromptSet
from selfinstruct.records import Instance, Task
from selfinstruct.run import open_run
from selfinstruct.verify import TEMPLATES, AgreeStage, run_summary
from tests.servers.answers import generate_answer
from tests.servers.kinds import kind_verify
from tests.servers.openai_server import RunningServer, start_server

# -- exact and numeric comparison -------------------------------------------------------------


@pytest.mark.parametrize(("text", "value", "unit"), [
    ("42", "42", ""), ("The answer is 42.", "42", ""), ("**42**", "42", ""),
    ("$12.50", "12.50", "$"), ("12.50 USD", "12.50", "usd"), ("1,234", "1234", ""),
    ("-3.5", "-3.5", ""), ("50%", "50", ""), ("4.2e3", "4200", ""),
    ("約42個です", "42", "個"), ("答えは４２です。", "42", ""), ("１，２３４", "1234", ""),
])
def test_numbers_are_read_from_short_answers(text: str, value: str, unit: str) -> None:
    number = as_number(text)
    assert number is not None and number.value == float(value) and number.unit == unit


@pytest.mark.parametrize("text", ["1,5", "Book 1 is better", "The sum of 12 and 30 is 42",
                                  "x", "", "3 apples and 2 pears"])
def test_texts_that_are_not_a_bare_number(text: str) -> None:
    assert as_number(text) is None


@pytest.mark.parametrize(("a", "b", "agree"), [
    ("3.14", "3.14159", True),     # within half a unit of 3.14's last digit
    ("0.33", "0.333", True),
    ("2.5", "2.4", False),
    ("1000", "1001", False),       # integers: exact
    ("1,234", "1234", True),
    ("42", "42.0", True),
    ("42", "42.6", False),
    ("0.1", "0.10000000001", True),
    ("-7", "7", False),
])
def test_numbers_agree_to_the_less_precise_ones_digits(a: str, b: str, agree: bool) -> None:
    first, second = as_number(a), as_number(b)
    assert first is not None and second is not None
    assert numbers_agree(first, second) is agree
    assert numbers_agree(second, first) is agree


@pytest.mark.parametrize(("reference", "answer", "agreed"), [
    ("Positive", "Positive", True),
    ("Positive", "positive.", True),
    ("Positive", "**Positive**", True),
    ("Positive", "The answer is Positive.", True),
    ("Positive", "Positive — the reviewer loved it", True),
    ("Positive", "Negative", False),
    ("Positive", "Positively not", False),
    ("Not spam", "Spam", False),
    ("ポジティブ", "答えはポジティブです。", True),
    ("ポジティブ", "「ネガティブ」", False),
])
def test_labels_are_compared_exactly(reference: str, answer: str, agreed: bool) -> None:
    verdict = compare(reference, answer, classification=True)
    assert verdict is not None and verdict.method == "exact" and verdict.agreed is agreed


def test_numeric_answers_skip_the_judge_and_other_answers_need_it() -> None:
    numeric = compare("42", "The answer is 42.", classification=False)
    assert numeric is not None and (numeric.agreed, numeric.method) == (True, "numeric")
    wrong = compare("42", "43", classification=False)
    assert wrong is not None and (wrong.agreed, wrong.method) == (False, "numeric")
    assert compare("42 km", "42 miles", classification=False) is None  # units differ
    assert compare("Paris is the capital.", "Paris.", classification=False) is None
    assert compare("42", "The sum of 12 and 30 is 42", classification=False) is None


# -- reading numbered answers and verdicts ----------------------------------------------------


@pytest.mark.parametrize(("text", "count", "expected"), [
    ("Answer 1: Positive\nAnswer 2: Negative", 2, ["Positive", "Negative"]),
    ("Sure! Here you go:\n\n**Answer 1:** Positive\n**Answer 2:** Negative\n\n"
     "Let me know if you need more!", 2, ["Positive", "Negative"]),
    ("Answer 1 - Positive\nAnswer 2 - -5", 2, ["Positive", "-5"]),
    ("### Answer 1\nA long answer.\n\nIts second paragraph.\n\n### Answer 2\nB", 2,
     ["A long answer.\n\nIts second paragraph.", "B"]),
    ("1. Positive\n2) Negative", 2, ["Positive", "Negative"]),
    ("```\nAnswer 1: Positive\n```", 1, ["Positive"]),
    ("回答１：ポジティブ\n回答２：ネガティブ", 2, ["ポジティブ", "ネガティブ"]),
    ("Answer 2: Negative", 2, [None, "Negative"]),
    ("Positive", 1, ["Positive"]),
    ("Answer: 42", 1, ["42"]),
    ("I'm sorry, I can't answer these.", 2, [None, None]),
    ("", 1, [None]),
])
def test_parse_answers(text: str, count: int, expected: list[str | None]) -> None:
    assert parse_answers(text, count) == expected


def test_parse_verdicts() -> None:
    text = ("Here are my verdicts:\nPair 1: SAME — both name Paris\n**Pair 2:** different. "
            "B says Lyon\npair 3: not the same, wrong year\nPair 9: SAME")
    assert parse_verdicts(text, 4) == [(True, "both name Paris"), (False, "B says Lyon"),
                                       (False, "wrong year"), None]
    assert parse_verdicts("ペア１：同じ（どちらも東京）\nペア2: 同じではない。年が違う", 2) == [
        (True, "どちらも東京"), (False, "年が違う")]
    assert parse_verdicts("They look alike to me.", 1) == [None]
    assert parse_verdicts("SAME — both say Paris.", 1) == [(True, "both say Paris.")]
    assert parse_verdicts("**Different**\nB names Lyon.", 1) == [(False, "B names Lyon.")]
    assert parse_verdicts("SAME", 2) == [None, None]  # two pairs need their numbers
    assert parse_verdicts("Pair 1: SAME\nPair 2: DIFFERENT\nB is wrong.", 2) == [
        (True, ""), (False, "B is wrong.")]


def test_share_and_summary() -> None:
    rows: list[dict[str, Any]] = [{"provenance": {"agreement": [
        {"verifier": "m2", "kind": "model", "agreed": True, "method": "exact"},
        {"verifier": "m1#2", "kind": "same-model", "agreed": None, "method": "unanswered"}]}},
        {"provenance": {"agreement": [
            {"verifier": "m2", "kind": "model", "agreed": False, "method": "judge"}]}},
        {"provenance": {}}]
    assert share_agreeing(rows[0]["provenance"]["agreement"]) == 0.5  # no answer: no
    assert share_agreeing([]) == 1.0
    summary = agreement_summary(rows)["verifiers"]
    assert summary["m2"] == {"kind": "model", "checked": 2, "agreed": 1, "rate": 0.5,
                             "methods": {"exact": 1, "judge": 1}}
    assert summary["m1#2"]["rate"] == 0.0 and summary["m1#2"]["kind"] == "same-model"


# -- the test server's verifier and judge -----------------------------------------------------

SENTIMENT = "Classify the sentiment of the following review as positive or negative."


def _prompts(lang: str) -> PromptSet:
    return PromptSet(lang, extra_templates=TEMPLATES)


def test_server_verifier_disagrees_at_its_known_rate_and_the_judge_sees_it() -> None:
    prompts = _prompts("en")
    inputs = ["I absolutely loved the museum; it was worth every minute.",
              "Honestly, the museum was a huge disappointment for me."]
    prompt = prompts.render("verify_answer", instruction=SENTIMENT, inputs=inputs,
                            options=["Negative", "Positive"])
    flips = checked = 0
    for seed in range(150):
        text = generate_answer(prompt, chat=True, model="disagree-model", seed=seed)
        answers = parse_answers(text, 2)
        for answer, truth in zip(answers, ("Positive", "Negative"), strict=True):
            assert answer in ("Positive", "Negative", "Neutral")
            checked += 1
            flips += answer != truth
    assert abs(flips / checked - kind_verify.DISAGREE_RATE) < 0.07
    # A generation task: the judge calls B different exactly when it is a contrary text.
    task = "Explain recursion to a child."
    contrary = kind_verify.CONTRARY["en"][0].format(Topic="Recursion", topic="recursion")
    judged = prompts.render("same_answer", instruction=task, pairs=[
        {"input": "", "reference": "Start small.", "answer": "Begin with one small example."},
        {"input": "", "reference": "Start small.", "answer": contrary}])
    verdicts = parse_verdicts(generate_answer(judged, chat=True, model="judge-model"), 2)
    assert [v is not None and v[0] for v in verdicts] == [True, False]


def test_server_verifier_answers_sums_in_japanese() -> None:
    prompts = _prompts("ja")
    prompt = prompts.render("verify_answer", instruction="次の数の合計を求めてください。",
                            inputs=["12、30", "1.5、2.25"], options=[])
    answers = [parse_answers(generate_answer(prompt, chat=True, model="m", seed=s), 2)
               for s in range(40)]
    sums = {a for pair in answers for a in pair}
    assert {"42", "3.75"} <= sums and sums <= {"42", "43", "3.75", "4.75"}


# -- stages against the loopback server -------------------------------------------------------


def _config(server: RunningServer, tmp_path: Path, **extra: Any) -> Any:
    return build_config({"seeds": "seeds/en_general.jsonl", "dataset": "v",
                         "num_instructions": 5, "data_dir": str(tmp_path / "data"),
                         "base_url": server.base_url, "model": "test-model", "seed": 3,
                         **extra}, environ={})


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with start_server() as running:
        yield running


def test_numeric_answers_are_decided_without_the_judge(server: RunningServer,
                                                       tmp_path: Path) -> None:
    prices = {"test-model": {"input": 1.0, "output": 2.0},
              "disagree-model": {"input": 100.0, "output": 300.0}}
    config = _config(server, tmp_path, verify=[{"model": "disagree-model"}],
                     filters={"min_agreement": 1.0}, prices=prices)
    tasks = [Task(f"task-{i:06d}", "Add the numbers and give the sum.", 1, "h", None, [], None,
                  is_classification=False,
                  instances=[Instance(f"{i}, {i + 30}", str(2 * i + 30)),
                             Instance(f"{i}.5, 2", f"{i + 2}.5")])
             for i in range(30)]
    with open_run(config, api_key="k", warn=False) as gen:
        gen.tasks = tasks
        for stage in gen.feature_stages:
            gen.stage_batch(stage.name, tasks)
        assert [s.name for s in gen.feature_stages] == ["verify_1", "agree_1"]
        assert "agree_1" not in gen.usage.stages  # nothing was left to the judge
        summary = run_summary(gen)["verifiers"]["disagree-model"]
        rejected = [r for r in gen.rejected if r["stage"] == "verify"]
        used = gen.usage.stages["verify_1"]
        assert used.prompt_tokens and used.completion_tokens
        # The verifier's tokens are billed at the verifier's price, not the run model's.
        assert gen.dispatch.cost() == pytest.approx(
            (used.prompt_tokens * 100.0 + used.completion_tokens * 300.0) / 1e6)
    assert summary["methods"] == {"numeric": 60} and summary["kind"] == "model"
    assert abs(1 - summary["rate"] - kind_verify.DISAGREE_RATE) < 0.15
    kept = sum(len(t.instances) for t in tasks)
    assert kept == summary["agreed"] and len(rejected) == 60 - kept
    assert all(r["reason"] == "models_disagree" and "disagree-model disagreed (numeric: "
               in r["detail"] for r in rejected)
    for task in tasks:
        for inst in task.instances:
            (entry,) = inst.extra["agreement"]
            assert entry["agreed"] is True and as_number(entry["answer"]) is not None


def test_same_model_verifier_is_labelled_and_samples_warmer(server: RunningServer,
                                                            tmp_path: Path) -> None:
    config = _config(server, tmp_path, verify=[{"model": "test-model"},
                                               {"model": "test-model", "temperature": 1.2}])
    with open_run(config, api_key="k", warn=False) as gen:
        agree = [s for s in gen.feature_stages if isinstance(s, AgreeStage)]
        assert [(s.verifier.label, s.verifier.kind, s.verifier.temperature) for s in agree] == [
            ("test-model#1", "same-model", 0.7), ("test-model#2", "same-model", 1.2)]
        assert [s.last for s in agree] == [False, True]


def test_messy_japanese_answers_are_all_accounted_for(tmp_path: Path) -> None:
    """Refusals, junk, content: null and chatty markers: every verifier and judge answer is
    read, unparseable (a parse row) or failed (a request row), and rows say which."""
    with start_server(style="messy") as messy:
        config = build_config({"seeds": "seeds/ja_general.jsonl", "dataset": "v",
                               "num_instructions": 25, "data_dir": str(tmp_path / "data"),
                               "base_url": messy.base_url, "model": "test-model", "seed": 4,
                               "verify": [{"model": "disagree-model"}]}, environ={})
        with open_run(config, api_key="k", warn=False) as gen:
            run(gen, lambda name, fn, *args: None if name == "write-version" else fn(*args))
            used = sum(s.requests + s.cached for s in gen.usage.stages.values())
            answers = gen.funnel.stages["answers"]
            unread = [r for r in gen.rejected if r["stage"] in ("parse", "request")
                      and r["detail"].startswith(("verify_1:", "agree_1:"))]
            entries = [e for t in gen.tasks for i in t.instances for e in i.extra["agreement"]]
    assert answers["in"] == used
    assert unread and all(r["request_id"] for r in unread)
    methods = {e["method"] for e in entries}
    assert {"exact", "judge", "unanswered"} <= methods
    assert all(e["agreed"] is None for e in entries if e["method"] == "unanswered")
    assert any(e["agreed"] is False for e in entries) and any(e["agreed"] for e in entries)


# -- whole runs through the CLI ---------------------------------------------------------------

VERIFY_KEY = "sk-VERIFY-SENTINEL-0123456789abcdef"


def _generate(server: RunningServer, data: Path, *args: str) -> int:
    return main(["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "v",
                 "--data-dir", str(data), "--base-url", server.base_url, "--model", "test-model",
                 "--api-key", "k", "--seed", "7", "--no-progress", *args])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _version(data: Path) -> Path:
    (version,) = sorted((data / "v").glob("v0*"))
    return version


def test_verify_model_drops_disagreements_with_details(server: RunningServer, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run.toml").write_text("[filters]\nmin_agreement = 1.0\n")
    code = _generate(server, tmp_path / "data", "--num-instructions", "30",
                     "--verify-model", "disagree-model", "--config", str(tmp_path / "run.toml"))
    assert code == 0, capsys.readouterr().err
    version = _version(tmp_path / "data")
    rows = _rows(version / "train.jsonl")
    dropped = [r for r in _rows(version / "rejected.jsonl") if r["stage"] == "verify"]
    assert rows and dropped
    assert all(r["provenance"]["agreement"][0]["agreed"] is True for r in rows)
    assert all(r["reason"] == "models_disagree" and "disagree-model disagreed (" in r["detail"]
               for r in dropped)
    methods = {r["detail"].split("disagreed (")[1].split(":")[0] for r in dropped}
    assert methods == {"exact", "judge"}
    rate = len(rows) / (len(rows) + len(dropped))
    assert abs(1 - rate - kind_verify.DISAGREE_RATE) < 0.1
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["funnel"]["verify"]["drops"] == {"models_disagree": len(dropped)}
    # One verifier request per task that still had instances, one judge request per task
    # with an answer that is neither a label nor a number.
    assert manifest["usage"]["verify_1"]["requests"] == manifest["funnel"]["instances"]["kept"]
    judged = {r["task_id"] for r in rows
              if r["provenance"]["agreement"][0]["method"] == "judge"}
    assert len(judged) <= manifest["usage"]["agree_1"]["requests"] < \
        manifest["usage"]["verify_1"]["requests"]


def _decisions(version: Path) -> list[tuple[Any, ...]]:
    """What a run decided per row (request ids differ between two servers' lifetimes)."""
    return [(r["id"], r["input"], r["output"],
             [(e["verifier"], e["agreed"], e["method"], e["answer"])
              for e in r["provenance"]["agreement"]])
            for r in _rows(version / "train.jsonl")]


def _verify_config(tmp_path: Path, verifier: RunningServer) -> Path:
    path = tmp_path / "verify.toml"
    path.write_text(f'[[verify]]\nmodel = "disagree-model"\nbase_url = "{verifier.base_url}"\n'
                    f'api_key_env = "VERIFY_TEST_KEY"\n\n[filters]\nmin_agreement = 1.0\n')
    return path


def _kinds(server: RunningServer) -> list[str]:
    return [r["body"]["messages"][0]["content"].split("\n", 1)[0] for r in server.requests()]


def test_a_verifier_table_uses_its_own_endpoint_and_key_and_resumes_without_paying_twice(
        server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VERIFY_TEST_KEY", VERIFY_KEY)
    with start_server() as verifier:
        config = _verify_config(tmp_path, verifier)
        whole = tmp_path / "whole"
        assert _generate(server, whole, "--num-instructions", "8", "--config", str(config)) == 0
        total = server.stats()["successes_total"] + verifier.stats()["successes_total"]
        verify_requests = verifier.stats()["successes_total"]
        assert verify_requests > 0
        assert set(_kinds(verifier)) == {kind_verify.HEADERS[0][2]}  # only verifier answers
        assert kind_verify.HEADERS[0][2] not in _kinds(server)
        server.reset()
        verifier.reset()
        # The same run stopped by a budget during verification, then resumed.
        data = tmp_path / "data"
        budget = total - 3
        code = _generate(server, data, "--num-instructions", "8", "--config", str(config),
                         "--max-requests", str(budget))
        assert code == 3, capsys.readouterr().err
        first = server.stats()["successes_total"] + verifier.stats()["successes_total"]
        assert first == budget  # the budget caps verifier requests too
        assert verifier.stats()["successes_total"] > 0
        code = main(["generate", "--dataset", "v", "--data-dir", str(data), "--resume",
                     "--no-progress", "--api-key", "k", "--max-requests", "1000"])
        assert code == 0, capsys.readouterr().err
        assert server.stats()["max_success_count"] == verifier.stats()["max_success_count"] == 1
        assert server.stats()["successes_total"] + verifier.stats()["successes_total"] == total
        assert verifier.stats()["successes_total"] == verify_requests
    assert _decisions(_version(data)) == _decisions(_version(whole))
    printed = capsys.readouterr()
    assert VERIFY_KEY not in printed.out + printed.err
    for folder in (data, whole):
        for path in folder.rglob("*"):
            if path.is_file():
                assert VERIFY_KEY.encode() not in path.read_bytes(), path


def test_a_missing_verifier_key_is_one_line_and_writes_nothing(
        server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("VERIFY_TEST_KEY", raising=False)
    config = _verify_config(tmp_path, server)
    code = _generate(server, tmp_path / "data", "--num-instructions", "3", "--config",
                     str(config))
    err = capsys.readouterr().err
    assert code == 2 and "VERIFY_TEST_KEY" in err and len(err.strip().splitlines()) == 1
    assert server.stats()["requests_total"] == 0
    assert not list((tmp_path / "data").glob("v/v0*"))
