"""Release artifacts: one reproducible `<name>-<version>.tar.gz` per dataset version.

The archive holds `<name>-<version>/` with the version's files (the report's sub-folder too)
and a `SHA256SUMS` file
(`sha256sum -c SHA256SUMS` works inside the extracted folder), which covers `manifest.sha256`,
the digest of the manifest, too. It is byte-for-byte
deterministic: members sorted by name, owner 0/0 with empty user and group names, fixed modes,
every mtime (and the gzip header's) set to the manifest's `created_at`, no file name in the gzip
header. Rebuilding a release therefore proves it was made from the same version, and a
checksum published once stays valid.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from datetime import datetime
from pathlib import Path
from typing import IO

from selfinstruct._errors import InputError, located
from selfinstruct.dataset import (
    MANIFEST_FILE,
    SUMS_FILE,
    refuse_inside_version,
    require_releasable,
    sha256_file,
)
from selfinstruct.fileio import atomic_write


def _member(
    name: str, size: int, mtime: int, mode: int, kind: bytes = tarfile.REGTYPE
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = mode
    info.type = kind
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_release(version_path: str | Path, output_dir: str | Path) -> Path:
    """Validate a version and write its deterministic archive into `output_dir`; return the path.

    Refused: an invalid or empty version, and an `output_dir` inside a version folder.
    """
    folder, manifest = require_releasable(version_path, "release")
    refuse_inside_version(output_dir, "--output-dir")
    try:
        mtime = int(datetime.fromisoformat(manifest["created_at"]).timestamp())
    except (KeyError, TypeError, ValueError):
        raise InputError(
            located(folder / MANIFEST_FILE, "missing or not ISO 8601", field="created_at")
        ) from None
    prefix = f"{manifest['name']}-{manifest['version']}"
    # Relative "/" paths: `report/funnel.png` sorts and checks like a top-level file.
    files = sorted(
        (entry.relative_to(folder).as_posix(), entry)
        for entry in folder.rglob("*")
        if entry.is_file() and entry.relative_to(folder).as_posix() != SUMS_FILE
    )
    sums = "".join(f"{sha256_file(entry)}  {name}\n" for name, entry in files).encode("utf-8")
    members: list[tuple[str, Path | None]] = list(files)
    members = sorted([*members, (SUMS_FILE, None)], key=lambda member: member[0])

    output_dir = Path(output_dir)
    target = output_dir / f"{prefix}.tar.gz"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_archive(target, prefix, mtime, members, sums)
    except OSError as exc:
        raise InputError(
            f"--output-dir {output_dir}: cannot write the release: {exc.strerror or exc}"
        ) from None
    return target


def _write_archive(
    target: Path, prefix: str, mtime: int, members: list[tuple[str, Path | None]], sums: bytes
) -> None:
    """Write the archive with `atomic_write`, so a failure leaves no partial file."""

    def write(raw: IO[bytes]) -> None:
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.addfile(_member(prefix, 0, mtime, 0o755, tarfile.DIRTYPE))
            for name, entry in members:
                if entry is None:
                    tar.addfile(
                        _member(f"{prefix}/{name}", len(sums), mtime, 0o644), io.BytesIO(sums)
                    )
                    continue
                with open(entry, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    tar.addfile(_member(f"{prefix}/{name}", size, mtime, 0o644), handle)

    atomic_write(target, write)
