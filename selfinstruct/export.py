"""Exports of a version's train rows in the shapes fine-tuning tools read.

Every format is JSONL (one record per line, UTF-8, non-ASCII unescaped): it streams, appends
and diffs well, and the tools that take Alpaca data (axolotl, LLaMA-Factory, TRL via
`datasets`) accept JSONL as readily as one big JSON array.

- alpaca:      {"instruction", "input", "output"}
- sharegpt:    {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}
- openai-chat: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
- jsonl:       the train row without provenance (id, task_id, is_classification kept)

Chat formats have no separate input field: the user turn is the instruction, followed by a
blank line and the input when there is one (the Alpaca prompt's order).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from selfinstruct._errors import InputError
from selfinstruct.dataset import TRAIN_FILE, iter_rows, refuse_inside_version, require_valid

STDOUT_NAMES = ("-", "/dev/stdout")
# Paths here name devices and open descriptors (/dev/fd/3, /proc/self/fd/1), even when they
# resolve to a regular file: writing through them is what the user asked for.
_DESCRIPTOR_DIRS = ("/dev/", "/proc/")


def user_turn(row: dict) -> str:
    """Instruction, then the input after a blank line when the task has one."""
    return f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]


def _alpaca(row: dict) -> dict:
    return {"instruction": row["instruction"], "input": row["input"], "output": row["output"]}


def _sharegpt(row: dict) -> dict:
    return {
        "conversations": [
            {"from": "human", "value": user_turn(row)},
            {"from": "gpt", "value": row["output"]},
        ]
    }


def _openai_chat(row: dict) -> dict:
    return {
        "messages": [
            {"role": "user", "content": user_turn(row)},
            {"role": "assistant", "content": row["output"]},
        ]
    }


def _plain(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "provenance"}


FORMATS: dict[str, Callable[[dict], dict]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "openai-chat": _openai_chat,
    "jsonl": _plain,
}


def write_export(rows: Iterable[dict], fmt: str, out: TextIO) -> int:
    """Write `rows` converted to `fmt` as JSONL to `out`; return the number of records."""
    convert = FORMATS[fmt]
    count = 0
    for row in rows:
        out.write(json.dumps(convert(row), ensure_ascii=False) + "\n")
        count += 1
    return count


def is_stdout(output: str | Path | None) -> bool:
    """True for no output, `-` and `/dev/stdout`: the export goes to this process's stdout."""
    return output is None or str(output) in STDOUT_NAMES


def export_version(path: str | Path, fmt: str, output: str | Path | None = None) -> int:
    """Export a (validated) version to `output`, or to stdout (see `is_stdout`).

    A regular file (new or existing) is written next to its final name and renamed, so a failed
    export never leaves a truncated file that a training run could pick up; a symlink is
    followed and its target replaced, so the link stays. Anything else that exists — a device
    such as /dev/null, a FIFO, a path under /dev or /proc naming an open descriptor — is written
    through in place, like a shell redirection: replacing it would destroy it. A path inside a
    version folder is refused, since versions are immutable.
    """
    folder = require_valid(path)
    rows = iter_rows(folder / TRAIN_FILE)
    if is_stdout(output):
        return write_export(rows, fmt, sys.stdout)
    assert output is not None
    output = Path(output)
    refuse_inside_version(output, "--output")
    try:
        if _write_in_place(output):
            with open(output, "w", encoding="utf-8", newline="\n") as handle:
                return write_export(rows, fmt, handle)
        return _replace(Path(os.path.realpath(output)), rows, fmt)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from None


def _write_in_place(output: Path) -> bool:
    """Whether `output` exists as something other than a regular file we may replace."""
    try:
        mode = os.stat(output).st_mode  # follows symlinks: the target decides
    except FileNotFoundError:
        return False  # a new file (or a dangling link's new target)
    absolute = os.path.abspath(output)
    return not stat.S_ISREG(mode) or absolute.startswith(_DESCRIPTOR_DIRS)


def _replace(target: Path, rows: Iterable[dict], fmt: str) -> int:
    """Write `target` atomically (temporary sibling, then rename), keeping an old file's mode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            count = write_export(rows, fmt, handle)
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
