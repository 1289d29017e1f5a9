"""The command line: fast paths stay fast, and bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pause import start_paused

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
    # Numbers are finite or refused at the edge (inf passes `> 0` and crashes mid-run).
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--tpm", "inf"], "--tpm: must be a finite number (got inf)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--max-cost", "inf"],
     "--max-cost: must be a finite number (got inf)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--rpm", "nan"], "--rpm: must be a finite number (got nan)"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--rpm", "-5"], "--rpm: must be a positive number"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--timeout=-inf"], "--timeout: must be a finite number"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--base-url", "http://127.0.0.1:99999/v1", "--model", "m"],
     "--base-url: must be an http(s) URL with a host and a port from 1 to 65535"),
    (["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "x",
      "--num-instructions", "5", "--base-url", "http://user:SENTINEL@127.0.0.1:0/v1"],
     "(got 'http://[REDACTED]@127.0.0.1:0/v1')"),
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
    ("rpm = inf\n", "run.toml: field 'rpm': must be a finite number (got inf)"),
    ("tpm = nan\n", "run.toml: field 'tpm': must be a finite number (got nan)"),
    ("max_cost = -1.0\n", "run.toml: field 'max_cost': must be a positive amount"),
    ("[prices.m]\ninput = inf\noutput = 1.0\n", "run.toml: field 'prices': must map"),
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


def test_fifo_and_device_inputs_are_refused_without_hanging(tmp_path):
    import os

    fifo = tmp_path / "seeds.fifo"
    os.mkfifo(fifo)
    cases = [
        (["--seeds", str(fifo)], f"{fifo}: not a regular file"),
        (["--seeds", "/dev/zero"], "/dev/zero: not a regular file"),
        (["--seeds", "seeds/en_general.jsonl", "--config", str(fifo)],
         f"{fifo}: not a regular file"),
    ]
    for extra, message in cases:
        result = cli("generate", "--dataset", "x", "--num-instructions", "2", "--data-dir",
                     str(tmp_path / "d"), *extra)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "d").exists()


def test_unexpected_errors_are_one_line_and_v_shows_the_traceback(monkeypatch, capsys):
    """Any exception that is not an InputError (a bug, an input nobody foresaw) still ends
    as one redacted line and exit 1; -v (before or after the command) adds the traceback."""
    from selfinstruct import cli as cli_module

    def broken(args: object) -> int:
        raise ZeroDivisionError("division by zero near sk-SENTINEL0123456789")

    monkeypatch.setattr(cli_module, "_cmd_generate", broken)
    assert cli_module.main(["generate"]) == 1
    err = capsys.readouterr().err
    assert err == ("selfinstruct: error: unexpected ZeroDivisionError: division by zero near "
                   "[REDACTED]; run again with -v for the traceback\n")
    for argv in (["generate", "-v"], ["-v", "generate"]):
        assert cli_module.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last)") and "in broken" in err
        assert err.splitlines()[-1] == ("selfinstruct: error: unexpected ZeroDivisionError: "
                                        "division by zero near [REDACTED]")
        assert "SENTINEL" not in err


def test_an_interrupt_swallowed_on_its_way_up_still_stops_the_run():
    """Python ignores a KeyboardInterrupt raised in a __del__ or a GC callback; the count
    of signals still stops the run at its next step."""
    import signal

    from selfinstruct.interrupts import Interrupts

    def step_whose_interrupt_is_lost() -> str:
        # What "Exception ignored in: ..." amounts to.
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        return "done"

    before = signal.getsignal(signal.SIGINT)
    with Interrupts() as interrupts:
        with pytest.raises(KeyboardInterrupt):
            interrupts.step("write-version", step_whose_interrupt_is_lost)
        with pytest.raises(KeyboardInterrupt):
            interrupts.step("next", lambda: None)
    assert signal.getsignal(signal.SIGINT) is before


def test_batch_api_sizes_its_first_window_by_the_target():
    """Item 18: a batch run of 30 instructions no longer sends 512 requests up front."""
    from selfinstruct.config import build_config, resolve_defaults

    def resolved(n: int, **extra: object) -> tuple[int | None, int | None, int | None]:
        config = resolve_defaults(build_config(
            {"seeds": "seeds/en_general.jsonl", "dataset": "d", "num_instructions": n,
             "base_url": "http://127.0.0.1:9/v1", "model": "m", "batch_api": True, **extra},
            environ={}), "en")
        return config.concurrency, config.requests_per_round, config.lookahead

    assert resolved(30) == (8, 8, 8)
    assert resolved(400) == (100, 100, 100)
    assert resolved(50_000) == (512, 512, 512)
    assert resolved(30, concurrency=3) == (3, 3, 3)
    assert "with --batch-api, requests per job" in " ".join(cli("generate", "--help").stdout
                                                            .split())


def test_batch_run_of_30_instructions_pays_for_about_30_requests(tmp_path, openai_server):
    """Item 18 end to end: it used to send 572 bootstrap requests (a 512-deep first window)."""
    import json

    result = cli("generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "b",
                 "--num-instructions", "30", "--data-dir", str(tmp_path), "--base-url",
                 openai_server.base_url, "--model", "test-model", "--batch-api",
                 "--batch-poll-interval", "0.05", "--seed", "3", "--no-progress",
                 env={"PATH": "", "OPENAI_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "b" / "v0001" / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 30
    assert manifest["usage"]["bootstrap"]["requests"] <= 16
    assert manifest["funnel"]["target"]["drops"].get("over_target", 0) < 60


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


# -- Ctrl-C at deterministic points (selfinstruct.interrupts.pause_point) ---------------------


def _start_paused(tmp_path: Path, base_url: str, point: str, *extra: str) -> subprocess.Popen:
    """Start `generate`, which stops at `point` (e.g. before:write-version:1) and reports
    there through a FIFO; returns once it is there (the FIFO read blocks until then)."""
    return start_paused(
        [sys.executable, "-m", "selfinstruct", "generate", "--seeds", "seeds/en_general.jsonl",
         "--dataset", "x", "--data-dir", str(tmp_path / "data"), "--base-url", base_url,
         "--model", "test-model", "--seed", "1", "--no-progress", *extra],
        point, tmp_path / "paused.fifo", {"PATH": "", "OPENAI_API_KEY": "k"})


def test_ctrl_c_just_before_the_version_write_exits_130_without_a_version(tmp_path):
    import signal

    from tests.servers.openai_server import start_server

    with start_server() as server:
        process = _start_paused(tmp_path, server.base_url, "before:write-version:1",
                                "--num-instructions", "6")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert out == "" and "interrupted" in err and "Traceback" not in err
    assert not list((tmp_path / "data" / "x").glob("v0*"))


def test_ctrl_c_after_the_version_is_written_exits_0_with_its_path(tmp_path):
    import signal

    from tests.servers.openai_server import start_server

    with start_server() as server:
        process = _start_paused(tmp_path, server.base_url, "after:write-version:1",
                                "--num-instructions", "6")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    version = Path(out.strip().splitlines()[-1])
    assert version == tmp_path / "data" / "x" / "v0001" and (version / "manifest.json").exists()
    assert "interrupted after the version was written" in err


def test_double_ctrl_c_abandons_answers_in_flight_quietly(tmp_path):
    """The second Ctrl-C lands while the answers in flight are being saved.

    Each answer takes 3 s: the requests issued while round 1 used its answers are still in
    flight when round 1 ends (the pause point), and the second SIGINT follows the "saving"
    line within milliseconds.
    """
    import signal

    from tests.servers.openai_server import start_server

    with start_server(latency_ms=3000) as server:
        process = _start_paused(tmp_path, server.base_url, "after:bootstrap-round:1",
                                "--num-instructions", "300")
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("selfinstruct: saving the answers of"), line
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err
    # The symptom: asyncio's "Task was destroyed but it is pending!" and tracebacks.
    assert "Task was destroyed" not in err and "Traceback" not in err, err
    assert "Task was destroyed" not in err and "Traceback" not in err, err
    assert out == ""
