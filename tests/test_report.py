"""The dataset report: built for versions generated against the loopback server (English and
Japanese), written into a new version by `write_version`'s hook, shown in the card, released
and published with the version, and opened in headless Chromium like a person would."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from PIL import Image

from selfinstruct import report as report_module
from selfinstruct.cli_report import register
from selfinstruct.config import build_config
from selfinstruct.dataset import (
    CARD_FILE,
    REJECTED_FILE,
    TRAIN_FILE,
    read_manifest,
    validate,
    write_version,
)
from selfinstruct.pipeline import run
from selfinstruct.release import build_release
from selfinstruct.report import build_report, write_into_version
from selfinstruct.report.stats import TOP_PAIRS, collect, nearest_neighbours
from selfinstruct.report.verbs import leading_verbs
from selfinstruct.run import open_run
from selfinstruct.similarity import rouge_l
from tests.servers.hub_server import HubServer
from tests.servers.openai_server import start_server
from tests.test_hub import SENTINEL, _client_env

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ["funnel.png", "similarity.png", "task_types.png", "lengths.png", "verbs.png"]
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small generated version per language (the pipeline against the test server)."""
    base = tmp_path_factory.mktemp("report")
    made = {}
    with start_server() as server:
        for language in ("en", "ja"):
            config = build_config(
                {"seeds": f"seeds/{language}_general.jsonl", "dataset": language,
                 "num_instructions": 40, "data_dir": str(base / "data"),
                 "base_url": server.base_url, "model": "test-model", "seed": 7},
                environ={},
            )
            with open_run(config, api_key="k", warn=False) as gen:
                made[language] = Path(run(gen))
    return made


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_report_of_a_generated_version(versions: dict[str, Path], tmp_path: Path,
                                       language: str) -> None:
    version = versions[language]
    before = snapshot(version)
    page = build_report(version, tmp_path / "out")
    assert page == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in page.parent.iterdir()) == sorted([*CHARTS, "report.html"])
    for name in CHARTS:  # no judge in this run: no judge chart
        width, height = png_size((page.parent / name).read_bytes())
        assert width >= 400 and height >= 150
    text = page.read_text(encoding="utf-8")
    rows = read_jsonl(version / TRAIN_FILE)
    rejected = read_jsonl(version / REJECTED_FILE)
    assert f"{version.parent.name} {version.name}" in text
    assert text.count("data:image/png;base64,") == len(CHARTS)
    # Self-contained: nothing is loaded from anywhere but the page itself.
    assert re.findall(r'(?:src|href)="(?!data:|#)', text) == []
    assert "<link" not in text and "@import" not in text
    for reason in {r["reason"] for r in rejected}:
        assert f"<b>{reason}</b>" in text
    sample = re.search(r'<table id="sample">(.*?)</table>', text, re.S).group(1)
    assert sample.count("<tr>") == 1 + min(200, len(rows))
    pairs = re.search(r'id="pairs">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    assert pairs.count("<tr>") == 20
    assert snapshot(version) == before  # the version folder is never written to
    assert validate(version) == []


def test_cli_report_writes_next_to_the_versions(versions: dict[str, Path], capsys) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    version = versions["en"]
    args = parser.parse_args(["report", str(version.parent / "latest")])
    assert args.func(args) == 0
    expected = version.parent / "reports" / version.name / "report.html"
    assert capsys.readouterr().out.strip() == str(expected)
    assert expected.is_file()
    assert validate(version) == []  # "reports" is no version: listing and checks ignore it

    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    args = parser.parse_args(["report", str(version), "--output", str(version / "report")])
    assert args.func(args) == 2
    assert "inside the version folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in version.rglob("*") if p.is_file()} == before


@pytest.fixture(scope="module")
def with_report(versions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new version written with the report hook; half its rows carry judge scores."""
    source = versions["en"]
    rows = read_jsonl(source / TRAIN_FILE)
    for n, row in enumerate(rows[::2]):
        row["provenance"]["judge_clarity"] = 3 + n % 3
        row["provenance"]["judge_correctness"] = 5 - n % 2
    target = tmp_path_factory.mktemp("hooked") / "data" / "en"
    return write_version(target, rows, read_jsonl(source / REJECTED_FILE),
                         read_manifest(source), extra_files=write_into_version)


def test_the_report_is_part_of_the_version(with_report: Path) -> None:
    folder = with_report
    files = read_manifest(folder)["files"]
    report_files = [name for name in files if name.startswith("report/")]
    assert report_files == ["report/report.html", *(f"report/{c}" for c in CHARTS),
                            "report/judge.png"]
    assert validate(folder) == []
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    for name in report_files[1:]:
        assert f"]({name})" in card  # embedded by relative path: shows on the Hub too
    assert "[`report/report.html`](report/report.html)" in card
    assert "judge clarity / correctness" in (folder / "report" / "report.html").read_text()


def test_validate_covers_report_files(with_report: Path, tmp_path: Path) -> None:
    copy = tmp_path / "v0001"
    shutil.copytree(with_report, copy)
    (copy / "report" / "notes.txt").write_text("added later")
    with open(copy / "report" / "funnel.png", "ab") as handle:
        handle.write(b"x")
    problems = validate(copy)
    assert f"{copy / 'report' / 'notes.txt'}: not listed in manifest.json (version folders " \
           "are immutable)" in problems
    assert f"{copy / 'report' / 'funnel.png'}: sha256 does not match manifest.json " \
           "(file changed)" in problems


def test_a_release_carries_the_report(with_report: Path, tmp_path: Path) -> None:
    artifact = build_release(with_report, tmp_path / "dist")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "x", filter="data")
    prefix = f"en-{with_report.name}"
    assert f"{prefix}/report/funnel.png" in names
    sums = (tmp_path / "x" / prefix / "SHA256SUMS").read_text()
    assert "  report/report.html\n" in sums
    assert validate(tmp_path / "x" / prefix) == []


def test_a_failing_report_does_not_cost_the_version(versions: dict[str, Path], tmp_path: Path,
                                                    monkeypatch, capsys) -> None:
    def broken(folder: Path, manifest: dict, target: Path) -> None:
        target.mkdir()
        (target / "funnel.png").write_bytes(b"half written")
        raise RuntimeError("chart bug")

    monkeypatch.setattr(report_module, "write_report", broken)
    source = versions["en"]
    folder = write_version(tmp_path / "data" / "en", read_jsonl(source / TRAIN_FILE), [],
                           read_manifest(source), extra_files=write_into_version)
    assert not (folder / "report").exists()
    assert validate(folder) == []
    assert "## Report" not in (folder / CARD_FILE).read_text(encoding="utf-8")
    assert "no report in this version (RuntimeError: chart bug); build one with " \
           "`selfinstruct report PATH`" in capsys.readouterr().err


def chromium() -> str:
    """Debian chromium, or a skip on a developer's machine without it. Under CI (``CI`` set
    to anything but false/0, as every CI service does) a missing browser is a failure: a CI
    run must not pass by skipping the one test that looks at the page."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("Debian chromium is missing and CI is set: `make test` installs it "
                        "(apt-get install --no-upgrade --no-install-recommends chromium)")
        pytest.skip("Debian chromium is not installed: `make test` installs it (under CI=true "
                    "this test fails instead)")
    return path


