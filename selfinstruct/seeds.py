"""Load and validate seed task sets.

Two row shapes are accepted in one JSON Lines file (or a JSON array, as Alpaca ships it):

* Self-Instruct: ``{"id", "name", "instruction", "instances": [{"input", "output"}],
  "is_classification"}`` — the schema of ``seeds/*.jsonl``.
* Alpaca: ``{"instruction", "input", "output"}`` — one instance; whether it is a
  classification task is unknown (``None``) unless the row says so.

Validation is strict and up front because a seed set is small, hand-written and read by
every round: a typo found after an hour of paid generation is expensive. Every problem is
reported as one line naming the file, the line (or array item) and the field. That includes
fields this module does not know (a misspelt ``is_clasification`` would otherwise be ignored
silently) and strings no UTF-8 writer can store (a ``"\\ud800"`` escape would otherwise crash
the journal after paid requests).

``--seeds`` takes a path or the name of a bundled set (``en_general``): an installed wheel
carries ``seeds/`` inside the package, where no user would type the path.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError, located
from selfinstruct.prompts import bundled_dir

MAX_LINE_BYTES = 1_000_000  # a seed task is a few hundred bytes; a 1 MB line is a broken file
# 175 seeds are ~50 KB; 100 MB is far beyond any hand-written set and still fits in memory.
# Checked before reading, so `/dev/zero` or a runaway file is refused instead of filling RAM.
MAX_FILE_BYTES = 100 * 1024 * 1024

SELF_INSTRUCT_FIELDS = ("id", "name", "instruction", "instances", "is_classification")
INSTANCE_FIELDS = ("input", "output")
ALPACA_FIELDS = ("id", "instruction", "input", "output", "is_classification")
# Fields of well-known Alpaca-shaped files that carry nothing a seed needs, so they are
# skipped rather than refused: the `text` column of the Hub's tatsu-lab/alpaca (the row
# rendered into a prompt) and `task_id`/`provenance` of selfinstruct's own train rows.
IGNORED_ALPACA_FIELDS = ("text", "task_id", "provenance")


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


def bundled_seed_sets() -> list[str]:
    """Names of the seed sets shipped with selfinstruct, accepted by ``--seeds NAME``."""
    try:
        folder = bundled_dir("seeds")
    except InputError:
        return []
    return sorted(p.stem for p in folder.glob("*.jsonl") if p.is_file())


def resolve_seed_path(path: str | Path) -> Path:
    """The file `path` names: an existing path first, else a bundled set of that name.

    A bundled set may be named ``en_general``, ``en_general.jsonl`` or — so the README's
    ``seeds/en_general.jsonl`` works from any folder of an installed copy —
    ``seeds/en_general.jsonl``. Anything else is returned unchanged (and fails to open with
    the path the user typed).
    """
    path = Path(path)
    if os.path.lexists(path):
        return path
    parts = path.parts
    plain = len(parts) == 1 and path.suffix in ("", ".jsonl")
    in_seeds = len(parts) == 2 and parts[0] == "seeds" and path.suffix == ".jsonl"
    if (plain or in_seeds) and path.stem in bundled_seed_sets():
        return bundled_dir("seeds") / f"{path.stem}.jsonl"
    return path


def load_seeds(path: str | Path) -> SeedSet:
    """Read and validate a seed file or bundled set; raise `InputError` on any fault."""
    path = resolve_seed_path(path)
    raw = read_seed_file(path)
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
    rows = _json_array_rows(path, text) if is_array else jsonl_rows(path, text)
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


_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def read_seed_file(path: Path) -> bytes:
    """The bytes of a regular file of at most `MAX_FILE_BYTES`.

    Opened non-blocking and checked on the open descriptor (not by name first, which could
    change in between): opening a FIFO for reading would otherwise wait forever for a writer,
    and a device such as ``/dev/zero`` never ends.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        names = ", ".join(bundled_seed_sets()) or "none"
        raise InputError(f"{path}: seed file not found (bundled sets: {names})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read seed file: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the name (possible from a config file, not from argv)
        raise InputError(f"{path!r}: not a valid file name") from None
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory, expected a seed file (.jsonl)")
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise InputError(f"{path}: is {kind}; a seed file must be a regular file")
        too_large = InputError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; "
                               f"a seed file is a small hand-written set")
        if info.st_size > MAX_FILE_BYTES:
            raise too_large
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):  # bounded again: the file may grow meanwhile
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise too_large
            chunks.append(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read seed file: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def jsonl_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """Rows of a JSON Lines file, split on line feeds only.

    `str.splitlines` would also split at U+0085, U+2028 and U+2029, which JSON allows raw
    inside strings; a CRLF file keeps working because the CR is dropped.
    """
    rows = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            raise InputError(located(path, f"line longer than {MAX_LINE_BYTES} bytes", line_no))
        rows.append((line_no, _parse_json(path, line, line_no)))
    return rows


def _json_array_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """Rows of an Alpaca-style JSON array, located by the line each item starts on."""
    data = _parse_json(path, text, 0)
    if not isinstance(data, list):
        raise InputError(located(path, "expected a JSON array of tasks", 1))
    # json does not report positions of items, so recover each item's line by scanning for
    # the object starts at nesting depth 1; good enough for error messages.
    starts = _top_level_object_lines(text)
    return [(starts[i] if i < len(starts) else 1, row) for i, row in enumerate(data)]


def _parse_json(path: Path, text: str, first_line: int) -> Any:
    """`json.loads` with one-line errors; `first_line` is the line number `text` starts on
    in the file (0 when `text` is the whole file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = "unexpected text after the JSON value" if exc.msg == "Extra data" else exc.msg
        line = first_line or exc.lineno
        raise InputError(located(path, f"invalid JSON: {message} (column {exc.colno})",
                                 line)) from None
    except RecursionError:
        raise InputError(located(path, "invalid JSON: nested too deeply", first_line or 1)) \
            from None


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


def _printable(text: str) -> str:
    """`text` safe to print: lone surrogates (which no terminal encoding takes) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_fields(path: Path, line: int, row: dict, known: tuple[str, ...],
                  where: str = "", ignored: tuple[str, ...] = ()) -> None:
    """Refuse a field outside `known` (+ `ignored`), suggesting the closest known name."""
    for key in row:
        if key in known or key in ignored:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InputError(located(path, f"unknown field ({hint}known: {', '.join(known)})",
                                 line, where + _printable(key)))


def _check_text(path: Path, line: int, value: str, label: str) -> str:
    """Refuse a string holding a lone surrogate (a JSON escape such as ``"\\ud800"``).

    json accepts those escapes, but the string cannot be written as UTF-8: it would fail
    only when the first prompt or journal line containing it is written, after paying.
    """
    for index, ch in enumerate(value):
        if "\ud800" <= ch <= "\udfff":
            raise InputError(located(path, f"lone surrogate \\u{ord(ch):04x} at character "
                                     f"{index}: not valid Unicode text", line, label))
    return value


def require_str(path: Path, line: int, row: dict, name: str, label: str | None = None) -> str:
    """Return a non-empty string field or fail naming it (`label` is its full dotted path)."""
    label = label or name
    value = row.get(name)
    if value is None:
        raise InputError(located(path, "missing", line, label))
    return _optional_str(path, line, value, label, empty_ok=False)


def _optional_str(path: Path, line: int, value: Any, label: str, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise InputError(located(path, f"expected a string, got {type(value).__name__}",
                                 line, label))
    if not empty_ok and not value.strip():
        raise InputError(located(path, "empty", line, label))
    return _check_text(path, line, value, label)


def _optional_flag(path: Path, line: int, row: dict) -> bool | None:
    value = row.get("is_classification")
    if value is not None and not isinstance(value, bool):
        raise InputError(located(path, f"expected true or false, got {json.dumps(value)}",
                                 line, "is_classification"))
    return value


def _task_id(path: Path, line: int, row: dict) -> str:
    task_id = row.get("id", f"line-{line}")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool):
        raise InputError(located(path, f"expected a string, got {type(task_id).__name__}",
                                 line, "id"))
    return _check_text(path, line, str(task_id), "id")


def _task_from_row(path: Path, line: int, row: Any) -> SeedTask:
    if not isinstance(row, dict):
        raise InputError(located(path, f"expected a JSON object, got {type(row).__name__}", line))
    if "instances" in row:
        check_fields(path, line, row, SELF_INSTRUCT_FIELDS)
        return _self_instruct_task(path, line, row)
    if "output" in row:
        check_fields(path, line, row, ALPACA_FIELDS, ignored=IGNORED_ALPACA_FIELDS)
        return _alpaca_task(path, line, row)
    # Neither shape: a misspelt key is the likeliest cause, so name it before what is missing.
    check_fields(path, line, row, tuple(dict.fromkeys(SELF_INSTRUCT_FIELDS + ALPACA_FIELDS)),
                  ignored=IGNORED_ALPACA_FIELDS)
    require_str(path, line, row, "instruction")
    raise InputError(located(path, "missing (a task needs 'instances' or 'output')", line,
                             "instances"))


def _self_instruct_task(path: Path, line: int, row: dict) -> SeedTask:
    instruction = require_str(path, line, row, "instruction").strip()
    task_id = _task_id(path, line, row)
    name = _optional_str(path, line, row.get("name", ""), "name")
    is_clf = _optional_flag(path, line, row)
    raw_instances = row["instances"]
    if not isinstance(raw_instances, list):
        raise InputError(located(path, f"expected a list, got {type(raw_instances).__name__}",
                                 line, "instances"))
    instances = []
    for i, inst in enumerate(raw_instances):
        where = f"instances[{i}]"
        if not isinstance(inst, dict):
            raise InputError(located(path, "expected an object", line, where))
        check_fields(path, line, inst, INSTANCE_FIELDS, where=f"{where}.")
        input_ = _optional_str(path, line, inst.get("input", ""), f"{where}.input")
        output = require_str(path, line, inst, "output", f"{where}.output")
        instances.append(Instance(input=input_.strip(), output=output.strip()))
    return SeedTask(id=task_id, instruction=instruction, instances=tuple(instances),
                    is_classification=is_clf, name=name)


def _alpaca_task(path: Path, line: int, row: dict) -> SeedTask:
    instruction = require_str(path, line, row, "instruction").strip()
    input_ = _optional_str(path, line, row.get("input", ""), "input")
    output = require_str(path, line, row, "output")
    input_ = "" if input_.strip() == "<noinput>" else input_.strip()
    return SeedTask(id=_task_id(path, line, row), instruction=instruction,
                    instances=(Instance(input=input_, output=output.strip()),),
                    is_classification=_optional_flag(path, line, row))
