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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.dataset import iter_rows, read_manifest, require_valid
from selfinstruct.export import write_output
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
    return write_output(iter_rows(folder / PREFERENCE_FILE), DPO_FORMATS[fmt], output)
