"""Resume rules: what may change (speed, budgets, target), what is refused up front.

Every refusal must come before any request is sent or any file is written: each test checks
the test server's request counter and the journal's bytes across the refused attempt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from selfinstruct.cli import EXIT_BUDGET, main
from selfinstruct.run import resume_config
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent


def generate(server: RunningServer, data: Path, *extra: str, seeds: Path | None = None,
             n: int = 40) -> list[str]:
    return ["generate", "--seeds", str(seeds or ROOT / "seeds/en_general.jsonl"),
            "--dataset", "r", "--num-instructions", str(n), "--data-dir", str(data),
            "--base-url", server.base_url, "--model", "test-model", "--seed", "2",
            "--no-progress", *extra]


def requests_seen(server: RunningServer) -> int:
    return server.stats()["requests_total"]


def run_dir_of(data: Path) -> Path:
    (run,) = data.glob("r/.runs/*")
    return run


def train_instructions(version: Path) -> list[str]:
    return [json.loads(line)["instruction"] for line in (version / "train.jsonl").open()]


def test_concurrency_may_change_on_resume_and_the_data_is_the_same(tmp_path, capsys):
    """Item 7: look-ahead depth is fixed at start, so new concurrency changes speed only."""
    with start_server() as server:
        assert main(generate(server, tmp_path / "whole", "--concurrency", "2")) == 0
        whole = Path(capsys.readouterr().out.strip().splitlines()[-1])

        data = tmp_path / "split"
        argv = generate(server, data, "--concurrency", "2", "--max-requests", "9")
        assert main(argv) == EXIT_BUDGET
        stored = json.loads((run_dir_of(data) / "run.json").read_text())["config"]
        assert (stored["concurrency"], stored["lookahead"]) == (2, 2)
        capsys.readouterr()
        assert main(["generate", "--dataset", "r", "--data-dir", str(data), "--resume",
                     "--concurrency", "7", "--max-requests", "100000", "--no-progress"]) == 0
        captured = capsys.readouterr()
    assert "journal recorded" not in captured.err
    split = Path(captured.out.strip().splitlines()[-1])
    assert train_instructions(split) == train_instructions(whole)


def test_a_run_stored_without_lookahead_keeps_its_concurrency_as_depth(tmp_path):
    with start_server() as server:
        assert main(generate(server, tmp_path, "--concurrency", "3", "--max-requests", "4")) \
            == EXIT_BUDGET
    run_json = run_dir_of(tmp_path) / "run.json"
    record = json.loads(run_json.read_text())
    del record["config"]["lookahead"]  # as written before the field existed
    run_json.write_text(json.dumps(record))
    config, _ = resume_config(tmp_path, "r", None, {"concurrency": 9})
    assert (config.lookahead, config.concurrency) == (3, 9)


def _edit_seeds(seeds: Path, prompts: Path) -> Path:
    lines = seeds.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[0])
    row["instances"][0]["output"] += " (edited)"
    seeds.write_text(json.dumps(row) + "\n" + "".join(lines[1:]), encoding="utf-8")
    return seeds


def _edit_template(seeds: Path, prompts: Path) -> Path:
    template = prompts / "en" / "bootstrap.j2"
    template.write_text(template.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    return template


def _edit_labels(seeds: Path, prompts: Path) -> Path:
    labels = prompts / "en" / "labels.json"
    labels.write_text(json.dumps(json.loads(labels.read_text(encoding="utf-8")), indent=4),
                      encoding="utf-8")
    return labels


@pytest.mark.parametrize("edit", [_edit_seeds, _edit_template, _edit_labels],
                         ids=["seeds", "template", "labels"])
def test_inputs_edited_after_a_stop_are_refused_before_any_request(tmp_path, capsys, edit):
    """Item 8: a changed seed file, template or labels.json would orphan paid answers."""
    seeds = tmp_path / "seeds.jsonl"
    shutil.copy(ROOT / "seeds/en_general.jsonl", seeds)
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    data = tmp_path / "data"
    with start_server() as server:
        assert main(generate(server, data, "--prompts-dir", str(prompts), "--max-requests", "6",
                             seeds=seeds)) == EXIT_BUDGET
        journal = run_dir_of(data) / "journal.jsonl"
        before, sent = journal.read_bytes(), requests_seen(server)
        changed = edit(seeds, prompts)
        capsys.readouterr()
        code = main(["generate", "--dataset", "r", "--data-dir", str(data), "--resume",
                     "--max-requests", "1000", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.count("\n") == 1 and err.startswith(f"selfinstruct: error: {changed}: "
                                                       f"changed since the run started")
        assert requests_seen(server) == sent and journal.read_bytes() == before


def test_other_settings_on_resume_are_refused_equal_ones_accepted(tmp_path, capsys):
    """Item 9: --model, --seeds, --language, --recipe, --base-url, --api ... are not dropped."""
    other_seeds = tmp_path / "other.jsonl"
    shutil.copy(ROOT / "seeds/en_general.jsonl", other_seeds)
    data = tmp_path / "data"
    with start_server() as server, start_server() as elsewhere:
        first = generate(server, data, "--max-requests", "6")
        assert main(first) == EXIT_BUDGET
        journal = run_dir_of(data) / "journal.jsonl"
        before, sent = journal.read_bytes(), requests_seen(server)
        resume = ["generate", "--dataset", "r", "--data-dir", str(data), "--resume",
                  "--no-progress"]
        refused = [
            (["--model", "other-model"], "--model: 'other-model' differs from 'test-model'"),
            (["--seeds", str(other_seeds)], "--seeds: "),
            (["--language", "ja"], "--language: 'ja' differs from 'en'"),
            (["--recipe", "alpaca"], "--recipe: 'alpaca' differs from 'self-instruct'"),
            (["--api", "completions"], "--api: 'completions' differs from 'chat'"),
            (["--seed", "3"], "--seed: 3 differs from 2"),
            (["--pii", "mask"], "--filters: "),
            (["--base-url", elsewhere.base_url], "--base-url: "),
        ]
        for flags, message in refused:
            capsys.readouterr()
            assert main([*resume, *flags]) == 2, flags
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"selfinstruct: error: {message}"), err
            assert "start a new run without --resume" in err
        assert requests_seen(server) == sent and journal.read_bytes() == before
        assert requests_seen(elsewhere) == 0
        # The same command line again (plus --resume and a higher budget) is fine.
        capsys.readouterr()
        assert main([*first, "--resume", "--max-requests", "100000"]) == 0


def test_resume_from_another_directory_writes_under_the_runs_data_dir(tmp_path, monkeypatch,
                                                                      capsys):
    """Item 10: the version goes beside the run, wherever the resume is started from."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with start_server() as server:
        monkeypatch.chdir(tmp_path / "a")
        assert main(generate(server, Path("data"), "--max-requests", "6")) == EXIT_BUDGET
        run = run_dir_of(tmp_path / "a" / "data").resolve()
        monkeypatch.chdir(tmp_path / "b")
        capsys.readouterr()
        assert main(["generate", "--run-dir", str(run), "--max-requests", "100000",
                     "--no-progress"]) == 0
        version = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert version == tmp_path / "a" / "data" / "r" / "v0001"
    assert (version / "train.jsonl").exists()
    assert not (tmp_path / "b" / "data").exists()


