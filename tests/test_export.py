"""Exports for fine-tuning tools: each format re-read and compared with the source rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct.dataset import TRAIN_FILE, InvalidDatasetError, read_train_rows
from selfinstruct.export import FORMATS, export_version
from tests.dataset_samples import run_cli, write_sample

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
