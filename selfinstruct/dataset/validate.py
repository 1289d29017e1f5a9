"""Validation: does a version folder hold exactly what its manifest promises?

Checks the manifest's digest (`manifest.sha256`), each listed file's sha256, size and row count,
JSON and schema of every row, the counts, and every path in the folder: a file, folder or
symlink the manifest does not account for is an error naming that path (versions are
immutable, so anything added later is tampering or an accident worth knowing about).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError, located
from selfinstruct.dataset.files import checked_line, read_manifest, sha256_file
from selfinstruct.dataset.layout import (
    CARD_FILE,
    MANIFEST_FILE,
    REJECTED_FILE,
    SUMS_FILE,
    TRAIN_FILE,
    UNLISTED_FILES,
    is_member_name,
)
from selfinstruct.dataset.naming import resolve_version, version_number
from selfinstruct.dataset.schema import DATA_FILES, TRAIN_SCHEMA
from selfinstruct.dataset.signature import check_signature
from selfinstruct.dataset.validate_preference import check_preference

_MAX_PROBLEMS_PER_FILE = 20


class InvalidDatasetError(InputError):
    """A version folder that fails validation: the CLI exits 1 (a failed check, not bad usage)."""

    exit_code = 1


@dataclass
class Validation:
    """Problems (the version is not what its manifest says) and warnings (it could not all be
    checked, e.g. an old version without `manifest.sha256`)."""

    folder: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_version(path: str | Path) -> Validation:
    """Validate a version (`path` as `resolve_version` accepts); every finding is one line."""
    folder = _folder_to_check(Path(path))
    result = Validation(folder)
    try:
        manifest = read_manifest(folder)
    except InputError as exc:
        result.problems.append(str(exc))
        return result
    manifest_path = folder / MANIFEST_FILE
    problems, result.warnings = check_signature(folder, manifest)
    files = manifest.get("files")
    if not isinstance(files, dict):
        problems.append(located(manifest_path, "missing or not an object", field="files"))
        result.problems = problems
        return result
    problems += [
        located(manifest_path, f"{name} is required", field="files")
        for name in (*DATA_FILES, CARD_FILE)
        if name not in files
    ]
    task_ids: set[str] = set()
    for name, expected in files.items():
        if not is_member_name(name) or name in UNLISTED_FILES:
            # Only files inside the folder: a manifest must not point outside it.
            problems.append(located(manifest_path, f"bad file name {name!r}", field="files"))
        elif not isinstance(expected, dict):
            problems.append(located(manifest_path, "expected an object", field=f"files.{name}"))
        else:
            problems += _check_file(folder / name, expected, task_ids, DATA_FILES.get(name))
    problems += _check_counts(manifest, manifest_path, files, task_ids)
    problems += check_preference(folder, manifest)
    version = manifest.get("version")
    if version_number(folder.name) is not None and version != folder.name:
        problems.append(
            located(manifest_path, f"says {version!r} but the folder is {folder.name!r}",
                    field="version")
        )
    if (folder / SUMS_FILE).is_file() and not (folder / SUMS_FILE).is_symlink():
        problems += _check_sums(folder / SUMS_FILE)
    problems += _check_paths(folder, [name for name in files if is_member_name(name)])
    result.problems = problems
    return result


def _folder_to_check(path: Path) -> Path:
    """The folder itself when it is named like a version or holds train rows, even without a
    manifest (a deleted manifest is a finding, not "no such version"); else resolve it."""
    if path.is_dir() and (version_number(path.name) is not None or (path / TRAIN_FILE).is_file()):
        return path
    return resolve_version(path)


def validate(path: str | Path) -> list[str]:
    """Every problem found in a version folder, each one line naming file, line and field."""
    return check_version(path).problems


def require_valid(path: str | Path) -> Path:
    """Resolve and validate a version; raise InvalidDatasetError naming the first problem."""
    folder = resolve_version(path)
    problems = validate(folder)
    if problems:
        more = (
            f" (and {len(problems) - 1} more; run `selfinstruct validate`)"
            if len(problems) > 1
            else ""
        )
        raise InvalidDatasetError(problems[0] + more)
    return folder


def require_releasable(path: str | Path, action: str) -> tuple[Path, dict]:
    """A valid version with at least one train row, and its manifest; InputError otherwise.

    `action` ("release", "publish") names what is refused: an empty split is useless to train
    on and `datasets.load_dataset` cannot even load it.
    """
    folder = require_valid(path)
    manifest = read_manifest(folder)
    if manifest["counts"]["train"] == 0:
        raise InputError(located(folder, f"0 train rows: refusing to {action} an empty version"))
    return folder, manifest


def _check_paths(folder: Path, listed: list[str]) -> list[str]:
    """Every path under `folder` that the manifest does not account for, one line each.

    Listed files are checked by `_check_file`; here: unlisted files, folders that hold no
    listed file, symlinks anywhere (a link can point outside the version and change without
    touching it) and special files (a FIFO would hang a reader).
    """
    own = set(listed)
    files = own | set(UNLISTED_FILES)
    folders = {
        "/".join(name.split("/")[:depth]) for name in own for depth in range(1, name.count("/") + 1)
    }
    problems: list[str] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        with os.scandir(current) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                name = path.relative_to(folder).as_posix()
                if name in own:
                    continue  # _check_file reports links, special files and content
                if entry.is_symlink():
                    problems.append(located(path, "is a symbolic link; a version holds only its "
                                                  "own files and folders"))
                elif entry.is_dir(follow_symlinks=False):
                    if name in folders:
                        pending.append(path)
                    else:
                        problems.append(located(path, "folder not listed in manifest.json "
                                                      "(version folders are immutable)"))
                elif name not in files:
                    problems.append(located(path, "not listed in manifest.json (version folders "
                                                  "are immutable)"))
                elif not entry.is_file(follow_symlinks=False):
                    problems.append(located(path, "not a regular file"))
    return sorted(problems)


def _check_file(
    path: Path, expected: dict, task_ids: set[str], data_file: tuple[dict, bool] | None
) -> list[str]:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return [located(path, "missing")]
    except NotADirectoryError:
        return [located(path, "missing (a parent is not a folder)")]
    if stat.S_ISLNK(mode):
        return [located(path, "is a symbolic link; a version holds only its own files")]
    if not stat.S_ISREG(mode):
        return [located(path, "not a regular file")]
    schema, strict = data_file or (None, False)
    problems: list[str] = []
    line_problems = 0
    seen_ids: set[str] = set()
    digest = hashlib.sha256()
    size = rows = 0
    with open(path, "rb") as handle:
        for rows, raw in enumerate(handle, start=1):
            digest.update(raw)
            size += len(raw)
            if schema is None:
                continue
            for field_path, message in _check_line(raw, schema, strict, seen_ids, task_ids):
                line_problems += 1
                if line_problems <= _MAX_PROBLEMS_PER_FILE:
                    problems.append(located(path, message, line=rows, field=field_path or None))
    if line_problems > _MAX_PROBLEMS_PER_FILE:
        problems.append(
            located(path, f"{line_problems - _MAX_PROBLEMS_PER_FILE} more row problems not shown")
        )
    if size != expected.get("bytes"):
        problems.append(
            located(path, f"size is {size} bytes, manifest says {expected.get('bytes')}")
        )
    if digest.hexdigest() != expected.get("sha256"):
        problems.append(located(path, "sha256 does not match manifest.json (file changed)"))
    if schema is not None and rows != expected.get("rows"):
        problems.append(located(path, f"has {rows} rows, manifest says {expected.get('rows')}"))
    return problems


def _check_sums(path: Path) -> list[str]:
    """Check a `sha256sum`-format file listing sibling files."""
    problems = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        digest, _, name = line.partition("  ")
        target = path.parent / name
        if not is_member_name(name) or target.is_symlink() or not target.is_file():
            problems.append(located(path, f"lists a missing file {name!r}", line=number))
        elif sha256_file(target) != digest:
            problems.append(located(path, f"sha256 of {name} does not match", line=number))
    return problems


def _check_line(
    raw: bytes, schema: dict, strict: bool, seen_ids: set[str], task_ids: set[str]
) -> list[tuple[str, str]]:
    row, found = checked_line(raw, schema, strict)
    if row is not None and schema is TRAIN_SCHEMA and not found:
        if row["id"] in seen_ids:
            found.append(("id", f"duplicate id {row['id']!r}"))
        seen_ids.add(row["id"])
        task_ids.add(row["task_id"])
    return found


def _check_counts(
    manifest: dict, manifest_path: Path, files: dict, task_ids: set[str]
) -> list[str]:
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        return [located(manifest_path, "missing or not an object", field="counts")]

    def rows(name: str) -> Any:
        entry = files.get(name)
        return entry.get("rows") if isinstance(entry, dict) else None

    expected = {"train": rows(TRAIN_FILE), "rejected": rows(REJECTED_FILE), "tasks": len(task_ids)}
    return [
        located(
            manifest_path, f"is {counts.get(key)!r}, the files say {value!r}", field=f"counts.{key}"
        )
        for key, value in expected.items()
        if counts.get(key) != value
    ]
