"""Versioned, immutable dataset folders: write, resolve, validate, list, diff and load.

Layout: `data/<name>/<version>/` holds `train.jsonl`, `rejected.jsonl`, `manifest.json`, the
card `README.md` and, when the run made one, the report under `report/`. A version is never
modified once it exists, so a version name is a stable reference for training runs, releases and
Hub tags; every file in it, in sub-folders too, is listed with its hash in the manifest.

Version names are `v0001`, `v0002`, ...: zero-padded so they sort lexicographically (up to
`v9999`; beyond that the padding grows and listing still sorts numerically), monotonic (the next
name is the latest + 1, never reused). `latest` is not a folder or symlink but a name resolved
at read time, so there is nothing to keep in sync.

Atomicity: a version is written into `data/<name>/.tmp-<uuid>/`, every file and the folder are
fsynced, and the folder is renamed into place in one step. A crash leaves at most a `.tmp-*`
folder that listing and resolution ignore; the next write removes temporary folders older than
an hour (a live writer touches its folder regularly, so a slow write is never taken for a crash).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct import __version__
from selfinstruct._errors import InputError, located
from selfinstruct.card import render_card

if TYPE_CHECKING:
    import datasets

TRAIN_FILE = "train.jsonl"
REJECTED_FILE = "rejected.jsonl"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
# Written by release archives; an extracted release is a version folder plus this file.
SUMS_FILE = "SHA256SUMS"
LATEST = "latest"
DEFAULT_LICENSE = "apache-2.0"

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600
_TOUCH_EVERY_SECONDS = 60
_COMMIT_ATTEMPTS = 5
_MAX_PROBLEMS_PER_FILE = 20
_VERSION_RE = re.compile(r"v(\d{4,})")

# One schema description drives row validation, `load()`'s datasets.Features and the card's
# `dataset_info`, so the three cannot drift apart. Scalars are "string", "bool", "int64" and
# "float64"; a trailing "?" allows null, and also absence (a field added later is missing from
# older versions; it loads as null); a dict is a struct; a one-element list is a list.
TRAIN_SCHEMA: dict[str, Any] = {
    "id": "string",
    "task_id": "string",
    "instruction": "string",
    "input": "string",
    "output": "string",
    "is_classification": "bool?",
    "provenance": {
        "model": "string",
        "prompt_hash": "string",
        "instance_prompt_hash": "string?",
        "request_id": "string?",
        "round": "int64",
        "most_similar": [{"instruction": "string", "score": "float64"}],
        "avg_similarity": "float64?",
        # The LLM judge's 1-5 scores, when the run had a judge (selfinstruct.quality).
        "judge_clarity": "int64?",
        "judge_correctness": "int64?",
    },
}
REJECTED_SCHEMA: dict[str, Any] = {
    "stage": "string",
    "reason": "string",
    "instruction": "string",
    "input": "string?",
    "output": "string?",
    "detail": "string",
    "prompt_hash": "string?",
    "request_id": "string?",
}
# Train rows are loaded with fixed Features, so an unknown field would break loading: refuse it.
# Rejected rows are an audit trail read as plain JSON, so stages may add context fields.
_DATA_FILES: dict[str, tuple[dict[str, Any], bool]] = {
    TRAIN_FILE: (TRAIN_SCHEMA, True),
    REJECTED_FILE: (REJECTED_SCHEMA, False),
}

# Secrets must never reach a manifest or card. Patterns of common key formats, by provider.
_SECRET_PATTERNS = {
    "OpenAI-style key": re.compile(r"sk-[A-Za-z0-9_-]{16,}"),
    "Hugging Face token": re.compile(r"hf_[A-Za-z0-9]{20,}"),
    "GitHub token": re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{30,}"),
    "Slack token": re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),
    "bearer credential": re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{16,}"),
}


class InvalidDatasetError(InputError):
    """A version folder that fails validation: the CLI exits 1 (a failed check, not bad usage)."""

    exit_code = 1


@dataclass(frozen=True)
class VersionSummary:
    """One line of `versions`: enough to pick a version without opening its files."""

    name: str
    path: Path
    created_at: str | None
    parent: str | None
    train_rows: int | None
    rejected_rows: int | None


@dataclass(frozen=True)
class DatasetDiff:
    """Instructions (exact text) present in only one of two versions, in order of appearance."""

    a: Path
    b: Path
    a_rows: int
    b_rows: int
    a_instructions: int
    b_instructions: int
    added: list[str]
    removed: list[str]


# --------------------------------------------------------------------------- versions


def version_name(number: int) -> str:
    """`3` -> `v0003`."""
    return f"v{number:04d}"


def _version_number(name: str) -> int | None:
    match = _VERSION_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def list_versions(dataset_dir: str | Path) -> list[str]:
    """Version names in `dataset_dir`, oldest first; temporary and other folders are ignored."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return []
    found = [
        (number, entry.name)
        for entry in dataset_dir.iterdir()
        if entry.is_dir() and (number := _version_number(entry.name)) is not None
    ]
    return [name for _, name in sorted(found)]