@pytest.mark.parametrize(("ci", "outcome"), [
    (None, pytest.skip.Exception), ("", pytest.skip.Exception),
    ("false", pytest.skip.Exception), ("true", pytest.fail.Exception),
    ("1", pytest.fail.Exception),
])
def test_missing_chromium_skips_only_outside_ci(tmp_path: Path, monkeypatch, ci: str | None,
                                               outcome: type[BaseException]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no chromium on the PATH
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as raised:  # pytest's skip and fail are BaseExceptions
        chromium()
    assert raised.type is outcome  # a wrong skip must fail this test, not skip it
    assert "chromium" in str(raised.value)


def test_the_report_renders_in_headless_chromium(versions: dict[str, Path],
                                                 tmp_path: Path) -> None:
    page = build_report(versions["ja"], tmp_path / "out")  # Japanese: CJK text everywhere
    url = page.resolve().as_uri()
    base = [chromium(), *CHROME_FLAGS]
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    # Set by the page's script once loaded: every <img> decoded to a real picture.
    assert f'data-images="{len(CHARTS)}/{len(CHARTS)}"' in dom
    # The row filter: ?q= fills the search box; rows without the text are hidden, whatever
    # its case (here: the rows of the first task).
    sample = re.search(r'<table id="sample">.*?<tbody>(.*?)</tbody>',
                       page.read_text(encoding="utf-8"), re.S).group(1)
    rows = [html.unescape(re.sub(r"<[^>]+>", "", row))
            for row in re.findall(r"<tr>(.*?)</tr>", sample, re.S)]
    word = rows[0].split()[0].rsplit("-", 1)[0] + "-"  # "task-000001-"
    expected = sum(word in row for row in rows)
    assert 0 < expected < len(rows)
    filtered = subprocess.run([*base, f"--user-data-dir={tmp_path / 'p3'}", "--dump-dom",
                               f"{url}?q={word.upper()}"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    assert f'<span id="shown">{expected}</span>' in filtered
    assert filtered.count('<tr hidden="">') == len(rows) - expected
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}",
                    "--window-size=1280,2400", url],
                   capture_output=True, timeout=60, check=True)
    data = shot.read_bytes()
    assert png_size(data) == (1280, 2400)
    assert len(data) > 60_000  # charts and tables, not a blank page


