"""Which folders are versions, what `latest` means, the next name, and where nothing may go.

Version names are `v0001`, `v0002`, ...: zero-padded so they sort lexicographically (up to
`v9999`; beyond that the padding grows and listing still sorts numerically). A folder is a
version only if it has a version name AND a `manifest.json`: `mkdir data/x/v0002` or a report
written to `data/x/v0002` must not become `latest` (and break every command that reads it).
The next number is one past every version-like name in the folder, versions or not, so a new
version never reuses a name a stray folder already holds.

`latest` is not a folder or symlink but a name resolved at read time, so there is nothing to
keep in sync. Every pattern here is matched with `fullmatch`: `re.match(r"...$")` accepts a
trailing newline (`$` matches before it), and `"foo\\n"` is not a name.
"""

from __future__ import annotations

import re
from pathlib import Path

from selfinstruct._errors import InputError, located
from selfinstruct.dataset.layout import LATEST, MANIFEST_FILE, TRAIN_FILE

VERSION_RE = re.compile(r"v(\d{4,})")
# A dataset name is one path component that is safe in a Hub repo name and a shell.
DATASET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def version_name(number: int) -> str:
    """`3` -> `v0003`."""
    return f"v{number:04d}"


def version_number(name: str) -> int | None:
    """`v0003` -> 3; None for anything that is not exactly a version name."""
    match = VERSION_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def check_dataset_name(name: str) -> str:
    """Return `name` if it is a valid dataset name, else raise InputError saying why."""
    if not DATASET_NAME_RE.fullmatch(name):
        raise InputError(
            f"dataset name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    return name


def is_version(folder: Path) -> bool:
    """A real folder (not a symlink) with a version name and a manifest: a written version."""
    return (
        version_number(folder.name) is not None
        and folder.is_dir()
        and not folder.is_symlink()
        and (folder / MANIFEST_FILE).is_file()
    )


def list_versions(dataset_dir: str | Path) -> list[str]:
    """Version names in `dataset_dir`, oldest first; other folders are ignored."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return []
    found = [
        (version_number(entry.name), entry.name)
        for entry in dataset_dir.iterdir()
        if is_version(entry)
    ]
    return [name for _, name in sorted(found)]


def next_version(dataset_dir: Path) -> tuple[str, str | None]:
    """The name for the next version and its parent (the latest version, or None).

    The number follows every version-like name present, versions or stray folders alike, so
    the new folder can never collide with (or be confused with) one that is already there.
    """
    taken = [
        number
        for entry in (dataset_dir.iterdir() if dataset_dir.is_dir() else ())
        if (number := version_number(entry.name)) is not None
    ]
    names = list_versions(dataset_dir)
    return version_name(max(taken, default=0) + 1), (names[-1] if names else None)


def resolve_version(path: str | Path, version: str | None = None) -> Path:
    """Return the folder of one version.

    `path` may be a version folder, `<dataset>/latest`, `<dataset>/<version>` or a dataset folder;
    for a dataset folder `version` picks one (`latest` by default, or a name like `v0003`).
    Accepting `latest` as a last path component lets every CLI PATH argument say
    `data/<name>/latest` without a symlink that could go stale. A folder holding a manifest is
    taken as it is (an extracted release, a copied version), so `validate` can report on it.
    """
    path = Path(path)
    if version is None:
        if (path / MANIFEST_FILE).is_file():
            return path
        if path.name == LATEST or version_number(path.name) is not None:
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
        hint = " (a folder without manifest.json is not a version)" if (
            path / version
        ).is_dir() else ""
        raise InputError(located(path, f"no version {version!r} (versions: {known}){hint}"))
    return path / version


def _protected(folder: Path) -> str | None:
    """Why nothing may be written into `folder`, or None: it is a version, a copy of one, or a
    name that would pass for a version of the dataset folder it sits in."""
    if is_version(folder) or ((folder / MANIFEST_FILE).is_file()
                              and (folder / TRAIN_FILE).is_file()):  # e.g. an extracted release
        return f"inside the version folder {folder}; versions are immutable"
    if version_number(folder.name) is not None and list_versions(folder.parent):
        return (f"{folder.name} in {folder.parent} is a version name: a folder there would pass "
                "for a version")
    return None


def refuse_inside_version(path: str | Path, what: str = "output") -> None:
    """Raise InputError if writing `path` (a file or folder) would write inside a version.

    Versions are immutable: `export V --output V/train.jsonl`, `release V --output-dir V`,
    `generate --data-dir data/x --dataset v0001` and `report --output data/x/v0002` are all
    refused. Symlinks are resolved first, so a link into a version is caught too. `what` names
    the flag in the message, e.g. "--output".
    """
    target = Path(path)
    resolved = target.resolve()
    for folder in (resolved, *resolved.parents):
        reason = _protected(folder)
        if reason:
            raise InputError(f"{what} {target}: {reason}, choose another location")
