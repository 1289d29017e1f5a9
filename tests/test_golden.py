"""Golden runs: fixed seeds against the clean test server, compared byte for byte.

The engine/recipe split (issue 13) must not change a single row: for both recipes, English
and Japanese, and one run with the LLM quality checks, `train.jsonl`, `rejected.jsonl` and the
manifest's `funnel`, `target` and `usage` must equal the stored fixtures under
`tests/fixtures/golden/<case>/`.

Normalised before comparing (and only these):

* request ids: the test server names an answer ``req_<16 hex of the request's fingerprint>
  <8 hex arrival sequence>``; the sequence depends on thread timing, so it is cut and the
  fingerprint (which depends on the request's content only) is kept;
* everything else that varies per run (timestamps, run ids, absolute paths) lives in manifest
  fields the fixture does not store: only `funnel`, `target` and `usage` are kept.

`old_journals/<case>/` hold journals written by the pipeline before the engine/recipe split
(commit fd1d650), stopped part-way; `{REPO}`, `{DATA}` and `{BASE_URL}` in their run.json
stand for the checkout, the data folder and the test server. Resuming them must reuse every
stored answer (request keys unchanged) and finish with the same rows as the golden run. They
are not regenerated: they are the old code's output.

Regenerating the fixtures is for INTENDED behaviour changes only (a new filter, a prompt
change), never to make a refactor pass: ``python -m tests.test_golden --regenerate``
(or ``SELFINSTRUCT_GOLDEN_REGENERATE=1`` with pytest) rewrites them; review the diff.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from selfinstruct.cli import main
from tests.servers.openai_server import start_server

FIXTURES = Path(__file__).parent / "fixtures" / "golden"
REGENERATE_ENV = "SELFINSTRUCT_GOLDEN_REGENERATE"

# case name -> generate flags (the clean server, chat API, one fixed --seed each)
CASES: dict[str, list[str]] = {
    "self_instruct_en": ["--seeds", "seeds/en_general.jsonl", "--recipe", "self-instruct",
                         "--num-instructions", "30", "--seed", "11"],
    "self_instruct_ja": ["--seeds", "seeds/ja_general.jsonl", "--recipe", "self-instruct",
                         "--num-instructions", "30", "--seed", "12"],
    "alpaca_en": ["--seeds", "seeds/en_general.jsonl", "--recipe", "alpaca",
                  "--num-instructions", "40", "--seed", "13"],
    "alpaca_ja": ["--seeds", "seeds/ja_general.jsonl", "--recipe", "alpaca",
                  "--num-instructions", "40", "--seed", "14"],
    "self_instruct_en_quality": ["--seeds", "seeds/en_general.jsonl", "--recipe",
                                 "self-instruct", "--num-instructions", "20", "--seed", "15",
                                 "--judge-model", "test-model", "--judge-min-score", "3",
                                 "--consistency"],
}

_REQUEST_ID = re.compile(r"\b(req_[0-9a-f]{16})[0-9a-f]{8}\b")


def normalise(text: str) -> str:
    """Cut the arrival sequence from request ids (see the module docstring)."""
    return _REQUEST_ID.sub(r"\1", text)


def run_case(name: str, workdir: Path) -> dict[str, str]:
    """Generate one case; return its three golden files' normalised text by file name."""
    data_dir = workdir / name
    with start_server() as server:
        argv = ["generate", "--data-dir", str(data_dir), "--base-url", server.base_url,
                "--model", "test-model", "--api-key", "k", "--no-progress", "--api", "chat",
                "--dataset", "golden", *CASES[name]]
        code = main(argv)
    assert code == 0, f"{name}: generate exited {code}"
    (version,) = (data_dir / "golden").glob("v*")
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    kept = {key: manifest[key] for key in ("funnel", "target", "usage")}
    return {
        "train.jsonl": normalise((version / "train.jsonl").read_text(encoding="utf-8")),
        "rejected.jsonl": normalise((version / "rejected.jsonl").read_text(encoding="utf-8")),
        "manifest.json": json.dumps(kept, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
    }


def first_difference(expected: str, actual: str) -> str:
    """The first differing line, so a failure says where behaviour changed."""
    want, got = expected.splitlines(), actual.splitlines()
    for number, (a, b) in enumerate(zip(want, got, strict=False), start=1):
        if a != b:
            return f"line {number}:\n  expected {a[:400]}\n  actual   {b[:400]}"
    return f"{len(want)} lines expected, {len(got)} written"


def regenerate(workdir: Path) -> None:
    for name in CASES:
        folder = FIXTURES / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in run_case(name, workdir).items():
            (folder / file).write_text(text, encoding="utf-8")


def golden_files(name: str) -> dict[str, str]:
    return {file: (FIXTURES / name / file).read_text(encoding="utf-8")
            for file in ("train.jsonl", "rejected.jsonl", "manifest.json")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_run_is_unchanged(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    files = run_case(name, tmp_path)
    capsys.readouterr()
    if os.environ.get(REGENERATE_ENV):
        folder = FIXTURES / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
    for file, expected in golden_files(name).items():
        text = files[file]
        assert text == expected, f"{name}/{file} changed at {first_difference(expected, text)}"


@pytest.mark.parametrize("name", ["self_instruct_ja", "alpaca_en"])
def test_a_journal_written_before_the_split_resumes_to_the_golden_rows(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old journal + new code: no stored answer is asked again, and the rows are golden."""
    source = FIXTURES / "old_journals" / name
    data_dir = tmp_path / "data"
    with start_server() as server:
        record = (source / "run.json").read_text(encoding="utf-8")
        for placeholder, value in (("{REPO}", str(Path.cwd())), ("{DATA}", str(data_dir)),
                                   ("{BASE_URL}", server.base_url)):
            record = record.replace(placeholder, value)
        run_dir = data_dir / "golden" / ".runs" / json.loads(record)["run_id"]
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(record, encoding="utf-8")
        journal = (source / "journal.jsonl").read_text(encoding="utf-8")
        (run_dir / "journal.jsonl").write_text(journal, encoding="utf-8")
        code = main(["generate", "--resume", "--dataset", "golden", "--data-dir", str(data_dir),
                     "--base-url", server.base_url, "--api-key", "k", "--no-progress"])
        sent = server.stats()["successes_total"]
    assert code == 0, capsys.readouterr().err
    stored = sum(1 for line in journal.splitlines() if json.loads(line)["type"] == "answer")
    (version,) = (data_dir / "golden").glob("v*")
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    cached = sum(stage["cached"] for stage in manifest["usage"].values())
    assert cached == stored  # every old answer matched its request's key
    golden = golden_files(name)
    assert sent == json.loads(golden["manifest.json"])["funnel"]["answers"]["in"] - stored
    for file in ("train.jsonl", "rejected.jsonl"):
        text = normalise((version / file).read_text(encoding="utf-8"))
        assert text == golden[file], f"{name}/{file}: {first_difference(golden[file], text)}"
    assert manifest["funnel"] == json.loads(golden["manifest.json"])["funnel"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python -m tests.test_golden --regenerate   (intended changes only)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        regenerate(Path(tmp))
    print(f"rewrote {FIXTURES}", file=sys.stderr)