def _japanese(text: str) -> list[str]:
    """The distinct kana and kanji of `text`, in order of first appearance."""
    return list(dict.fromkeys(c for c in text if "\u3040" <= c <= "\u30ff"
                              or "\u4e00" <= c <= "\u9fff"))


def _outside_style(page: str) -> str:
    return re.sub(r"<style>.*?</style>", "", page, flags=re.S)


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_page_embeds_exactly_the_glyphs_it_uses(versions: dict[str, Path], tmp_path: Path,
                                                    language: str) -> None:
    text = build_report(versions[language], tmp_path / "out").read_text(encoding="utf-8")
    fonts = re.findall(r"url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)", text)
    assert len(fonts) == 1
    font = TTFont(io.BytesIO(base64.b64decode(fonts[0])))
    covered = set(font.getBestCmap())
    used = {ord(c) for c in _outside_style(text)}
    japanese = {ord(c) for c in _japanese(_outside_style(text))}
    assert japanese <= covered  # every kana and kanji on the page has its glyph
    ascii_printable = set(range(0x20, 0x7F))
    assert covered <= used | ascii_printable  # and nothing else: a subset, not the 6 MB font
    if language == "ja":
        assert len(japanese) > 300
    else:
        assert japanese == set()
        assert len(fonts[0]) < 20_000  # Latin pages pay a few kilobytes


CELL = 60  # px: one character per square cell of the probe page


def _no_cjk_environment(tmp_path: Path) -> dict[str, str]:
    """Chromium's environment on a machine without a CJK font: fontconfig knows only
    matplotlib's own fonts (DejaVu, STIX), whatever the machine has installed."""
    import matplotlib

    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<fontconfig>\n'
        f"<dir>{Path(matplotlib.get_data_path()) / 'fonts' / 'ttf'}</dir>\n"
        f"<cachedir>{tmp_path / 'fontconfig-cache'}</cachedir>\n</fontconfig>\n",
        encoding="utf-8")
    return {**os.environ, "FONTCONFIG_FILE": str(conf)}


def _glyph_cells(browser: str, env: dict[str, str], head: str, chars: list[str],
                 folder: Path) -> list[bytes]:
    """Screenshot `chars` in one row of cells under the report's own <head> (its CSS and
    embedded font); return each cell's grey pixels."""
    folder.mkdir()
    probe = folder / "probe.html"
    cells = "".join(f"<span>{c}</span>" for c in chars)
    probe.write_text(
        f'<!DOCTYPE html><html lang="ja">{head}<body style="margin:0">'
        f'<div style="display:flex;font-size:40px">{cells}</div>'
        f"<style>span{{width:{CELL}px;height:{CELL}px;line-height:{CELL}px;"
        "text-align:center;overflow:hidden;flex:none}</style></body></html>",
        encoding="utf-8")
    shot = folder / "shot.png"
    subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={folder / 'profile'}",
                    # Virtual time runs until the embedded font has loaded and laid out, so
                    # the shot never catches a cell still drawn with the fallback.
                    "--virtual-time-budget=10000",
                    "--force-device-scale-factor=1", f"--screenshot={shot}",
                    f"--window-size={CELL * len(chars)},{CELL}", probe.as_uri()],
                   env=env, capture_output=True, timeout=60, check=True)
    with Image.open(shot) as image:
        grey = image.convert("L")
        return [grey.crop((CELL * i, 0, CELL * (i + 1), CELL)).tobytes()
                for i in range(len(chars))]


