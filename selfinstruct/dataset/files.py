"""Reading a version's files: the manifest and JSONL rows, strictly.

Strict means NaN and Infinity are refused (they are not JSON, and a manifest or row holding
them breaks other readers), and every failure is an InputError naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError, located
from selfinstruct.dataset.layout import MANIFEST_FILE, TRAIN_FILE
from selfinstruct.dataset.naming import resolve_version
from selfinstruct.dataset.schema import check, json_kind


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str | bytes) -> object:
    """`json.loads` that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def read_manifest(version_path: str | Path) -> dict:
    """The manifest of a version folder; InputError if missing, not JSON or not an object."""
    path = Path(version_path) / MANIFEST_FILE
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(located(path, "not a regular file"))  # a FIFO would hang us
        manifest = loads_strict(path.read_bytes())
    except FileNotFoundError:
        raise InputError(located(path, "missing: not a dataset version folder")) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the constants above
        raise InputError(located(path, f"not valid JSON ({exc})")) from None
    if not isinstance(manifest, dict):
        raise InputError(located(path, "expected a JSON object"))
    return manifest


def parse_line(raw: bytes) -> dict:
    """One JSONL line as an object; ValueError (with the reason) otherwise."""
    row = loads_strict(raw.decode("utf-8"))
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {json_kind(row)}")
    return row


def checked_line(raw: bytes, schema: dict[str, Any], strict: bool
                 ) -> tuple[dict | None, list[tuple[str, str]]]:
    """One raw line of a version's data file, read and checked against its schema: the row
    (None when it is no whole JSON line) and its problems as (field, message) pairs. What
    `validate` reads every data file with, train.jsonl and preference.jsonl alike."""
    if not raw.endswith(b"\n"):
        return None, [("", "last line has no newline (file truncated?)")]
    try:
        row = parse_line(raw)
    except ValueError as exc:
        return None, [("", f"invalid JSON line ({exc})")]
    return row, list(check(row, schema, "", strict))


def iter_rows(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file; a bad line raises InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(located(path, "missing"))
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield parse_line(raw)
            except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
                raise InputError(located(path, str(exc), line=number)) from None


def read_train_rows(path: str | Path) -> list[dict]:
    """All train rows of a version (`path` as accepted by `resolve_version`)."""
    return list(iter_rows(resolve_version(path) / TRAIN_FILE))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