def resolve_version(path: str | Path, version: str | None = None) -> Path:
    """Return the folder of one version.

    `path` may be a version folder, `<dataset>/latest`, `<dataset>/<version>` or a dataset folder;
    for a dataset folder `version` picks one (`latest` by default, or a name like `v0003`).
    Accepting `latest` as a last path component lets every CLI PATH argument say
    `data/<name>/latest` without a symlink that could go stale.
    """
    path = Path(path)
    if version is None:
        if (path / MANIFEST_FILE).is_file():
            return path
        if path.name == LATEST or _version_number(path.name) is not None:
            return resolve_version(path.parent, path.name)
        version = LATEST
    if not path.is_dir():
        raise InputError(located(path, "no such dataset folder"))
    names = list_versions(path)
    if version == LATEST:
        if not names:
            raise InputError(located(path, "no versions yet"))
        return path / names[-1]
    if version not in names:
        known = ", ".join(names) if names else "none"
        raise InputError(located(path, f"no version {version!r} (versions: {known})"))
    return path / version


def _next_version(dataset_dir: Path) -> tuple[str, str | None]:
    """The name for the next version and its parent (the current latest, or None)."""
    names = list_versions(dataset_dir)
    if not names:
        return version_name(1), None
    latest = names[-1]
    number = _version_number(latest)
    assert number is not None  # list_versions only returns version names
    return version_name(number + 1), latest


# --------------------------------------------------------------------------- writing


# Writes more files into an unfinished version folder; returns their folder-relative paths.
ExtraFiles = Callable[[Path, dict], Iterable[str]]


def write_version(
    dataset_dir: str | Path,
    train_rows: Iterable[dict],
    rejected_rows: Iterable[dict],
    manifest: dict,
    *,
    extra_files: ExtraFiles | None = None,
) -> Path:
    """Write a new immutable version of the dataset in `dataset_dir`; return its folder.

    The caller's manifest is completed with identity, provenance and integrity fields (name,
    version, parent, created_at, package_version, files, counts). Nothing appears under a version
    name unless every file was written and synced: on any error the temporary folder is removed.

    `extra_files(folder, manifest)` adds files made from the version itself (the report): it is
    called once the rows are in the unfinished folder, with a copy of the completed manifest
    (without the card), and returns the paths it wrote relative to the folder, such as
    ``report/funnel.png``. They are hashed into the manifest's `files` before the card is
    rendered — the card can show them — and the folder is renamed, so a version never changes
    after it appears. If a concurrent writer takes the version name first, it runs again.
    """
    dataset_dir = Path(dataset_dir)
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
        rejected_info, _ = _write_rows(tmp, REJECTED_FILE, rejected_rows)
        files = {TRAIN_FILE: train_info, REJECTED_FILE: rejected_info}
        counts = {
            "train": train_info["rows"],
            "rejected": rejected_info["rows"],
            "tasks": len(task_ids),
        }
        attempts = 0
        while True:
            version, parent = _next_version(dataset_dir)
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
    schema, strict = _DATA_FILES[filename]
    digest = hashlib.sha256()
    size = count = 0
    task_ids: set[str] = set()
    last_touch = time.monotonic()
    with open(folder / filename, "wb") as handle:
        for count, row in enumerate(rows, start=1):
            problems = list(_check(row, schema, "", strict))
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
        handle.flush()
        os.fsync(handle.fileno())
    return {"sha256": digest.hexdigest(), "bytes": size, "rows": count}, task_ids