def test_resume_after_the_data_folder_moved(tmp_path, capsys):
    with start_server() as server:
        assert main(generate(server, tmp_path / "old", "--max-requests", "6")) == EXIT_BUDGET
        os.rename(tmp_path / "old", tmp_path / "new")
        capsys.readouterr()
        assert main(["generate", "--dataset", "r", "--data-dir", str(tmp_path / "new"),
                     "--resume", "--max-requests", "100000", "--no-progress"]) == 0
        version = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert version == tmp_path / "new" / "r" / "v0001"
    assert not (tmp_path / "old").exists()


BAD_RUN_JSON = [
    ("{not json", "run.json: invalid JSON"),
    ("[1, 2]", "run.json: "),
    ('{"config": 5}', "'config'"),
    ('{"config": {"dataset": "r", "num_instructions": 3}}', "run.json: field 'seeds' is missing"),
    ('{"config": {"seeds": "s", "dataset": "r", "num_instructions": 3, "concurrency": "x"}}',
     "run.json: field 'concurrency': must be an integer from 1 to 1024 (got 'x')"),
    ('{"config": {"seeds": "s", "dataset": "r", "num_instructions": 3, "rpm": 1e999}}',
     "run.json: field 'rpm': must be a finite number (got inf)"),
]


@pytest.mark.parametrize(("content", "message"), BAD_RUN_JSON, ids=[m for _, m in BAD_RUN_JSON])
def test_bad_run_json_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    run = tmp_path / "r" / ".runs" / "20260101T000000Z-abcdef"
    run.mkdir(parents=True)
    (run / "run.json").write_text(content)
    code = main(["generate", "--run-dir", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_run_json_that_is_a_fifo_does_not_hang(tmp_path, capsys):
    run = tmp_path / "r" / ".runs" / "20260101T000000Z-abcdef"
    run.mkdir(parents=True)
    os.mkfifo(run / "run.json")
    assert main(["generate", "--run-dir", str(run)]) == 2
    assert "run.json: not a regular file" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_budget_stop_is_one_line_and_resumes_with_new_concurrency(tmp_path, capsys):
    data = tmp_path / "data"
    with start_server() as server:
        code = main([*generate(server, data, "--max-requests", "6", n=12), "--prefect"])
        err = capsys.readouterr().err
        assert code == EXIT_BUDGET, err
        assert err.strip().splitlines()[-1].startswith("selfinstruct: budget reached ")
        # (Prefect's own log of the stopped task run comes before it, on its console handler.)
        assert "--resume --prefect and a higher budget" in err
        assert main(["generate", "--dataset", "r", "--data-dir", str(data), "--resume",
                     "--prefect", "--concurrency", "5", "--max-requests", "100000"]) == 0
    version = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert version == data / "r" / "v0001"
