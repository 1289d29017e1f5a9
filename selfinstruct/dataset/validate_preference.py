"""Validation of `preference.jsonl`: what `validate` checks beyond its sha256 and size.

The general check (`validate.check_version`) already proves the file is the one the manifest
lists (hash, size, listed, not a link). A file can match its hash and still be wrong — written
by another tool, or by a bug — so this adds what a DPO trainer relies on: every row has the
schema the card's features promise, ids are unique, chosen and rejected differ and chosen
ranked higher (a tie makes no pair), and the row count agrees with the manifest's file entry,
`counts.preference` and the run's `preference.pairs`. A missing or unlisted file is reported by
the general check, not twice here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfinstruct._errors import located
from selfinstruct.dataset.files import checked_line
from selfinstruct.dataset.layout import MANIFEST_FILE
from selfinstruct.preference_file import PREFERENCE_FILE, PREFERENCE_SCHEMA

_MAX_PROBLEMS = 20


def check_preference(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems of the version's preference.jsonl, one line each ([] without the file)."""
    files = manifest.get("files")
    entry = files.get(PREFERENCE_FILE) if isinstance(files, dict) else None
    path = folder / PREFERENCE_FILE
    if not isinstance(entry, dict) or path.is_symlink() or not path.is_file():
        return []
    problems: list[str] = []
    found = 0
    seen: set[str] = set()
    rows = 0
    with open(path, "rb") as handle:
        for rows, raw in enumerate(handle, start=1):
            for field, message in _row_problems(raw, seen):
                found += 1
                if found <= _MAX_PROBLEMS:
                    problems.append(located(path, message, line=rows, field=field or None))
    if found > _MAX_PROBLEMS:
        problems.append(located(path, f"{found - _MAX_PROBLEMS} more row problems not shown"))
    return problems + _count_problems(folder / MANIFEST_FILE, manifest, entry, rows)


def _row_problems(raw: bytes, seen: set[str]) -> list[tuple[str, str]]:
    row, found = checked_line(raw, PREFERENCE_SCHEMA, True)
    if row is None or found:
        return found
    if row["id"] in seen:
        found.append(("id", f"duplicate id {row['id']!r}"))
    seen.add(row["id"])
    if row["chosen"] == row["rejected"]:
        found.append(("rejected", "is the same text as chosen: not a preference pair"))
    if not row["chosen_score"] > row["rejected_score"]:
        found.append(("chosen_score", f"{row['chosen_score']} is not above rejected_score "
                                      f"{row['rejected_score']} (a tie makes no pair)"))
    return found


def _count_problems(manifest_path: Path, manifest: dict[str, Any], entry: dict[str, Any],
                    rows: int) -> list[str]:
    """The file's rows against its manifest entry, `counts.preference` and `preference.pairs`."""
    claims = {"files.preference.jsonl.rows": entry.get("rows")}
    counts = manifest.get("counts")
    claims["counts.preference"] = counts.get("preference") if isinstance(counts, dict) else None
    summary = manifest.get("preference")
    if isinstance(summary, dict):
        claims["preference.pairs"] = summary.get("pairs")
    return [located(manifest_path, f"is {claim!r}, {PREFERENCE_FILE} has {rows} rows",
                    field=field)
            for field, claim in claims.items() if claim != rows]
