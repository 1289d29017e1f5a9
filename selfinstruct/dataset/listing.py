"""Reading across versions: the `versions` listing, `diff` and `load` into `datasets`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct._errors import InputError
from selfinstruct.dataset.files import read_manifest, read_train_rows
from selfinstruct.dataset.layout import TRAIN_FILE
from selfinstruct.dataset.naming import list_versions, resolve_version
from selfinstruct.dataset.schema import train_features

if TYPE_CHECKING:
    import datasets


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


def versions(dataset_dir: str | Path) -> list[VersionSummary]:
    """Versions with creation time and row counts, oldest first (from each manifest)."""
    dataset_dir = Path(dataset_dir)
    summaries = []
    for name in list_versions(dataset_dir):
        try:
            manifest = read_manifest(dataset_dir / name)
        except InputError:
            manifest = {}
        stored = manifest.get("counts")
        counts: dict[str, Any] = stored if isinstance(stored, dict) else {}
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


def find_run_version(dataset_dir: str | Path, run_id: str) -> Path | None:
    """The version a run already wrote, if any (newest first; unreadable manifests skipped).

    Lets a resumed run find the version it wrote before a crash instead of writing a second
    one, without failing on a damaged manifest of some other version.
    """
    dataset_dir = Path(dataset_dir)
    for name in reversed(list_versions(dataset_dir)):
        try:
            if read_manifest(dataset_dir / name).get("run_id") == run_id:
                return dataset_dir / name
        except InputError:
            continue
    return None


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
