"""The command line: fast paths stay fast, and bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfinstruct", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from selfinstruct.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('prefect', 'datasets', 'huggingface_hub', 'openai', "
            "'llama_cpp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
    result = cli("generate", "--help")
    assert result.returncode == 0 and "--num-instructions" in result.stdout


BAD_ARGS = [
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "-5"], "--num-instructions: must be a positive integer (got -5)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "abc"], "argument --num-instructions: invalid int value: 'abc'"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--language", "fr"], "argument --language: invalid choice"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--similarity-threshold", "1.5"],
     "--similarity-threshold: must be in (0, 1] (got 1.5)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--similarity-threshold", "0"],
     "--similarity-threshold: must be in (0, 1] (got 0.0)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "../x",
      "--num-instructions", "5"], "--dataset: must be 1-100 characters"),
    (["generate", "--seeds", "missing.jsonl", "--dataset", "x", "--num-instructions", "5"],
     "missing.jsonl: seed file not found"),
    (["generate", "--dataset", "x", "--num-instructions", "5"], "--seeds is required"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--base-url", "http://127.0.0.1:9/v1"],
     "--model is required with --base-url"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--base-url", "ftp://host"], "--base-url: must be an http(s) URL"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--concurrency", "0"], "--concurrency: must be an integer"),
    (["generate", "--dataset", "x", "--resume"], "no unfinished run of 'x' to resume"),
    (["frobnicate"], "argument command: invalid choice"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGS, ids=[m[:30] for _, m in BAD_ARGS])
def test_bad_arguments_one_line_exit_2_nothing_written(tmp_path, args, message):
    if args[0] == "generate":
        args = [*args, "--data-dir", str(tmp_path / "data")]
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("selfinstruct: error: "), result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()


def test_bad_seed_file_is_located_and_writes_nothing(tmp_path):
    seeds = tmp_path / "bad.jsonl"
    seeds.write_text('{"instruction": "ok", "output": "x"}\n{"instruction": ""}\n')
    result = cli("generate", "--seeds", str(seeds), "--dataset", "x", "--num-instructions", "3",
                 "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"selfinstruct: error: {seeds}:2: field 'instruction': empty")
    assert not (tmp_path / "data").exists()


CONFIG_CASES = [
    ("num_instructions = -1\n", "run.toml: field 'num_instructions': must be a positive integer"),
    ("num_instructions = 'ten'\n", "run.toml: field 'num_instructions': must be a positive"),
    ("colour = 'blue'\n", "run.toml: field 'colour': unknown setting"),
    ("num_instructions = \n", "run.toml: invalid TOML"),
    ("language = 'de'\n", "run.toml: field 'language': must be one of en, ja"),
]


@pytest.mark.parametrize(("content", "message"), CONFIG_CASES)
def test_bad_config_file(tmp_path, content, message):
    (tmp_path / "run.toml").write_text(content)
    result = cli("generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
                 "--config", str(tmp_path / "run.toml"), "--data-dir", str(tmp_path / "data"),
                 *(["--num-instructions", "2"] if "num_instructions" not in content else []))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_config_file_values_are_used_and_flags_override(tmp_path, openai_server):
    (tmp_path / "run.toml").write_text(
        f'seeds = "seeds/en_general.jsonl"\ndataset = "cfg"\nnum_instructions = 4\n'
        f'base_url = "{openai_server.base_url}"\nmodel = "test-model"\nseed = 3\n')
    result = cli("generate", "--config", str(tmp_path / "run.toml"), "--num-instructions", "6",
                 "--data-dir", str(tmp_path / "data"), "--no-progress",
                 env={"PATH": "", "OPENAI_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    version = Path(result.stdout.strip().splitlines()[-1])
    assert version.parent.name == "cfg"
    import json

    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 6 and manifest["config"]["seed"] == 3


def test_unreadable_paths_and_unusable_data_dir(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    cases = [
        (["--seeds", str(blocker / "seeds.jsonl"), "--data-dir", str(tmp_path / "d")],
         "seeds.jsonl: cannot read seed file: Not a directory"),
        (["--seeds", "seeds/en_general.jsonl", "--data-dir", str(blocker / "data")],
         "cannot create the dataset folder: Not a directory"),
    ]
    for extra, message in cases:
        result = cli("generate", "--dataset", "x", "--num-instructions", "2", *extra)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_config_file_not_utf8(tmp_path):
    (tmp_path / "run.toml").write_bytes(b"dataset = '\xff'\n")
    result = cli("generate", "--config", str(tmp_path / "run.toml"), "--seeds",
                 "seeds/en_general.jsonl", "--num-instructions", "2", "--data-dir",
                 str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"selfinstruct: error: {tmp_path / 'run.toml'}: not valid UTF-8"


def test_ctrl_c_saves_answers_in_flight_and_says_how_to_resume(tmp_path):
    import signal
    import time

    from tests.servers.openai_server import start_server

    with start_server(latency_ms=600) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct", "generate", "--seeds",
             "seeds/en_general.jsonl", "--dataset", "x", "--num-instructions", "300",
             "--data-dir", str(tmp_path), "--base-url", server.base_url, "--model",
             "test-model", "--no-progress"],
            cwd=ROOT, env={"PATH": "", "OPENAI_API_KEY": "k"}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        journal = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the first round is in flight
            journals = list(tmp_path.glob("x/.runs/*/journal.jsonl"))
            if journals and server.stats()["in_flight"] >= 4:
                journal = journals[0]
                break
            time.sleep(0.05)
        assert journal is not None
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        answered = server.stats()["successes_total"]
    assert process.returncode == 130
    assert "saving the answers of" in err and "--resume" in err
    assert out == "" and not list(tmp_path.glob("x/v*"))
    saved = journal.read_text().count('"type": "answer"')
    assert saved == answered > 0  # every answer the server gave is in the journal
