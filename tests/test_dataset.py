"""Versioned dataset folders: atomic writes, immutability, resolution, validation, diff, load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from selfinstruct import dataset
from selfinstruct._errors import InputError
from selfinstruct.card import size_category
from selfinstruct.dataset import (
    CARD_FILE,
    MANIFEST_FILE,
    REJECTED_FILE,
    SIGNATURE_FILE,
    TRAIN_FILE,
    diff,
    list_versions,
    read_manifest,
    resolve_version,
    store,
    validate,
    versions,
    write_version,
)
from tests.dataset_samples import (
    TRICKY_SCORE,
    folder_hashes,
    manifest,
    rejected_row,
    run_cli,
    train_row,
    write_sample,
)

ROOT = Path(__file__).resolve().parent.parent


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_write_creates_a_complete_version(tmp_path: Path) -> None:
    rows = [train_row(n) for n in range(6)]
    given = manifest(extra_field=1, seeds_dir=tmp_path)
    folder = write_version(tmp_path / "demo", rows, [rejected_row(0)], given)

    assert folder == tmp_path / "demo" / "v0001"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CARD_FILE, MANIFEST_FILE, REJECTED_FILE, SIGNATURE_FILE, TRAIN_FILE]
    )
    stored = [json.loads(line) for line in (folder / TRAIN_FILE).read_text().splitlines()]
    assert stored == rows
    assert repr(TRICKY_SCORE) in (folder / TRAIN_FILE).read_text()  # floats not rounded
    m = read_manifest(folder)
    assert (m["name"], m["version"], m["parent"]) == ("demo", "v0001", None)
    assert datetime.fromisoformat(m["created_at"]).utcoffset().total_seconds() == 0
    assert m["package_version"] == "0.1.0"
    assert m["counts"] == {"train": 6, "rejected": 1, "tasks": 3}
    assert m["files"][TRAIN_FILE]["rows"] == 6
    assert m["files"][TRAIN_FILE]["bytes"] == (folder / TRAIN_FILE).stat().st_size
    assert set(m["files"]) == {TRAIN_FILE, REJECTED_FILE, CARD_FILE}
    assert m["extra_field"] == 1 and m["recipe"] == "self-instruct"
    assert m["seeds_dir"] == str(tmp_path)  # extras that are not JSON types are stringified
    assert "files" not in given  # the caller's dict is not modified
    assert validate(folder) == []


def test_japanese_text_is_stored_unescaped(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "ja", ja=True)
    raw = (folder / TRAIN_FILE).read_bytes()
    assert "次の文を要約してください".encode() in raw
    assert b"\\u" not in raw
    assert front_matter((folder / CARD_FILE).read_text())["language"] == ["ja"]
    first_row = json.loads(raw.decode().splitlines()[0])
    assert first_row["instruction"] == "次の文を要約してください 0"


def test_versions_are_immutable_and_monotonic(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "demo")
    before = folder_hashes(first)
    second = write_sample(tmp_path / "demo", rows=8)

    assert second.name == "v0002"
    assert read_manifest(second)["parent"] == "v0001"
    assert folder_hashes(first) == before
    assert list_versions(tmp_path / "demo") == ["v0001", "v0002"]


def test_a_concurrent_writer_taking_the_name_means_retry_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_sample(tmp_path / "demo")
    before = folder_hashes(first)
    real_next = store.next_version
    calls = []

    def stale_next(dataset_dir: Path) -> tuple[str, str | None]:
        calls.append(1)
        # The first call sees the folder as it was before v0001 appeared.
        return ("v0001", None) if len(calls) == 1 else real_next(dataset_dir)

    monkeypatch.setattr(store, "next_version", stale_next)
    second = write_sample(tmp_path / "demo")

    assert second.name == "v0002" and len(calls) == 2
    assert read_manifest(second)["version"] == "v0002"
    assert read_manifest(second)["parent"] == "v0001"
    assert validate(second) == []
    assert folder_hashes(first) == before


def test_writing_over_an_existing_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_sample(tmp_path / "demo")
    before = folder_hashes(first)
    monkeypatch.setattr(store, "next_version", lambda _dir: ("v0001", None))

    with pytest.raises(InputError, match=r"v0001: already exists; versions are immutable"):
        write_sample(tmp_path / "demo", rows=2)
    assert folder_hashes(first) == before
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["v0001"]  # no tmp left


def test_an_empty_folder_with_a_version_name_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "demo" / "v0001").mkdir(parents=True)
    folder = write_sample(tmp_path / "demo")
    assert folder.name == "v0002"
    assert list((tmp_path / "demo" / "v0001").iterdir()) == []


def test_concurrent_writers_get_distinct_versions(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            results.append(write_sample(tmp_path / "demo", rows=2 + n))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in results) == ["v0001", "v0002", "v0003", "v0004"]
    assert all(validate(p) == [] for p in results)


def _failing_rows(n: int):
    for i in range(n):
        yield train_row(i)
    raise RuntimeError("generator died mid-write")


def test_a_failing_write_leaves_nothing_and_the_next_write_works(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="mid-write"):
        write_version(tmp_path / "demo", _failing_rows(3), [], manifest())
    assert list((tmp_path / "demo").iterdir()) == []
    assert write_sample(tmp_path / "demo").name == "v0001"


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from selfinstruct.dataset import write_version
    from tests.dataset_samples import manifest, train_row

    def rows():
        for n in range(50):
            yield train_row(n)
        Path(sys.argv[2]).touch()  # half-written: tell the test to kill us now
        time.sleep(60)
        yield train_row(50)

    write_version(Path(sys.argv[1]), rows(), [], manifest())
    """
)


