"""Writing a version: streamed, checked, synced, and renamed into place in one step.

A version is written into `data/<name>/.tmp-<uuid>/`, every file and the folder are fsynced,
and the folder is renamed into place. A crash leaves at most a `.tmp-*` folder that listing and
resolution ignore; the next write removes temporary folders older than an hour (a live writer
touches its folder regularly, so a slow write is never taken for a crash). A version is never
modified once it exists, so its name is a stable reference for training runs, releases and Hub
tags.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from selfinstruct import __version__
from selfinstruct._errors import InputError, located
from selfinstruct.card import render_card
from selfinstruct.dataset.files import sha256_file
from selfinstruct.dataset.layout import (
    CARD_FILE,
    DEFAULT_LICENSE,
    MANIFEST_FILE,
    REJECTED_FILE,
    SIGNATURE_FILE,
    TRAIN_FILE,
    UNLISTED_FILES,
    is_member_name,
)
from selfinstruct.dataset.naming import check_dataset_name, next_version, refuse_inside_version
from selfinstruct.dataset.schema import DATA_FILES, TRAIN_SCHEMA, check
from selfinstruct.dataset.signature import signature_text
from selfinstruct.fileio import atomic_write, fsync_dir
from selfinstruct.preference_file import PREFERENCE_DATA_FILE, PREFERENCE_FILE
from selfinstruct.redact import find_secret

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600
_TOUCH_EVERY_SECONDS = 60
_COMMIT_ATTEMPTS = 5

# Writes more files into an unfinished version folder; returns their folder-relative paths.
ExtraFiles = Callable[[Path, dict], Iterable[str]]
# Data files a run may add beside train and rejected rows: name -> (row schema, strict). Each
# is checked row by row like train.jsonl and counted in the manifest (`counts.<stem>`).
OPTIONAL_DATA_FILES: dict[str, tuple[dict[str, Any], bool]] = {
    PREFERENCE_FILE: PREFERENCE_DATA_FILE,
}


def write_version(
    dataset_dir: str | Path,
    train_rows: Iterable[dict],
    rejected_rows: Iterable[dict],
    manifest: dict,
    *,
    extra_files: ExtraFiles | None = None,
    data_files: Mapping[str, Iterable[dict]] | None = None,
) -> Path:
    """Write a new immutable version of the dataset in `dataset_dir`; return its folder.

    The caller's manifest is completed with identity, provenance and integrity fields (name,
    version, parent, created_at, package_version, files, counts). Nothing appears under a version
    name unless every file was written and synced: on any error the temporary folder is removed.
    A version with no train rows is refused (InputError): an empty dataset is never published
    by surprise. The pipeline checks this before calling; this is the last safety net.

    `extra_files(folder, manifest)` adds files made from the version itself (the report): it is
    called once the rows are in the unfinished folder, with a copy of the completed manifest
    (without the card), and returns the paths it wrote relative to the folder, such as
    ``report/funnel.png``. They are hashed into the manifest's `files` before the card is
    rendered — the card can show them — and the folder is renamed, so a version never changes
    after it appears. If a concurrent writer takes the version name first, it runs again.

    `data_files` maps names of `OPTIONAL_DATA_FILES` (preference.jsonl) to their rows: each is
    written and checked like train.jsonl, listed with its row count and counted as
    `counts[<stem>]`, before the hook runs (so the report could show it). A file given with no
    rows is still written: "the run made none" is a result, not an absence.
    """
    dataset_dir = Path(dataset_dir)
    check_dataset_name(dataset_dir.name)
    refuse_inside_version(dataset_dir, "dataset folder")
    # A JSON round trip copies the caller's dict and turns extras such as paths into strings,
    # so the secret check below sees exactly what will be written.
    base = json.loads(json.dumps(manifest, ensure_ascii=False, default=str))
    base["license"] = base.get("license") or DEFAULT_LICENSE
    # Refuse secrets before writing anything, so a bad config leaves no trace on disk.
    _refuse_secrets(base, "manifest")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(dataset_dir)
    tmp = dataset_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        train_info, task_ids = _write_rows(tmp, TRAIN_FILE, train_rows)
        if train_info["rows"] == 0:
            raise InputError(located(dataset_dir, "0 train rows: refusing to write an empty "
                                                  "version"))
        rejected_info, _ = _write_rows(tmp, REJECTED_FILE, rejected_rows)
        files = {TRAIN_FILE: train_info, REJECTED_FILE: rejected_info}
        counts = {
            "train": train_info["rows"],
            "rejected": rejected_info["rows"],
            "tasks": len(task_ids),
        }
        for name, rows in (data_files or {}).items():
            if name not in OPTIONAL_DATA_FILES:
                raise ValueError(f"data file {name!r}: not one of {sorted(OPTIONAL_DATA_FILES)}")
            files[name], _ = _write_rows(tmp, name, rows)
            counts[Path(name).stem] = files[name]["rows"]
        attempts = 0
        while True:
            version, parent = next_version(dataset_dir)
            completed = _complete_manifest(dataset_dir.name, version, parent, base, files, counts)
            if extra_files is not None:
                written = extra_files(tmp, json.loads(json.dumps(completed)))
                completed["files"].update(_describe_extra_files(tmp, written))
            _write_metadata(tmp, completed)
            target = dataset_dir / version
            try:
                _commit(tmp, target)
            except FileExistsError:
                # A concurrent writer took this name between listing and renaming: take the next.
                attempts += 1
                if attempts == _COMMIT_ATTEMPTS:
                    raise InputError(
                        located(
                            target,
                            "already exists; versions are immutable, refusing to overwrite it",
                        )
                    ) from None
                continue
            return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _complete_manifest(
    name: str,
    version: str,
    parent: str | None,
    base: dict,
    files: dict[str, dict],
    counts: dict[str, int],
) -> dict:
    """Identity fields first so a human reading manifest.json sees what it is at once."""
    identity = {
        "name": name,
        "version": version,
        "parent": parent,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "package_version": __version__,
    }
    rest = {key: value for key, value in base.items() if key not in identity}
    return {**identity, **rest, "files": dict(files), "counts": counts}


def _write_rows(
    folder: Path, filename: str, rows: Iterable[dict]
) -> tuple[dict[str, Any], set[str]]:
    """Stream rows to JSONL, hashing as we go; check each row against the file's schema.

    Returns the file's manifest entry and the distinct task ids (for train rows).
    """
    schema, strict = DATA_FILES.get(filename) or OPTIONAL_DATA_FILES[filename]

    def write(handle: IO[bytes]) -> tuple[dict[str, Any], set[str]]:
        digest = hashlib.sha256()
        size = count = 0
        task_ids: set[str] = set()
        last_touch = time.monotonic()
        for count, row in enumerate(rows, start=1):
            problems = list(check(row, schema, "", strict))
            if problems:
                field, message = problems[0]
                raise ValueError(located(f"{filename} row {count}", message, field=field or None))
            # allow_nan=False: NaN/Infinity are not JSON and would break other readers.
            data = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
            handle.write(data)
            digest.update(data)
            size += len(data)
            if filename == TRAIN_FILE:
                task_ids.add(row["task_id"])
            if time.monotonic() - last_touch > _TOUCH_EVERY_SECONDS:
                os.utime(folder)  # keep a slow write from looking like a crashed one
                last_touch = time.monotonic()
        return {"sha256": digest.hexdigest(), "bytes": size, "rows": count}, task_ids

    return atomic_write(folder / filename, write)


def _describe_extra_files(folder: Path, names: Iterable[str]) -> dict[str, dict]:
    """Manifest entries for files a hook wrote; each is synced so the rename makes it durable."""
    entries: dict[str, dict] = {}
    reserved = (*DATA_FILES, *OPTIONAL_DATA_FILES, CARD_FILE, *UNLISTED_FILES)
    for name in dict.fromkeys(names):  # the hook's order: the card shows files in it
        path = folder / name
        if (not is_member_name(name) or name in reserved or path.is_symlink()
                or not path.is_file()):
            raise ValueError(f"extra file {name!r}: not a new file inside the version folder")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        entries[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    for sub in {(folder / name).parent for name in entries}:
        fsync_dir(sub)
    return entries


def _write_metadata(folder: Path, manifest: dict) -> None:
    """Write the card, then the manifest that records the card's hash, then its digest."""
    card = render_card(manifest, TRAIN_SCHEMA).encode("utf-8")
    atomic_write(folder / CARD_FILE, card)
    manifest["files"][CARD_FILE] = {"sha256": hashlib.sha256(card).hexdigest(), "bytes": len(card)}
    text = json.dumps(manifest, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    atomic_write(folder / MANIFEST_FILE, text.encode("utf-8"))
    atomic_write(folder / SIGNATURE_FILE, signature_text(manifest))


def _commit(tmp: Path, target: Path) -> None:
    """Rename the finished folder into place, never over an existing version.

    rename(2) refuses a non-empty target (ENOTEMPTY/EEXIST); the explicit check also refuses an
    empty one, which rename would silently replace.
    """
    fsync_dir(tmp)
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "version already exists", str(target))
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "version already exists", str(target)) from exc
        raise
    fsync_dir(target.parent)


def _remove_stale_tmp(dataset_dir: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    for entry in dataset_dir.glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


def _refuse_secrets(value: Any, where: str) -> None:
    """Raise if any string in `value` looks like a credential (the project's one rule,
    `redact.find_secret`); the message names the field, never the value."""
    for field, text in _strings(value, ""):
        kind = find_secret(text)
        if kind:
            raise InputError(
                located(where, f"value looks like a secret ({kind}); refusing to store it",
                        field=field or None)
            )


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{field}[{index}]")
