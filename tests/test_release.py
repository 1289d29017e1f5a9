"""Release artifacts: deterministic .tar.gz with SHA256SUMS, refused for invalid versions."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from selfinstruct.dataset import (
    SIGNATURE_FILE,
    TRAIN_FILE,
    InvalidDatasetError,
    read_manifest,
    validate,
)
from selfinstruct.release import build_release
from tests.dataset_samples import empty_version, folder_hashes, run_cli, write_sample


def test_release_is_deterministic(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo", ja=True)
    first = build_release(folder, tmp_path / "a")
    # Different file times and a different output folder must not change a single byte.
    for path in folder.iterdir():
        os.utime(path, (1, 1))
    second = build_release(tmp_path / "demo" / "latest", tmp_path / "b")
    assert first.name == second.name == "demo-v0001.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    with gzip.open(first) as stream:
        assert stream.read()  # a valid gzip stream


def test_release_contents_and_checksums(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo")
    created = datetime.fromisoformat(read_manifest(folder)["created_at"]).timestamp()
    artifact = build_release(folder, tmp_path / "dist")

    with tarfile.open(artifact) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [
            "demo-v0001",
            "demo-v0001/README.md",
            "demo-v0001/SHA256SUMS",
            "demo-v0001/manifest.json",
            "demo-v0001/manifest.sha256",
            "demo-v0001/rejected.jsonl",
            "demo-v0001/train.jsonl",
        ]
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {
            (0, 0, "", "", int(created))
        }
        sums = tar.extractfile("demo-v0001/SHA256SUMS").read().decode()
        tar.extractall(tmp_path / "x", filter="data")

    extracted = tmp_path / "x" / "demo-v0001"
    for line in sums.splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((extracted / name).read_bytes()).hexdigest() == digest
    assert sorted(line.split("  ")[1] for line in sums.splitlines()) == sorted(
        p.name for p in folder.iterdir()
    )
    assert validate(extracted) == []  # an extracted release is a valid version folder


def test_an_invalid_version_is_not_released(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    data = bytearray((folder / TRAIN_FILE).read_bytes())
    data[10] ^= 1
    (folder / TRAIN_FILE).write_bytes(bytes(data))
    with pytest.raises(InvalidDatasetError, match=r"train\.jsonl"):
        build_release(folder, tmp_path / "dist")
    assert run_cli(["release", str(folder), "--output-dir", str(tmp_path / "dist")]) == 1
    assert "train.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "dist").exists() or list((tmp_path / "dist").iterdir()) == []


def test_cli_release(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_sample(tmp_path / "demo")
    dist = tmp_path / "dist"
    assert run_cli(["release", str(tmp_path / "demo" / "latest"), "--output-dir", str(dist)]) == 0
    artifact = dist / "demo-v0001.tar.gz"
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert capsys.readouterr().out.strip() == f"release: {artifact} (sha256 {digest})"
    assert run_cli(["release", str(tmp_path / "demo"), "--private"]) == 2
    assert "--private only applies with --push-to-hub" in capsys.readouterr().err


def test_release_into_the_version_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    before = folder_hashes(folder)
    assert run_cli(["release", str(folder), "--output-dir", str(folder)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"selfinstruct: error: --output-dir {folder}: inside the version folder {folder}; "
        "versions are immutable, choose another location"
    ]
    assert folder_hashes(folder) == before and validate(folder) == []


def test_an_empty_version_is_not_released(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = empty_version(tmp_path / "demo")
    assert validate(folder) == []  # valid, just empty
    dist = tmp_path / "dist"
    argv = ["release", str(folder), "--output-dir", str(dist), "--push-to-hub", "org/name"]
    assert run_cli(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"selfinstruct: error: {folder}: 0 train rows: refusing to release an empty version"
    ]
    assert not dist.exists()


def test_the_manifest_digest_is_in_the_release_checksums(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo")
    artifact = build_release(folder, tmp_path / "dist")
    with tarfile.open(artifact) as tar:
        sums = tar.extractfile("demo-v0001/SHA256SUMS").read().decode()
    digest = hashlib.sha256((folder / SIGNATURE_FILE).read_bytes()).hexdigest()
    assert f"{digest}  {SIGNATURE_FILE}\n" in sums


def test_an_unwritable_output_dir_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = write_sample(tmp_path / "demo")
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "dist"  # a parent that is a file
    assert run_cli(["release", str(folder), "--output-dir", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"selfinstruct: error: --output-dir {bad}: cannot write the release: "
                   "Not a directory"]