def _describe_extra_files(folder: Path, names: Iterable[str]) -> dict[str, dict]:
    """Manifest entries for files a hook wrote; each is synced so the rename makes it durable."""
    entries: dict[str, dict] = {}
    for name in dict.fromkeys(names):  # the hook's order: the card shows files in it
        path = folder / name
        if not is_member_name(name) or name in (*_DATA_FILES, CARD_FILE, MANIFEST_FILE,
                                                 SUMS_FILE) or not path.is_file():
            raise ValueError(f"extra file {name!r}: not a new file inside the version folder")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        entries[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    for sub in {(folder / name).parent for name in entries}:
        _fsync_dir(sub)
    return entries


def is_member_name(name: str) -> bool:
    """A path inside a version folder: relative, "/"-separated, no "..", no hidden parts."""
    return "\\" not in name and all(
        part and not part.startswith(".") for part in name.split("/")
    )


def _write_metadata(folder: Path, manifest: dict) -> None:
    """Write the card, then the manifest that records the card's hash."""
    card = render_card(manifest, TRAIN_SCHEMA).encode("utf-8")
    _write_synced(folder / CARD_FILE, card)
    manifest["files"][CARD_FILE] = {"sha256": hashlib.sha256(card).hexdigest(), "bytes": len(card)}
    text = json.dumps(manifest, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    _write_synced(folder / MANIFEST_FILE, text.encode("utf-8"))


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, target: Path) -> None:
    """Rename the finished folder into place, never over an existing version.

    rename(2) refuses a non-empty target (ENOTEMPTY/EEXIST); the explicit check also refuses an
    empty one, which rename would silently replace.
    """
    _fsync_dir(tmp)
    if target.exists():
        raise FileExistsError(errno.EEXIST, "version already exists", str(target))
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "version already exists", str(target)) from exc
        raise
    _fsync_dir(target.parent)


