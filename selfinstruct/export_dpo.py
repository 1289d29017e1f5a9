"""Export a version's preference pairs for TRL's DPOTrainer (and tools that read its layout).

TRL's preference type has two formats (TRL docs, "Dataset formats and types"):

- ``dpo`` — conversational: ``{"prompt": [{"role": "user", "content": …}], "chosen":
  [{"role": "assistant", "content": …}], "rejected": [{"role": "assistant", …}]}``. The
  trainer applies the model's own chat template, which is how the responses were made (a
  chat request), so this is the default for chat models.
- ``dpo-standard`` — plain strings ``{"prompt", "chosen", "rejected"}`` with an explicit
  prompt, for base models or a template applied beforehand.

The prompt is the user turn the pair was ranked for (instruction, then the input after a blank
line — `preference_file`); scores, models and rationale stay in preference.jsonl (the
provenance a trainer does not read). JSONL, UTF-8, written atomically like every export.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from selfinstruct._errors import InputError
from selfinstruct.dataset import iter_rows, read_manifest, refuse_inside_version, require_valid
from selfinstruct.export import is_stdout
from selfinstruct.fileio import atomic_write
from selfinstruct.preference_file import PREFERENCE_FILE


def _conversational(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def _standard(row: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}


DPO_FORMATS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dpo": _conversational,
    "dpo-standard": _standard,
}


def write_dpo(rows: Iterable[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    """Write `rows` (preference.jsonl rows) in `fmt` as JSONL to `out`; return the count."""
    convert = DPO_FORMATS[fmt]
    count = 0
    for row in rows:
        out.write(json.dumps(convert(row), ensure_ascii=False) + "\n")
        count += 1
    return count


def export_dpo(path: str | Path, fmt: str, output: str | Path | None = None) -> int:
    """Export a (validated) version's preference pairs to `output` or stdout.

    A version without preference.jsonl (a run without --preference) is one clear error, not
    an empty file a trainer would silently accept. Output rules are `export.export_version`'s:
    atomic for a regular file, written through for a device or FIFO, never inside a version.
    """
    folder = require_valid(path)
    if PREFERENCE_FILE not in (read_manifest(folder).get("files") or {}):
        raise InputError(f"{folder}: no {PREFERENCE_FILE} in this version (generate it with "
                         "--preference)")
    rows = iter_rows(folder / PREFERENCE_FILE)
    if is_stdout(output):
        return write_dpo(rows, fmt, sys.stdout)
    assert output is not None
    output = Path(output)
    refuse_inside_version(output, "--output")
    try:
        Path(os.path.realpath(output)).parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(output, lambda handle: write_dpo(rows, fmt, handle), text=True)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from None
