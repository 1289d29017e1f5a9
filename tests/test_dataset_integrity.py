"""Versions stay immutable and tamper-evident (issue 12 items 12, 14-16; issue 11 item 5).

Each test reproduces an attack or accident from the adversarial review: a stray folder with a
version name, edits of manifest fields, added folders and symlinks, NaN in the manifest, names
with a trailing newline, output paths inside a version, an empty version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.dataset import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    TRAIN_FILE,
    check_dataset_name,
    check_version,
    find_run_version,
    list_versions,
    read_manifest,
    refuse_inside_version,
    resolve_version,
    validate,
    write_version,
)
from selfinstruct.dataset.naming import version_number
from tests.dataset_samples import (
    manifest,
    rejected_row,
    rewrite_manifest,
    run_cli,
    train_row,
    write_sample,
)

# --------------------------------------------------------------------------- item 14


@pytest.mark.parametrize("stray", ["empty", "report"])
def test_a_folder_without_a_manifest_is_not_a_version(tmp_path: Path, stray: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    dataset_dir = tmp_path / "data" / "x"
    first = write_sample(dataset_dir)
    lookalike = dataset_dir / "v0002"
    lookalike.mkdir()  # `mkdir data/x/v0002`, or a report written there before it was refused
    if stray == "report":
        (lookalike / "report.html").write_text("<html></html>")

    assert list_versions(dataset_dir) == ["v0001"]
    assert resolve_version(dataset_dir / "latest") == first
    assert run_cli(["validate", str(dataset_dir / "latest")]) == 0
    assert capsys.readouterr().out.startswith(f"{first}: ok")
    # The next write neither fails nor reuses the stray name: its number is taken.
    second = write_sample(dataset_dir)
    assert second.name == "v0003"
    assert read_manifest(second)["parent"] == "v0001"
    assert resolve_version(dataset_dir / "latest") == second
    with pytest.raises(InputError, match=r"a folder without manifest\.json is not a version"):
        resolve_version(dataset_dir / "v0002")


def test_version_names_and_dataset_names_match_in_full(tmp_path: Path) -> None:
    assert version_number("v0001") == 1
    assert version_number("v0001\n") is None and version_number("v0001x") is None
    for bad in ("foo\n", "foo\nbar", "", ".hidden", "a/b", "x" * 101):
        with pytest.raises(InputError, match="dataset name"):
            check_dataset_name(bad)
    assert check_dataset_name("ja_general-2.1") == "ja_general-2.1"
    with pytest.raises(InputError, match="dataset name 'foo\\\\n'"):
        write_sample(tmp_path / "foo\n")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- item 12


def test_nothing_may_be_written_inside_a_version(tmp_path: Path) -> None:
    dataset_dir = tmp_path / "data" / "x"
    version = write_sample(dataset_dir)
    inside = [
        version / TRAIN_FILE,  # export --output V/train.jsonl
        version,  # release --output-dir V
        version / "sub" / "deeper",  # a folder that does not exist yet
        dataset_dir / "v0001" / "v0001",  # generate --data-dir data/x --dataset v0001
    ]
    for path in inside:
        with pytest.raises(InputError, match=f"inside the version folder {version}; versions "
                                             "are immutable, choose another location"):
            refuse_inside_version(path, "--output")
    # report --output data/x/v0002: not inside a version, but it would pass for one.
    with pytest.raises(InputError) as caught:
        refuse_inside_version(dataset_dir / "v0002" / "report.html", "--output")
    assert str(caught.value) == (
        f"--output {dataset_dir / 'v0002' / 'report.html'}: v0002 in {dataset_dir} is a "
        "version name: a folder there would pass for a version, choose another location"
    )
    link = tmp_path / "link"
    link.symlink_to(version)
    with pytest.raises(InputError, match=r"--output .*link/out\.jsonl: inside the version"):
        refuse_inside_version(link / "out.jsonl", "--output")
    copy = tmp_path / "unpacked" / "x-v0001"  # an extracted release: a version by content
    shutil.copytree(version, copy)
    with pytest.raises(InputError, match="inside the version folder"):
        refuse_inside_version(copy / "alpaca.jsonl")

    # Beside the versions is fine: exports, the default report folder, a new dataset.
    for path in (dataset_dir / "alpaca.jsonl", dataset_dir / "reports" / "v0001",
                 tmp_path / "data" / "y", tmp_path / "elsewhere" / "v0001"):
        refuse_inside_version(path)
    assert not (dataset_dir / "reports").exists()  # checking writes nothing


def test_a_dataset_folder_inside_a_version_is_refused(tmp_path: Path) -> None:
    version = write_sample(tmp_path / "x")
    before = sorted(p.name for p in version.iterdir())
    with pytest.raises(InputError, match=r"dataset folder .*inside the version folder"):
        write_sample(version / "v0001")
    assert sorted(p.name for p in version.iterdir()) == before


# --------------------------------------------------------------------------- item 15


_FIELD_EDITS = {
    "model": lambda m: m.update(model="gpt-4o"),
    "config": lambda m: m["config"].update(num_instructions=11),
    "funnel": lambda m: m["funnel"]["bootstrap"].update(kept=6),
    "license": lambda m: m.update(license="mit"),
    "demo flag": lambda m: m.update(demo_quality=True),
    "parent": lambda m: m.update(parent="v0000"),
    "run id": lambda m: m.update(run_id="run-2"),
    "seed hash": lambda m: m["seeds"].update(sha256="e" * 64),
    "prompt hash": lambda m: m["prompts"].update(bootstrap="f" * 64),
    "new field": lambda m: m.update(reviewed=True),
}


@pytest.mark.parametrize("edit", sorted(_FIELD_EDITS))
def test_an_edit_of_any_manifest_field_is_detected(tmp_path: Path, edit: str) -> None:
    folder = write_sample(tmp_path / "demo")
    assert validate(folder) == []
    rewrite_manifest(folder, _FIELD_EDITS[edit], sign=False)
    assert validate(folder) == [
        f"{folder / MANIFEST_FILE}: does not match manifest.sha256 (the manifest was edited)"
    ]


def test_reformatting_the_manifest_is_not_an_edit(tmp_path: Path) -> None:
    """The digest covers the content (canonical JSON), not indentation or key order."""
    folder = write_sample(tmp_path / "demo", ja=True)
    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    (folder / MANIFEST_FILE).write_text(json.dumps(dict(reversed(data.items()))))
    assert validate(folder) == []


def _with_report(folder: Path, manifest_: dict) -> list[str]:
    (folder / "report").mkdir()
    (folder / "report" / "funnel.png").write_bytes(b"png")
    return ["report/funnel.png"]


def test_removing_the_report_with_its_manifest_entries_is_detected(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "demo", [train_row(0)], [rejected_row(0)], manifest(),
                           extra_files=_with_report)
    assert validate(folder) == []
    shutil.rmtree(folder / "report")
    rewrite_manifest(folder, lambda m: m["files"].pop("report/funnel.png"), sign=False)
    assert validate(folder) == [
        f"{folder / MANIFEST_FILE}: does not match manifest.sha256 (the manifest was edited)"
    ]


def test_every_path_in_the_folder_is_accounted_for(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "demo", [train_row(0)], [rejected_row(0)], manifest(),
                           extra_files=_with_report)
    (folder / "empty").mkdir()
    (folder / "report" / "more").mkdir()
    (folder / "link.jsonl").symlink_to(folder / TRAIN_FILE)
    (folder / "outside").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe")  # reading it would hang validate: must only be named
    assert sorted(validate(folder)) == sorted([
        f"{folder / 'empty'}: folder not listed in manifest.json (version folders are immutable)",
        f"{folder / 'report' / 'more'}: folder not listed in manifest.json (version folders are "
        "immutable)",
        f"{folder / 'link.jsonl'}: is a symbolic link; a version holds only its own files and "
        "folders",
        f"{folder / 'outside'}: is a symbolic link; a version holds only its own files and "
        "folders",
        f"{folder / 'pipe'}: not listed in manifest.json (version folders are immutable)",
    ])


def test_listed_files_and_folders_must_be_real(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "demo", [train_row(0)], [rejected_row(0)], manifest(),
                           extra_files=_with_report)
    # Same bytes, but through links that could later point anywhere.
    moved = tmp_path / "moved"
    (folder / "report").rename(moved)
    (folder / "report").symlink_to(moved)
    (folder / TRAIN_FILE).rename(tmp_path / TRAIN_FILE)
    (folder / TRAIN_FILE).symlink_to(tmp_path / TRAIN_FILE)
    problems = validate(folder)
    assert f"{folder / 'report'}: is a symbolic link; a version holds only its own files and " \
           "folders" in problems
    assert f"{folder / TRAIN_FILE}: is a symbolic link; a version holds only its own files" in (
        problems
    )


def test_nan_in_the_manifest_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    text = (folder / MANIFEST_FILE).read_text()
    (folder / MANIFEST_FILE).write_text(text.replace('"kept": 5', '"kept": NaN'))
    assert validate(folder) == [
        f"{folder / MANIFEST_FILE}: not valid JSON (NaN is not valid JSON)"
    ]
    assert run_cli(["validate", str(tmp_path / "demo" / "latest")]) == 1
    assert "NaN is not valid JSON" in capsys.readouterr().err


def test_a_version_without_a_digest_validates_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = write_sample(tmp_path / "demo")
    (folder / SIGNATURE_FILE).unlink()  # as written before manifests were signed
    result = check_version(folder)
    assert result.problems == []
    assert result.warnings == [
        f"{folder / SIGNATURE_FILE}: missing: this version predates manifest signing, so edits "
        "of manifest.json fields other than files and counts go undetected"
    ]
    assert run_cli(["validate", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"selfinstruct: warning: {result.warnings[0]}"]
    assert captured.out.startswith(f"{folder}: ok")


def test_a_damaged_digest_file_is_a_problem(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo")
    (folder / SIGNATURE_FILE).write_text("not a digest\n")
    assert validate(folder) == [
        f"{folder / SIGNATURE_FILE}: expected one line with a 64-digit hex sha256"
    ]


# --------------------------------------------------------------------------- issue 11 item 5


def test_an_empty_version_is_never_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="0 train rows: refusing to write an empty version"):
        write_version(tmp_path / "demo", [], [rejected_row(0)], manifest())
    assert list((tmp_path / "demo").iterdir()) == []  # not even a temporary folder


def test_a_run_finds_its_version_past_a_damaged_manifest(tmp_path: Path) -> None:
    """A resumed run looks for the version it wrote before a crash; another version's damaged
    manifest must not make that lookup (and the paid run) fail."""
    mine = write_sample(tmp_path / "demo", run_id="run-a")
    other = write_sample(tmp_path / "demo", run_id="run-b")
    (other / MANIFEST_FILE).write_text('{"run_id": NaN}')
    assert find_run_version(tmp_path / "demo", "run-a") == mine
    assert find_run_version(tmp_path / "demo", "run-c") is None


# --------------------------------------------------------------------------- end to end


def test_generate_after_a_stray_version_folder_writes_the_next_version(
    openai_server, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The review's sequence: a version, `mkdir data/x/v0002`, then a paid run must still
    write its version (v0003) and `latest` must be it."""
    from selfinstruct.cli import main

    def generate(seed: str) -> Path:
        argv = ["generate", "--data-dir", str(tmp_path / "data"), "--dataset", "x",
                "--base-url", openai_server.base_url, "--model", "test-model",
                "--api-key", "sk-test", "--no-progress", "--seeds", "seeds/en_general.jsonl",
                "--num-instructions", "5", "--seed", seed]
        assert main(argv) == 0, capsys.readouterr().err
        return Path(capsys.readouterr().out.strip().splitlines()[-1])

    assert generate("1").name == "v0001"
    (tmp_path / "data" / "x" / "v0002").mkdir()
    second = generate("2")
    assert second == tmp_path / "data" / "x" / "v0003"
    assert read_manifest(second)["parent"] == "v0001"
    assert resolve_version(tmp_path / "data" / "x" / "latest") == second
    assert validate(second) == []