def _remove_stale_tmp(dataset_dir: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    for entry in dataset_dir.glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


def _refuse_secrets(value: Any, where: str) -> None:
    """Raise if any string in `value` looks like a credential; the message never repeats it."""
    for field, text in _strings(value, ""):
        for kind, pattern in _SECRET_PATTERNS.items():
            if pattern.search(text):
                raise InputError(
                    located(
                        where,
                        f"value looks like a secret ({kind}); refusing to store it",
                        field=field or None,
                    )
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


# --------------------------------------------------------------------------- schema


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_SCALARS = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float64": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _check(value: Any, spec: Any, field: str, strict: bool) -> Iterator[tuple[str, str]]:
    """Yield (field path, problem) for every way `value` departs from `spec`."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            yield field, f"expected an object, got {_json_kind(value)}"
            return
        for name, sub in spec.items():
            path = f"{field}.{name}" if field else name
            if name not in value:
                if not (isinstance(sub, str) and sub.endswith("?")):
                    yield path, "missing"
            else:
                yield from _check(value[name], sub, path, strict)
        if strict:
            for name in sorted(set(value) - set(spec)):
                yield (f"{field}.{name}" if field else name), "unexpected field"
    elif isinstance(spec, list):
        if not isinstance(value, list):
            yield field, f"expected an array, got {_json_kind(value)}"
            return
        for index, item in enumerate(value):
            yield from _check(item, spec[0], f"{field}[{index}]", strict)
    else:
        kind = spec.rstrip("?")
        if value is None:
            if not spec.endswith("?"):
                yield field, "must not be null"
        elif not _SCALARS[kind](value):
            yield field, f"expected {kind}, got {_json_kind(value)}"


def _features(spec: Any) -> Any:
    import datasets

    if isinstance(spec, dict):
        return {name: _features(sub) for name, sub in spec.items()}
    if isinstance(spec, list):
        return [_features(spec[0])]
    return datasets.Value(spec.rstrip("?"))


def train_features() -> datasets.Features:
    """Fixed Features for train rows: nulls never change a column's type between versions."""
    import datasets

    return datasets.Features(_features(TRAIN_SCHEMA))


# --------------------------------------------------------------------------- reading


def read_manifest(version_path: str | Path) -> dict:
    path = Path(version_path) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(located(path, "missing: not a dataset version folder")) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(located(path, f"not valid JSON ({exc})")) from None
    if not isinstance(manifest, dict):
        raise InputError(located(path, "expected a JSON object"))
    return manifest


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(raw: bytes) -> dict:
    row = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {_json_kind(row)}")
    return row


def iter_rows(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file; a bad line raises InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(located(path, "missing"))
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield _parse_line(raw)
            except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
                raise InputError(located(path, str(exc), line=number)) from None


def read_train_rows(path: str | Path) -> list[dict]:
    """All train rows of a version (`path` as accepted by `resolve_version`)."""
    return list(iter_rows(resolve_version(path) / TRAIN_FILE))


# --------------------------------------------------------------------------- validation


def validate(path: str | Path) -> list[str]:
    """Every problem found in a version folder, each one line naming file, line and field.

    Re-checks what the manifest promises: each file's sha256, size and row count, JSON on every
    line, the row schemas, the counts, and that nothing was added to the folder afterwards.
    """
    folder = resolve_version(path)
    try:
        manifest = read_manifest(folder)
    except InputError as exc:
        return [str(exc)]
    manifest_path = folder / MANIFEST_FILE
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [located(manifest_path, "missing or not an object", field="files")]
    problems: list[str] = []
    problems += [
        located(manifest_path, f"{name} is required", field="files")
        for name in (*_DATA_FILES, CARD_FILE)
        if name not in files
    ]
    task_ids: set[str] = set()
    for name, expected in files.items():
        if not is_member_name(name) or name == MANIFEST_FILE:
            # Only files inside the folder: a manifest must not point outside it.
            problems.append(located(manifest_path, f"bad file name {name!r}", field="files"))
        elif not isinstance(expected, dict):
            problems.append(located(manifest_path, "expected an object", field=f"files.{name}"))
        else:
            problems += _check_file(folder / name, expected, task_ids, _DATA_FILES.get(name))
    problems += _check_counts(manifest, manifest_path, files, task_ids)
    version = manifest.get("version")
    if _version_number(folder.name) is not None and version != folder.name:
        problems.append(
            located(
                manifest_path,
                f"says {version!r} but the folder is {folder.name!r}",
                field="version",
            )
        )
    if (folder / SUMS_FILE).is_file():
        problems += _check_sums(folder / SUMS_FILE)
    listed = {*files, MANIFEST_FILE, SUMS_FILE}
    problems += [
        located(entry, "not listed in manifest.json (version folders are immutable)")
        for entry in sorted(folder.rglob("*"))
        if not entry.is_dir() and entry.relative_to(folder).as_posix() not in listed
    ]
    return problems


def _check_file(
    path: Path, expected: dict, task_ids: set[str], data_file: tuple[dict, bool] | None
) -> list[str]:
    if not path.is_file():
        return [located(path, "missing")]
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
            found = _check_line(raw, schema, strict, seen_ids, task_ids)
            for field, message in found:
                line_problems += 1
                if line_problems <= _MAX_PROBLEMS_PER_FILE:
                    problems.append(located(path, message, line=rows, field=field or None))
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_sums(path: Path) -> list[str]:
    """Check a `sha256sum`-format file listing sibling files."""
    problems = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        digest, _, name = line.partition("  ")
        target = path.parent / name
        if not is_member_name(name) or not target.is_file():
            problems.append(located(path, f"lists a missing file {name!r}", line=number))
        elif sha256_file(target) != digest:
            problems.append(located(path, f"sha256 of {name} does not match", line=number))
    return problems


def _check_line(
    raw: bytes, schema: dict, strict: bool, seen_ids: set[str], task_ids: set[str]
) -> list[tuple[str, str]]:
    if not raw.endswith(b"\n"):
        return [("", "last line has no newline (file truncated?)")]
    try:
        row = _parse_line(raw)
    except ValueError as exc:
        return [("", f"invalid JSON line ({exc})")]
    found = list(_check(row, schema, "", strict))
    if schema is TRAIN_SCHEMA and not found:
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


# --------------------------------------------------------------------------- listing, diff, load


def versions(dataset_dir: str | Path) -> list[VersionSummary]:
    """Versions with creation time and row counts, oldest first (from each manifest)."""
    dataset_dir = Path(dataset_dir)
    summaries = []
    for name in list_versions(dataset_dir):
        try:
            manifest = read_manifest(dataset_dir / name)
        except InputError:
            manifest = {}
        counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
        summaries.append(
            VersionSummary(
                name=name,
                path=dataset_dir / name,
                created_at=manifest.get("created_at"),
                parent=manifest.get("parent"),
                train_rows=counts.get("train"),
                rejected_rows=counts.get("rejected"),
            )
        )
    return summaries


def diff(a: str | Path, b: str | Path) -> DatasetDiff:
    """Compare two versions by exact instruction text (several instance rows share one)."""
    a_dir, b_dir = resolve_version(a), resolve_version(b)
    a_rows, b_rows = read_train_rows(a_dir), read_train_rows(b_dir)
    a_set = dict.fromkeys(row["instruction"] for row in a_rows)
    b_set = dict.fromkeys(row["instruction"] for row in b_rows)
    return DatasetDiff(
        a=a_dir,
        b=b_dir,
        a_rows=len(a_rows),
        b_rows=len(b_rows),
        a_instructions=len(a_set),
        b_instructions=len(b_set),
        added=[text for text in b_set if text not in a_set],
        removed=[text for text in a_set if text not in b_set],
    )


def load(path: str | Path, cache_dir: str | Path | None = None) -> datasets.Dataset:
    """The train split of a version as a `datasets.Dataset` with the fixed train Features."""
    import datasets

    folder = resolve_version(path)
    return datasets.load_dataset(
        "json",
        data_files=str(folder / TRAIN_FILE),
        split="train",
        features=train_features(),
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