def test_japanese_text_reads_without_a_cjk_font(versions: dict[str, Path],
                                                tmp_path: Path) -> None:
    """Item 19: no empty boxes. Tofu is one box for every character, so characters that
    render alike are tofu; the page's own characters must each render as their own glyph."""
    browser = chromium()
    text = build_report(versions["ja"], tmp_path / "out").read_text(encoding="utf-8")
    head = re.search(r"<head>.*?</head>", text, re.S).group(0)
    without_font = re.sub(r"@font-face\{[^}]*\}", "", head)
    assert without_font != head
    chars = _japanese(_outside_style(text))[:16]
    env = _no_cjk_environment(tmp_path)
    # The control: with the font stripped, this browser has no glyph for any of them and
    # draws the same box for each (were a CJK font reachable, this would fail).
    assert len(set(_glyph_cells(browser, env, without_font, chars, tmp_path / "bare"))) == 1
    embedded = _glyph_cells(browser, env, head, chars, tmp_path / "embedded")
    assert len(set(embedded)) == len(chars)
    assert all(min(cell) < 100 for cell in embedded)  # ink: a dark glyph in every cell


@pytest.mark.parametrize(("language", "text", "expected"), [
    ("en", "Write a short story about a dragon.", ("write", "story")),
    ("en", "Please tell me a joke about cats.", ("tell", "joke")),
    ("en", "Given a paragraph, summarize its main argument.", ("summarize", "argument")),
    ("en", "Can you give three examples of renewable energy?", ("give", "example")),
    ("en", "Classify the following sentence as positive or negative.",
     ("classify", "sentence")),
    ("en", "Explain why the sky is blue.", ("explain", None)),
    ("en", "Come up with a catchy slogan for a bakery.", ("come up with", "slogan")),
    ("en", "What is the capital of France?", (None, None)),
    ("ja", "日本の四季の特徴を説明してください。", ("説明する", "特徴")),
    ("ja", "短い物語を書いてください。", ("書く", "物語")),
    ("ja", "おすすめの本を3冊挙げてください。", ("挙げる", "本")),
    ("ja", "成功事例の列挙をお願いします。", ("列挙する", "成功事例")),
    ("ja", "資料を構成しなさい。", ("構成する", "資料")),
    ("ja", "二つの案を比較するよう依頼します。", ("比較する", "案")),
    ("ja", "この文はポジティブですか？", (None, None)),
])
def test_leading_verbs_and_objects(language: str, text: str, expected: tuple) -> None:
    assert leading_verbs([text], language) == [expected]


def test_nearest_neighbours_are_exact() -> None:
    texts = ["Summarize the article in one sentence.", "Summarize the article in two lines.",
             "Write a poem about the sea.", "Write a short poem about the sea at night.",
             "List three fruits.", "日本の四季を説明してください。",
             "日本の四季の特徴を説明してください。"]
    nearest, pairs = nearest_neighbours(texts, "ja")
    brute = {(a, b): rouge_l(a, b, "ja") for a in texts for b in texts if a < b}
    for text, score in zip(texts, nearest, strict=True):
        assert score == max(s for (a, b), s in brute.items() if text in (a, b))
    assert pairs[0] == (max(brute.values()), *max(brute, key=brute.get))
    assert [s for s, _, _ in pairs] == sorted(brute.values(), reverse=True)[:len(pairs)]