def test_a_killed_writer_leaves_only_an_ignored_temporary_folder(tmp_path: Path) -> None:
    dataset_dir, ready = tmp_path / "demo", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(dataset_dir), str(ready)], cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never got half-way"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()

    leftovers = [p for p in dataset_dir.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    # It really was mid-write: train.jsonl's temporary file (`atomic_write`) holds rows.
    partial = [p for p in leftovers[0].iterdir() if p.name.startswith(f".{TRAIN_FILE}.")]
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    assert list_versions(dataset_dir) == []
    with pytest.raises(InputError, match="no versions yet"):
        resolve_version(dataset_dir / "latest")

    # A young temporary folder may belong to a live writer: kept. An old one is cleaned up.
    assert write_sample(dataset_dir).name == "v0001"
    assert leftovers[0].exists()
    old = time.time() - dataset.STALE_TMP_SECONDS - 60
    os.utime(leftovers[0], (old, old))
    assert write_sample(dataset_dir).name == "v0002"
    assert not leftovers[0].exists()


def test_latest_and_version_names_resolve(tmp_path: Path) -> None:
    write_sample(tmp_path / "demo")
    second = write_sample(tmp_path / "demo")
    assert resolve_version(tmp_path / "demo") == second
    assert resolve_version(tmp_path / "demo", "latest") == second
    assert resolve_version(tmp_path / "demo" / "latest") == second
    assert resolve_version(str(tmp_path / "demo" / "v0001")) == tmp_path / "demo" / "v0001"
    assert resolve_version(tmp_path / "demo", "v0001") == tmp_path / "demo" / "v0001"
    with pytest.raises(InputError, match=r"no version 'v0009' \(versions: v0001, v0002\)"):
        resolve_version(tmp_path / "demo" / "v0009")
    with pytest.raises(InputError, match="no such dataset folder"):
        resolve_version(tmp_path / "missing" / "latest")


def test_rows_that_break_the_schema_are_refused(tmp_path: Path) -> None:
    bad = train_row(1)
    bad["provenance"]["round"] = "1"
    with pytest.raises(ValueError, match=r"train.jsonl row 2: field 'provenance.round': expected"):
        write_version(tmp_path / "demo", [train_row(0), bad], [], manifest())
    extra = {**train_row(0), "surprise": 1}
    with pytest.raises(ValueError, match="field 'surprise': unexpected field"):
        write_version(tmp_path / "demo", [extra], [], manifest())
    nan = train_row(0)
    nan["provenance"]["avg_similarity"] = float("nan")
    with pytest.raises(ValueError):
        write_version(tmp_path / "demo", [nan], [], manifest())
    assert list((tmp_path / "demo").iterdir()) == []


@pytest.mark.parametrize(
    "secret",
    ["sk-proj-abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwxyz123456"],
)
def test_secrets_are_never_stored(tmp_path: Path, secret: str) -> None:
    config = {"base_url": "http://x/v1", "headers": {"Authorization": f"Bearer {secret}"}}
    with pytest.raises(InputError) as caught:
        write_version(tmp_path / "demo", [train_row(0)], [], manifest(config=config))
    assert "config.headers.Authorization" in str(caught.value)
    assert secret not in str(caught.value)
    assert not (tmp_path / "demo").exists() or list((tmp_path / "demo").iterdir()) == []


def test_validate_catches_a_flipped_byte(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_sample(tmp_path / "demo")
    path = folder / TRAIN_FILE
    data = bytearray(path.read_bytes())
    index = data.index(b"Summarize")
    data[index] ^= 0x20  # 'S' -> 's': same size, still valid JSON
    path.write_bytes(bytes(data))

    problems = validate(folder)
    assert len(problems) == 1
    assert f"{path}: sha256 does not match" in problems[0]

    assert run_cli(["validate", str(tmp_path / "demo" / "latest")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("selfinstruct: error: ") and str(path) in err
    assert len(err.strip().splitlines()) == 1


def test_validate_reports_file_line_and_field(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo")
    lines = (folder / TRAIN_FILE).read_text().splitlines(keepends=True)
    row = json.loads(lines[2])
    row["is_classification"] = "yes"
    lines[2] = json.dumps(row, ensure_ascii=False) + "\n"
    lines[4] = "{not json\n"
    (folder / TRAIN_FILE).write_text("".join(lines))
    m = read_manifest(folder)
    m["counts"]["rejected"] = 99
    (folder / MANIFEST_FILE).write_text(json.dumps(m))
    (folder / "notes.txt").write_text("added later")

    problems = "\n".join(validate(folder))
    assert f"{folder / TRAIN_FILE}:3: field 'is_classification': expected bool, got string" in (
        problems
    )
    assert f"{folder / TRAIN_FILE}:5: invalid JSON line" in problems
    assert "field 'counts.rejected': is 99, the files say 2" in problems
    assert f"{folder / 'notes.txt'}: not listed in manifest.json" in problems


def test_validate_catches_truncation_and_a_missing_manifest(tmp_path: Path) -> None:
    folder = write_sample(tmp_path / "demo")
    (folder / TRAIN_FILE).write_bytes((folder / TRAIN_FILE).read_bytes()[:-10])
    problems = "\n".join(validate(folder))
    assert "last line has no newline" in problems
    assert "size is" in problems
    (folder / MANIFEST_FILE).unlink()
    assert validate(folder) == [f"{folder / MANIFEST_FILE}: missing: not a dataset version folder"]


def test_versions_lists_created_at_and_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sample(tmp_path / "data" / "demo", rows=4)
    write_sample(tmp_path / "data" / "demo", rows=6)
    (tmp_path / "data" / "demo" / ".tmp-crashed").mkdir()

    summaries = versions(tmp_path / "data" / "demo")
    assert [(s.name, s.train_rows, s.rejected_rows, s.parent) for s in summaries] == [
        ("v0001", 4, 2, None),
        ("v0002", 6, 2, "v0001"),
    ]
    assert all(s.created_at for s in summaries)

    assert run_cli(["versions", "demo", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["VERSION", "CREATED", "TRAIN", "REJECTED", "PARENT"]
    assert out[1].split()[0::2] == ["v0001", "4", "-"] and out[2].endswith("(latest)")
    assert run_cli(["versions", "nope", "--data-dir", str(tmp_path / "data")]) == 2


def test_diff_lists_added_and_removed_instructions(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = write_sample(tmp_path / "demo", rows=6)  # tasks 0, 1, 2
    b = write_sample(tmp_path / "demo", rows=6, first=2)  # tasks 1, 2, 3
    result = diff(a, b)
    assert result.added == ["Summarize the text number 3"]
    assert result.removed == ["Summarize the text number 0"]
    assert (result.a_rows, result.b_rows, result.a_instructions, result.b_instructions) == (
        6,
        6,
        3,
        3,
    )
    assert run_cli(["diff", str(a), str(tmp_path / "demo" / "latest")]) == 0
    out = capsys.readouterr().out
    assert "1 added, 1 removed" in out
    assert "+ Summarize the text number 3" in out and "- Summarize the text number 0" in out


def test_card_metadata_and_demo_warning(tmp_path: Path) -> None:
    demo = write_sample(tmp_path / "a", ja=True, demo=True)
    card = (demo / CARD_FILE).read_text()
    meta = front_matter(card)
    assert meta["language"] == ["ja"] and meta["license"] == "apache-2.0"
    assert meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["tags"] == ["synthetic", "self-instruct"]
    config = f"a-v0001-{read_manifest(demo)['files'][TRAIN_FILE]['sha256'][:12]}"
    assert meta["configs"] == [
        {"config_name": config, "data_files": [{"split": "train", "path": "train.jsonl"}]}
    ]
    assert meta["dataset_info"]["config_name"] == config  # the features apply to that config
    assert "135M" in card and "not fit for training" in card
    assert "| bootstrap | 12 | 5 | 7 | too_similar (4), short (3) |" in card

    real = write_sample(tmp_path / "b", license=None)
    card = (real / CARD_FILE).read_text()
    assert "135M" not in card and "## Limitations" in card
    assert front_matter(card)["license"] == "apache-2.0"  # null license -> the default


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (52_002, "10K<n<100K"), (10**6, "1M<n<10M")],
)
def test_size_categories_follow_the_hub_buckets(rows: int, bucket: str) -> None:
    assert size_category(rows) == bucket


def test_fast_commands_do_not_import_heavy_libraries(tmp_path: Path) -> None:
    write_sample(tmp_path / "demo")
    code = textwrap.dedent(
        f"""
        import sys
        from tests.dataset_samples import run_cli
        assert run_cli(["validate", {str(tmp_path / "demo" / "latest")!r}]) == 0
        assert run_cli(["versions", "demo", "--data-dir", {str(tmp_path)!r}]) == 0
        heavy = ("datasets", "huggingface_hub", "prefect", "pyarrow", "openai")
        print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
