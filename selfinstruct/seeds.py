"""Load and validate seed task sets.

Two row shapes are accepted in one JSON Lines file (or a JSON array, as Alpaca ships it):

* Self-Instruct: ``{"id", "name", "instruction", "instances": [{"input", "output"}],
  "is_classification"}`` — the schema of ``seeds/*.jsonl``.
* Alpaca: ``{"instruction", "input", "output"}`` — one instance; whether it is a
  classification task is unknown (``None``).

Validation is strict and up front because a seed set is small, hand-written and read by
every round: a typo found after an hour of paid generation is expensive. Every problem is
reported as one line naming the file, the line (or array item) and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError, located

MAX_LINE_BYTES = 1_000_000  # a seed task is a few hundred bytes; a 1 MB line is a broken file


@dataclass(frozen=True)
class Instance:
    """One input/output pair of a task (``input`` may be empty)."""

    input: str
    output: str


@dataclass(frozen=True)
class SeedTask:
    """A validated human-written task used as an in-context example."""

    id: str
    instruction: str
    instances: tuple[Instance, ...] = field(default_factory=tuple)
    is_classification: bool | None = None
    name: str = ""


@dataclass(frozen=True)
class SeedSet:
    """The tasks of one seed file, with the file's hash for provenance."""

    path: Path
    sha256: str
    tasks: tuple[SeedTask, ...]


def load_seeds(path: str | Path) -> SeedSet:
    """Read and validate a seed file; raise `InputError` with a one-line location on any fault."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: seed file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a seed file (.jsonl)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read seed file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            located(path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line)
        ) from None
    text = text.removeprefix("\ufeff")  # tolerate a UTF-8 BOM written by some editors
    if not text.strip():
        raise InputError(f"{path}: empty seed file (no tasks)")
    is_array = text.lstrip().startswith("[")
    rows = _json_array_rows(path, text) if is_array else _jsonl_rows(path, text)
    tasks: list[SeedTask] = []
    first_line_of_id: dict[str, int] = {}
    for line_no, row in rows:
        task = _task_from_row(path, line_no, row)
        if task.id in first_line_of_id:
            raise InputError(
                located(path, f"duplicate id {task.id!r} (first on line "
                        f"{first_line_of_id[task.id]})", line_no, "id")
            )
        first_line_of_id[task.id] = line_no
        tasks.append(task)
    if not tasks:
        raise InputError(f"{path}: empty seed file (no tasks)")
    return SeedSet(path=path, sha256=hashlib.sha256(raw).hexdigest(), tasks=tuple(tasks))


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            raise InputError(located(path, f"line longer than {MAX_LINE_BYTES} bytes", line_no))
        try:
            rows.append((line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(located(path, f"invalid JSON: {exc.msg} (column {exc.colno})",
                                     line_no)) from None
    return rows


def _json_array_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """Rows of an Alpaca-style JSON array, located by the line each item starts on."""
    decoder = json.JSONDecoder()
    try:
        data, _ = decoder.raw_decode(text.lstrip())
    except json.JSONDecodeError as exc:
        offset = len(text) - len(text.lstrip())
        line = text.count("\n", 0, exc.pos + offset) + 1
        raise InputError(located(path, f"invalid JSON: {exc.msg}", line)) from None
    if not isinstance(data, list):
        raise InputError(located(path, "expected a JSON array of tasks", 1))
    # json does not report positions of items, so recover each item's line by scanning for
    # the object starts at nesting depth 1; good enough for error messages.
    starts = _top_level_object_lines(text)
    return [(starts[i] if i < len(starts) else 1, row) for i, row in enumerate(data)]


def _top_level_object_lines(text: str) -> list[int]:
    lines, depth, in_string, escaped, line = [], 0, False, False, 1
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            escaped = not escaped and ch == "\\"
            if ch == '"' and not escaped:
                in_string = False
            continue
        if ch == '"':
            in_string, escaped = True, False
        elif ch in "[{":
            if depth == 1:
                lines.append(line)
            depth += 1
        elif ch in "]}":
            depth -= 1
    return lines


def _require_str(path: Path, line: int, row: dict, name: str, label: str | None = None) -> str:
    """Return a non-empty string field or fail naming it (`label` is its full dotted path)."""
    label = label or name
    value = row.get(name)
    if value is None:
        raise InputError(located(path, "missing", line, label))
    if not isinstance(value, str):
        raise InputError(located(path, f"expected a string, got {type(value).__name__}",
                                 line, label))
    if not value.strip():
        raise InputError(located(path, "empty", line, label))
    return value


def _task_from_row(path: Path, line: int, row: Any) -> SeedTask:
    if not isinstance(row, dict):
        raise InputError(located(path, f"expected a JSON object, got {type(row).__name__}", line))
    instruction = _require_str(path, line, row, "instruction").strip()
    if "instances" in row:
        return _self_instruct_task(path, line, row, instruction)
    if "output" in row:
        return _alpaca_task(path, line, row, instruction)
    raise InputError(located(path, "missing (a task needs 'instances' or 'output')", line,
                             "instances"))


def _self_instruct_task(path: Path, line: int, row: dict, instruction: str) -> SeedTask:
    task_id = row.get("id", f"line-{line}")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool):
        raise InputError(located(path, f"expected a string, got {type(task_id).__name__}",
                                 line, "id"))
    name = row.get("name", "")
    if not isinstance(name, str):
        raise InputError(located(path, f"expected a string, got {type(name).__name__}",
                                 line, "name"))
    is_clf = row.get("is_classification")
    if is_clf is not None and not isinstance(is_clf, bool):
        raise InputError(located(path, f"expected true or false, got {json.dumps(is_clf)}",
                                 line, "is_classification"))
    raw_instances = row["instances"]
    if not isinstance(raw_instances, list):
        raise InputError(located(path, f"expected a list, got {type(raw_instances).__name__}",
                                 line, "instances"))
    instances = []
    for i, inst in enumerate(raw_instances):
        where = f"instances[{i}]"
        if not isinstance(inst, dict):
            raise InputError(located(path, "expected an object", line, where))
        input_ = inst.get("input", "")
        if not isinstance(input_, str):
            raise InputError(located(path, "expected a string", line, f"{where}.input"))
        output = _require_str(path, line, inst, "output", f"{where}.output")
        instances.append(Instance(input=input_.strip(), output=output.strip()))
    return SeedTask(id=str(task_id), instruction=instruction, instances=tuple(instances),
                    is_classification=is_clf, name=name)


def _alpaca_task(path: Path, line: int, row: dict, instruction: str) -> SeedTask:
    input_ = row.get("input", "")
    if not isinstance(input_, str):
        raise InputError(located(path, f"expected a string, got {type(input_).__name__}",
                                 line, "input"))
    output = _require_str(path, line, row, "output")
    input_ = "" if input_.strip() == "<noinput>" else input_.strip()
    return SeedTask(id=str(row.get("id", f"line-{line}")), instruction=instruction,
                    instances=(Instance(input=input_, output=output.strip()),))