def test_publishing_uploads_the_report(with_report: Path, tmp_path: Path) -> None:
    client = (
        "import json, sys\nfrom selfinstruct.hub import publish\n"
        "print(json.dumps(publish(sys.argv[1], 'selfinstruct-tests/report')))"
    )
    with HubServer(tmp_path / "hub", expected_token=SENTINEL, lfs_threshold=2048) as hub:
        done = subprocess.run([sys.executable, "-c", client, str(with_report)], cwd=ROOT,
                              env=_client_env(tmp_path / "hf_home", hub),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        state = json.loads((hub.root / "state.json").read_text())
    repo = state["dataset:selfinstruct-tests/report"]
    tagged = repo["commits"][repo["tags"][with_report.name]]["files"]
    listed = set(read_manifest(with_report)["files"])
    assert listed | {"manifest.json"} <= set(tagged)
    assert tagged["report/funnel.png"]["lfs"] is not None  # binary: through LFS


def test_the_report_command_does_not_slow_down_the_cli() -> None:
    code = ("import sys, selfinstruct.cli_report\n"
            "print(sorted(m for m in ('matplotlib', 'selfinstruct.report', 'lemminflect', "
            "'sudachipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"



def test_top_pairs_stay_exact_when_pruned_as_they_come() -> None:
    """Enough texts that the pairs are pruned to the top ones many times: the result is
    still the exhaustive ranking (ties by text)."""
    rng = random.Random(3)
    words = ["sort", "list", "the", "a", "numbers", "words", "poem", "sea", "write", "short"]
    texts = list(dict.fromkeys(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7)))
                               for _ in range(60)))
    _, pairs = nearest_neighbours(texts, "en")
    brute = sorted(((rouge_l(a, b, "en"), a, b) for a in texts for b in texts if a < b),
                   key=lambda p: (-p[0], p[1], p[2]))
    assert len(brute) > 4 * TOP_PAIRS  # the pruning ran
    assert pairs == brute[:TOP_PAIRS]


def _synthetic_version(folder: Path, rows: int, per_task: int) -> None:
    """train.jsonl and rejected.jsonl shaped like a real run's (10 neighbours per row)."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    tasks = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(rows // per_task)]
    with open(folder / TRAIN_FILE, "w", encoding="utf-8") as train, \
            open(folder / REJECTED_FILE, "w", encoding="utf-8") as rejected:
        for n in range(rows):
            t = n // per_task
            near = [{"instruction": tasks[(t + k) % len(tasks)], "score": 0.5 - k / 100}
                    for k in range(1, 11)]
            train.write(json.dumps({
                "id": f"task-{t:06d}-{n % per_task}", "task_id": f"task-{t:06d}",
                "instruction": tasks[t],
                "input": " ".join(rng.choice(words) for _ in range(rng.randint(0, 20))),
                "output": " ".join(rng.choice(words) for _ in range(60)),
                "is_classification": t % 3 == 0,
                "provenance": {"model": "m", "prompt_hash": "a" * 64, "round": 1,
                               "most_similar": near, "avg_similarity": 0.1,
                               "judge_clarity": None, "judge_correctness": None}}) + "\n")
            rejected.write(json.dumps({
                "stage": "filter", "reason": f"r{n % 7}", "instruction": tasks[n % len(tasks)],
                "input": None, "output": "x " * 100, "detail": f"detail {n}",
                "prompt_hash": "c" * 64, "request_id": f"req-{n}"}) + "\n")


def test_the_report_reads_rows_in_bounded_memory(tmp_path: Path) -> None:
    """A 52K-instruction version has ~130K rows: the report streams them and keeps a few
    numbers per row, not the rows (holding these 10K rows and 10K rejected rows took
    ~32 MB under tracemalloc; streaming them ~4 MB)."""
    _synthetic_version(tmp_path, rows=10_000, per_task=10)
    leading_verbs(["Write a poem."], "en")  # its lexicon (~30 MB) loads once per process
    tracemalloc.start()
    try:
        stats = collect(tmp_path, {"language": "en"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"collect() peaked at {peak / 2**20:.1f} MB"
    # ... and still shows the same numbers as reading every row would.
    assert (stats.row_count, stats.rejected_count, len(stats.instructions)) == (10_000, 10_000,
                                                                                 1000)
    assert [row["id"] for row in stats.sample] == [
        f"task-{p // 10:06d}-{p % 10}" for p in range(0, 10_000, 50)]
    assert [(g.reason, g.count) for g in stats.rejections] == [
        *((f"r{k}", 1429) for k in range(4)), *((f"r{k}", 1428) for k in range(4, 7))]
    assert [e["detail"] for e in stats.rejections[1].examples] == ["detail 1", "detail 8"]
    assert len(stats.lengths.outputs) == 10_000
    assert len(stats.lengths.inputs) + stats.lengths.empty_inputs == 10_000
    assert stats.task_types == {"classification": 334, "generation": 666}
    assert stats.at_acceptance == [0.49] * 1000
