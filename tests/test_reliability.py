"""Reliability: faults never crash a run, budgets stop cleanly and resume, journals survive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.cli import EXIT_BUDGET, main
from selfinstruct.config import build_config
from selfinstruct.journal import Journal
from selfinstruct.llm import Completion
from selfinstruct.pipeline import run
from selfinstruct.run import open_run, resume_config
from tests.servers.openai_server import start_server

ALL_FAULTS = ["429", "429_retry_after", "500", "502", "503", "reset", "empty_choices",
              "length", "truncated_body", "non_json", "garbage"]


def config(server, data_dir: Path, n: int, **extra):
    return build_config({
        "seeds": "seeds/en_general.jsonl", "dataset": "rel", "num_instructions": n,
        "data_dir": str(data_dir), "base_url": server.base_url, "model": "test-model",
        "seed": 4, "retry_base_delay": 0.01, **extra}, environ={})


def test_thirty_percent_faults_run_to_completion_with_correct_counts(tmp_path):
    with start_server(fault_rate=0.3, fault_kinds=ALL_FAULTS, fault_seed=9,
                      retry_after=0.01) as server:
        with open_run(config(server, tmp_path, 120, timeout=5.0), api_key="k",
                      warn=False) as gen:
            version = Path(run(gen))
            usage = gen.usage
        stats = server.stats()
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 120
    # Faults really happened, and each was absorbed by a retry (none exhausted 6 attempts,
    # since the server faults one request at most twice).
    assert stats["faults_total"] > 30
    assert sum(s.retries for s in usage.stages.values()) >= stats["faults_total"] - \
        stats["faults_by_kind"].get("length", 0) - stats["faults_by_kind"].get("garbage", 0)
    assert manifest["request_errors"] == {}
    # 'length' and 'garbage' answers are valid HTTP: they surface as parse/filter rejections.
    rejected = [json.loads(line) for line in (version / "rejected.jsonl").open()]
    assert any(r["reason"] == "truncated" for r in rejected)
    # Every successful answer was used exactly once (none answered twice).
    assert stats["max_success_count"] == 1


def test_budget_stops_cleanly_and_resume_continues(tmp_path, capsys):
    with start_server() as server:
        argv = ["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "b",
                "--num-instructions", "150", "--data-dir", str(tmp_path), "--base-url",
                server.base_url, "--model", "test-model", "--seed", "2", "--no-progress",
                "--max-requests", "20"]
        assert main(argv) == EXIT_BUDGET
        err = capsys.readouterr().err
        assert "budget reached (--max-requests 20: 20 sent)" in err
        assert not list(tmp_path.glob("b/v*"))  # no partial version
        assert server.stats()["successes_total"] == 20  # exactly the budget, never more
        resume = ["generate", "--dataset", "b", "--data-dir", str(tmp_path), "--resume",
                  "--no-progress", "--max-requests", "1000"]
        assert main(resume) == 0
        version = Path(capsys.readouterr().out.strip().splitlines()[-1])
        assert server.stats()["max_success_count"] == 1
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 150
    assert manifest["usage"]["bootstrap"]["cached"] == 20


def test_cost_budget_needs_a_price_and_is_enforced(tmp_path, capsys):
    with start_server() as server:
        base = ["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "c",
                "--num-instructions", "100", "--data-dir", str(tmp_path), "--base-url",
                server.base_url, "--model", "test-model", "--no-progress", "--max-cost", "0.01"]
        assert main(base) == 2
        assert "--max-cost needs the price of model 'test-model'" in capsys.readouterr().err
        (tmp_path / "prices.toml").write_text(
            '[prices."test-model"]\ninput = 10.0\noutput = 30.0\n')
        assert main([*base, "--config", str(tmp_path / "prices.toml")]) == EXIT_BUDGET
        err = capsys.readouterr().err
        assert "budget reached (--max-cost 0.01: $" in err


def test_torn_last_line_is_cut_and_appending_continues(tmp_path):
    with Journal(tmp_path) as journal:
        journal.record_answer("k1", "bootstrap", Completion("one", "stop"))
    with open(tmp_path / "journal.jsonl", "a") as handle:
        handle.write('{"type": "answer", "key": "k2", "sta')  # killed mid-write
    with Journal(tmp_path) as journal:
        assert journal.answer("k1").text == "one" and journal.answer("k2") is None
        journal.record_answer("k2", "bootstrap", Completion("two", "stop"))
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["k1", "k2"]


def test_failed_answers_are_journaled_but_sent_again(tmp_path):
    with Journal(tmp_path) as journal:
        journal.record_answer("k", "bootstrap", Completion("", None, error="http_503: x"))
    with Journal(tmp_path) as journal:
        assert journal.answer("k") is None


def test_a_second_process_cannot_share_a_run(tmp_path):
    from selfinstruct._errors import InputError

    with Journal(tmp_path), pytest.raises(InputError, match="another selfinstruct process"), \
            Journal(tmp_path):
        pass


def test_replay_detects_a_changed_pipeline(tmp_path):
    with start_server() as server:
        with open_run(config(server, tmp_path, 20), api_key="k", warn=False) as gen:
            run(gen)
            run_dir = gen.journal.run_dir
        journal = run_dir / "journal.jsonl"
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        events = [e for e in events if e["type"] != "finished"]
        first = next(e for e in events if e["type"] == "accepted")
        first["instruction"] = "Something the replay will not produce."
        journal.write_text("".join(json.dumps(e) + "\n" for e in events))
        cfg, run_dir = resume_config(tmp_path, "rel", run_dir, {})
        with pytest.raises(RuntimeError, match="start a new run instead of resuming"), \
                open_run(cfg, api_key="k", run_dir=run_dir, warn=False) as gen:
            run(gen)
