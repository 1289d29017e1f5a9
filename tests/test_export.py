"""Exports for fine-tuning tools: each format re-read and compared with the source rows."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from selfinstruct.dataset import TRAIN_FILE, InvalidDatasetError, read_train_rows, validate
from selfinstruct.export import FORMATS, export_version
from tests.dataset_samples import folder_hashes, run_cli, write_sample

ROOT = Path(__file__).resolve().parent.parent


def _user_turn(row: dict) -> str:
    return row["instruction"] + ("\n\n" + row["input"] if row["input"] else "")


EXPECTED = {
    "alpaca": lambda row: {
        "instruction": row["instruction"],
        "input": row["input"],
        "output": row["output"],
    },
    "sharegpt": lambda row: {
        "conversations": [
            {"from": "human", "value": _user_turn(row)},
            {"from": "gpt", "value": row["output"]},
        ]
    },
    "openai-chat": lambda row: {
        "messages": [
            {"role": "user", "content": _user_turn(row)},
            {"role": "assistant", "content": row["output"]},
        ]
    },
    "jsonl": lambda row: {key: value for key, value in row.items() if key != "provenance"},
}


def test_every_format_has_an_expectation() -> None:
    assert set(FORMATS) == set(EXPECTED)


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
@pytest.mark.parametrize("ja", [False, True])
def test_export_round_trips(tmp_path: Path, fmt: str, ja: bool) -> None:
    folder = write_sample(tmp_path / "demo", ja=ja)
    source = read_train_rows(folder)
    output = tmp_path / "out" / f"{fmt}.jsonl"

    assert export_version(tmp_path / "demo" / "latest", fmt, output) == len(source)
    raw = output.read_bytes()
    exported = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert exported == [EXPECTED[fmt](row) for row in source]
    assert b"\\u" not in raw  # non-ASCII stays readable
    assert list(output.parent.iterdir()) == [output]  # no temporary file left


def test_chat_formats_join_instruction_and_input_with_a_blank_line(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo", rows=2)
    with_input, without_input = read_train_rows(folder)
    output = tmp_path / "chat.jsonl"
    export_version(folder, "openai-chat", output)
    first, second = (json.loads(line) for line in output.read_text().splitlines())
    assert first["messages"][0]["content"] == (
        f"{with_input['instruction']}\n\n{with_input['input']}"
    )
    assert second["messages"][0]["content"] == without_input["instruction"]


def test_cli_export_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo", ja=True)
    assert run_cli(["export", str(tmp_path / "demo" / "latest"), "--format", "alpaca"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        EXPECTED["alpaca"](row) for row in read_train_rows(folder)
    ]


def test_an_invalid_version_is_not_exported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    with open(folder / TRAIN_FILE, "a") as handle:
        handle.write("{}\n")
    output = tmp_path / "out.jsonl"
    with pytest.raises(InvalidDatasetError):
        export_version(folder, "jsonl", output)
    assert run_cli(["export", str(folder), "--format", "jsonl", "--output", str(output)]) == 1
    assert str(folder / TRAIN_FILE) in capsys.readouterr().err
    assert not output.exists()


def test_export_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    write_sample(tmp_path / "demo", rows=3000)  # well beyond a pipe buffer
    code = (
        "import sys; from tests.dataset_samples import run_cli; "
        f"sys.exit(run_cli(['export', {str(tmp_path / 'demo')!r}, '--format', 'alpaca']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(proc.stdout.readline())["instruction"]
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=30) == 141
    assert proc.stderr.read() == b""  # no traceback
    proc.stderr.close()


def test_export_into_the_version_itself_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = write_sample(tmp_path / "demo")
    before = folder_hashes(folder)
    argv = ["export", str(folder), "--format", "alpaca", "--output", str(folder / TRAIN_FILE)]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"selfinstruct: error: --output {folder / TRAIN_FILE}: inside the version folder "
        f"{folder}; versions are immutable, choose another location"
    ]
    assert folder_hashes(folder) == before
    assert validate(folder) == []


@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
def test_dash_and_dev_stdout_mean_stdout(tmp_path: Path, name: str) -> None:
    folder = write_sample(tmp_path / "demo", rows=3)
    code = (
        "import sys; from tests.dataset_samples import run_cli; "
        f"sys.exit(run_cli(['export', {str(folder)!r}, '--format', 'alpaca', "
        f"'--output', {name!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        EXPECTED["alpaca"](row) for row in read_train_rows(folder)
    ]
    assert done.stderr == b""  # no "wrote ... to -" line: the data is the output
    assert not (tmp_path / "-").exists()


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as handle:
            into.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("via_link", [False, True])
def test_a_fifo_is_written_through_not_replaced(tmp_path: Path, via_link: bool) -> None:
    folder = write_sample(tmp_path / "demo", rows=4)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    output = fifo
    if via_link:
        output = tmp_path / "link"
        output.symlink_to(fifo)
    received: list[bytes] = []
    reader = _read_fifo(fifo, received)
    assert export_version(folder, "alpaca", output) == 4
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not a regular file
    assert output.is_symlink() == via_link
    lines = received[0].decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        EXPECTED["alpaca"](row) for row in read_train_rows(folder)
    ]


def test_a_symlinked_file_is_replaced_behind_the_link(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo", rows=2)
    target = tmp_path / "exports" / "current.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "train-data.jsonl"
    link.symlink_to(target)
    assert export_version(folder, "jsonl", link) == 2
    assert link.is_symlink() and link.resolve() == target
    assert [json.loads(line) for line in target.read_text().splitlines()] == [
        EXPECTED["jsonl"](row) for row in read_train_rows(folder)
    ]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the replaced file keeps its mode
    assert sorted(p.name for p in target.parent.iterdir()) == ["current.jsonl"]


def test_an_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "out.jsonl"  # a parent that is a file
    assert run_cli(["export", str(folder), "--format", "alpaca", "--output", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"selfinstruct: error: --output {bad}: cannot write")
