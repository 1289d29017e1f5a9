"""Exports of a version's train rows in the shapes fine-tuning tools read.

Every format is JSONL (one record per line, UTF-8, non-ASCII unescaped): it streams, appends
and diffs well, and the tools that take Alpaca data (axolotl, LLaMA-Factory, TRL via
`datasets`) accept JSONL as readily as one big JSON array.

- alpaca:      {"instruction", "input", "output"}
- sharegpt:    {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}
- openai-chat: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
- jsonl:       the train row without provenance (id, task_id, is_classification kept)

Chat formats have no separate input field: the user turn is the instruction, followed by a
blank line and the input when there is one (the Alpaca prompt's order). A multi-turn row
(`generate --turns N`: it has `messages`) is written whole by the chat formats, every turn in
order; alpaca keeps its first turn (instruction, input, output), the only one its shape can
hold, and jsonl keeps the row as it is, `messages` included.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from selfinstruct._errors import InputError
from selfinstruct.dataset import TRAIN_FILE, iter_rows, refuse_inside_version, require_valid
from selfinstruct.fileio import atomic_write
from selfinstruct.turn_messages import first_user_message

STDOUT_NAMES = ("-", "/dev/stdout")


def user_turn(row: dict) -> str:
    """Instruction, then the input after a blank line when the task has one."""
    return first_user_message(row["instruction"], row["input"])


def conversation(row: dict) -> list[tuple[str, str]]:
    """(role, content) of every turn: a multi-turn row's `messages`, else its one exchange."""
    if row.get("messages"):
        return [(message["role"], message["content"]) for message in row["messages"]]
    return [("user", user_turn(row)), ("assistant", row["output"])]


def _alpaca(row: dict) -> dict:
    return {"instruction": row["instruction"], "input": row["input"], "output": row["output"]}


_SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}


def _sharegpt(row: dict) -> dict:
    return {"conversations": [{"from": _SHAREGPT_ROLES[role], "value": content}
                              for role, content in conversation(row)]}


def _openai_chat(row: dict) -> dict:
    return {"messages": [{"role": role, "content": content}
                         for role, content in conversation(row)]}


def _plain(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "provenance"}


FORMATS: dict[str, Callable[[dict], dict]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "openai-chat": _openai_chat,
    "jsonl": _plain,
}


Convert = Callable[[dict], dict]


def write_records(rows: Iterable[dict], convert: Convert, out: IO[str]) -> int:
    """Write `rows` converted by `convert` as JSONL to `out`; return the number of records."""
    count = 0
    for row in rows:
        out.write(json.dumps(convert(row), ensure_ascii=False) + "\n")
        count += 1
    return count


def is_stdout(output: str | Path | None) -> bool:
    """True for no output, `-` and `/dev/stdout`: the export goes to this process's stdout."""
    return output is None or str(output) in STDOUT_NAMES


def export_version(path: str | Path, fmt: str, output: str | Path | None = None) -> int:
    """Export a (validated) version to `output`, or to stdout (see `write_output`)."""
    folder = require_valid(path)
    return write_output(iter_rows(folder / TRAIN_FILE), FORMATS[fmt], output)


def write_output(rows: Iterable[dict], convert: Convert, output: str | Path | None) -> int:
    """Write converted `rows` to `output`, or to stdout (see `is_stdout`); every export's tail.

    Written with `atomic_write`, so a failed export never leaves a truncated file that a
    training run could pick up, while a symlink, /dev/null, a FIFO or /dev/fd/N behaves as in a
    shell redirection. A path inside a version folder is refused: versions are immutable.
    """
    if is_stdout(output):
        return write_records(rows, convert, sys.stdout)
    assert output is not None
    output = Path(output)
    refuse_inside_version(output, "--output")
    try:
        Path(os.path.realpath(output)).parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(output, lambda handle: write_records(rows, convert, handle),
                            text=True)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from None
