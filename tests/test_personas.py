"""--personas: the loader's one-line errors, the shipped sets, and conditioning end to end.

End to end runs go through the CLI entry point against the loopback test server; whether a
row's instruction was conditioned on the persona its provenance names is checked from the
requests the server received: the prompt whose hash the row stores must carry that persona's
description.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selfinstruct._errors import InputError
from selfinstruct.cli import main
from selfinstruct.languages import ja
from selfinstruct.persona_stats import persona_spread
from selfinstruct.personas import (
    MAX_DESCRIPTION_CHARS,
    Persona,
    bundled_persona_sets,
    load_personas,
    persona_file_sha256,
    pick,
    resolve_persona_path,
)
from selfinstruct.prompts import bundled_dir, sha256_text
from selfinstruct.similarity import NoveltyIndex
from tests.pause import kill_paused
from tests.servers.kinds.kind_persona import persona_description, persona_word
from tests.servers.openai_server import RunningServer, start_server
from tests.test_seeds import fake_install, run_installed

ROOT = Path(__file__).resolve().parent.parent


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write(tmp_path: Path, content: str | bytes, name: str = "personas.jsonl") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


A = {"id": "a", "description": "A beekeeper in Vermont."}
B = {"id": "b", "description": "A night-shift nurse in Chicago."}

# (file content, the whole expected message after the path)
BAD_FILES: list[tuple[str | bytes, str]] = [
    ("", ": empty persona file (no personas)"),
    ("\n  \n", ": empty persona file (no personas)"),
    ('{"id": "a",\n', ":1: invalid JSON: Expecting property name enclosed in double quotes "
                      "(column 12)"),
    (jsonl(A, ["a"]), ":2: expected a JSON object, got list"),
    (jsonl(A, {"description": "x y"}), ":2: field 'id': missing"),
    (jsonl({"id": 7, "description": "x y"}), ":1: field 'id': expected a string, got int"),
    (jsonl({"id": " ", "description": "x y"}), ":1: field 'id': empty"),
    (jsonl(A, {"id": "c", "description": "  "}), ":2: field 'description': empty"),
    (jsonl({"id": "c"}), ":1: field 'description': missing"),
    (jsonl({"id": "c", "descripton": "x"}), ":1: field 'descripton': unknown field (did you "
                                            "mean 'description'? known: id, description, "
                                            "language)"),
    (jsonl({"id": "c", "description": "x", "age": 3}),
     ":1: field 'age': unknown field (known: id, description, language)"),
    (jsonl(A, B, {"id": "a", "description": "Another one."}),
     ":3: field 'id': duplicate id 'a' (first on line 1)"),
    (jsonl(A, {"id": "c", "description": "A  beekeeper in\nVermont."}),
     ":2: field 'description': duplicate description (same as line 1)"),
    (jsonl({**A, "language": "fr"}), ":1: field 'language': unknown language 'fr' "
                                     "(known: en, ja)"),
    (jsonl({**A, "language": 3}), ":1: field 'language': unknown language 3 (known: en, ja)"),
    (jsonl({"id": "c", "description": "x" * (MAX_DESCRIPTION_CHARS + 1)}),
     f":1: field 'description': {MAX_DESCRIPTION_CHARS + 1} characters; a persona is one or "
     f"two sentences (at most {MAX_DESCRIPTION_CHARS})"),
    ('{"id": "c", "description": "bad \\ud800 text"}\n',
     ":1: field 'description': lone surrogate \\ud800 at character 4: not valid Unicode text"),
    (jsonl(A).encode() + b'{"id": "c", "description": "\xff"}\n', ":2: not valid UTF-8 "
                                                                  "(byte 0xff)"),
    (jsonl({**A, "language": "ja"}, {**B, "language": "ja"}),
     ": no persona for language 'en' (the file has ja: 2; a persona without 'language' serves "
     "every language)"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES,
                         ids=[m[:40] for _, m in BAD_FILES])
def test_a_bad_persona_file_is_one_line_naming_file_line_and_field(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(InputError) as caught:
        load_personas(path, "en")
    assert str(caught.value) == f"{path}{message}"


def test_missing_file_and_folder_name_the_bundled_sets(tmp_path):
    with pytest.raises(InputError, match=r"nope\.jsonl: persona file not found \(bundled "
                                         r"sets: en, ja\)$"):
        load_personas(tmp_path / "nope.jsonl", "en")
    with pytest.raises(InputError, match=r": is a directory, expected a persona file"):
        load_personas(tmp_path, "en")


def test_other_languages_are_skipped_and_unlabelled_personas_serve_every_run(tmp_path):
    nursery = {"id": "j", "description": "東京の保育士。", "language": "ja"}
    path = write(tmp_path, jsonl({**A, "language": "en"}, nursery, B))
    assert [p.id for p in load_personas(path, "en")] == ["a", "b"]
    assert load_personas(path, "ja") == [Persona("j", "東京の保育士。", "ja"),
                                         Persona("b", B["description"], None)]


def test_whitespace_inside_a_description_becomes_one_space(tmp_path):
    """A newline in a description would break the prompt's line layout."""
    path = write(tmp_path, jsonl({"id": " x ", "description": " A retired\n\tjudge  who tutors. "}))
    assert load_personas(path, "en") == [Persona("x", "A retired judge who tutors.")]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_shipped_sets_meet_the_brief(lang):
    personas = load_personas(lang, lang)
    assert len(personas) >= 200
    assert {p.language for p in personas} == {lang}
    assert len({p.id for p in personas}) == len(personas)
    # Diverse: no two descriptions are near-duplicates at the README's threshold.
    index = NoveltyIndex(threshold=0.7, language=lang)
    copies = [p.id for p in personas if not index.add_if_novel(p.description)]
    assert copies == []
    if lang == "ja":
        assert all(ja.recognises(p.description) for p in personas)
    else:
        assert all(not ja.recognises(p.description) for p in personas)


def test_bundled_names_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bundled_persona_sets() == ["en", "ja"]
    shipped = bundled_dir("seeds") / "personas" / "ja.jsonl"
    for name in ("ja", "ja.jsonl", "seeds/personas/ja.jsonl"):
        assert resolve_persona_path(name) == shipped
    (tmp_path / "ja").write_text(jsonl(A), encoding="utf-8")  # an existing path wins
    assert resolve_persona_path("ja") == Path("ja")
    assert [p.id for p in load_personas("ja", "en")] == ["a"]


def test_persona_file_sha256_is_the_hash_of_the_file_bytes(tmp_path):
    shipped = bundled_dir("seeds") / "personas" / "en.jsonl"
    assert persona_file_sha256("en") == hashlib.sha256(shipped.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="persona file not found"):
        persona_file_sha256(tmp_path / "none.jsonl")


def test_an_installed_copy_finds_the_bundled_sets(tmp_path):
    site = fake_install(tmp_path)
    names, found = run_installed(site, (
        "from selfinstruct.personas import bundled_persona_sets, load_personas, "
        "resolve_persona_path\n"
        "print(bundled_persona_sets())\n"
        "print(resolve_persona_path('seeds/personas/en.jsonl'), len(load_personas('en', 'en')))\n"))
    assert names == "['en', 'ja']"
    bundled = site / "selfinstruct" / "_bundled" / "seeds" / "personas" / "en.jsonl"
    assert found.startswith(f"{bundled} ")


def test_persona_spread_counts_instructions_not_rows():
    rows = [{"task_id": "t1", "provenance": {"persona_id": "a"}},
            {"task_id": "t1", "provenance": {"persona_id": "a"}},  # a second instance
            {"task_id": "t2", "provenance": {"persona_id": "b"}},
            {"task_id": "t3", "provenance": {"persona_id": "a"}},
            {"task_id": "t4", "provenance": {}}]
    spread = persona_spread(rows, available=5)
    assert spread == {"counts": {"a": 2, "b": 1}, "instructions": 3, "without_persona": 1,
                      "personas_used": 2, "personas_available": 5, "max_share": 2 / 3,
                      "top": [["a", 2], ["b", 1]]}
    assert persona_spread([], None)["max_share"] == 0.0


# -- end to end ----------------------------------------------------------------------------


def generate(server: RunningServer, data_dir: Path, capsys: pytest.CaptureFixture[str],
             *args: str) -> Path:
    argv = ["generate", "--data-dir", str(data_dir), "--base-url", server.base_url,
            "--model", "test-model", "--api-key", "k", "--no-progress", "--api", "chat",
            "--dataset", "p", *args]
    assert main(argv) == 0
    version = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert version.is_dir()
    return version


def train_rows(version: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (version / "train.jsonl").read_text(encoding="utf-8").splitlines()]


def prompts_sent(server: RunningServer) -> dict[str, str]:
    """sha256 -> text of every chat prompt the server received (a row stores the hash)."""
    sent = {}
    for request in server.requests():
        messages = (request.get("body") or {}).get("messages") or []
        if messages:
            sent[sha256_text(messages[-1]["content"])] = messages[-1]["content"]
    return sent


def assert_conditioned(server: RunningServer, rows: list[dict[str, Any]], lang: str,
                       personas: dict[str, Persona]) -> Counter[str]:
    """Every row names a persona of the file and came from a prompt conditioned on it."""
    sent = prompts_sent(server)
    used: Counter[str] = Counter()
    for row in rows:
        persona = personas[row["provenance"]["persona_id"]]
        prompt = sent[row["provenance"]["prompt_hash"]]
        assert persona_description(prompt, lang) == persona.description
        used[persona.id] += 1
    return used


# An Alpaca answer carries ~19 instructions (a bootstrap answer ~7): 80 of them take several
# generation requests, so several personas.
CASES = [("self-instruct", "en", "clean", 25), ("alpaca", "ja", "clean", 80),
         ("self-instruct", "ja", "messy", 25), ("alpaca", "en", "messy", 80)]


@pytest.mark.parametrize(("recipe", "lang", "style", "n"), CASES,
                         ids=["-".join(c[:3]) for c in CASES])
def test_every_row_is_conditioned_on_the_persona_it_names(tmp_path, capsys, recipe, lang,
                                                          style, n):
    personas = {p.id: p for p in load_personas(lang, lang)}
    with start_server(style=style) as server:
        version = generate(server, tmp_path / "data", capsys, "--recipe", recipe, "--seeds",
                           f"seeds/{lang}_general.jsonl", "--num-instructions", str(n),
                           "--seed", "3", "--personas", lang)
        rows = train_rows(version)
        used = assert_conditioned(server, rows, lang, personas)
    assert len({r["task_id"] for r in rows}) >= n and len(used) >= 4


def test_same_seed_same_personas_and_a_run_without_personas_is_untouched(tmp_path, capsys):
    def run(data: str, *extra: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        with start_server() as server:
            version = generate(server, tmp_path / data, capsys, "--seeds",
                               "seeds/en_general.jsonl", "--num-instructions", "12",
                               "--seed", "5", *extra)
            return train_rows(version), prompts_sent(server)

    first, _ = run("one", "--personas", "en")
    second, _ = run("two", "--personas", "en")
    assignment = [(r["task_id"], r["instruction"], r["provenance"]["persona_id"]) for r in first]
    assert assignment == [(r["task_id"], r["instruction"], r["provenance"]["persona_id"])
                          for r in second]
    assert len({persona for _, _, persona in assignment}) >= 2
    plain, sent = run("three", "--recipe", "alpaca")
    assert all("persona_id" not in r["provenance"] for r in plain)
    assert sent and not any(persona_description(p, "en") for p in sent.values())


def test_the_pick_depends_on_seed_and_nonce_only():
    personas = load_personas("en", "en")
    picks = [pick(personas, 5, f"gen-{i}").id for i in range(40)]
    assert picks == [pick(list(personas), 5, f"gen-{i}").id for i in range(40)]
    assert picks != [pick(personas, 6, f"gen-{i}").id for i in range(40)]
    assert len(set(picks)) >= 30  # spread, not stuck on a few


def test_the_server_writes_instructions_that_show_the_persona(tmp_path, capsys):
    """The test server puts a persona's word into each good instruction it writes for it,
    so what the model was asked reaches the rows (not only the prompts)."""
    personas = [{"id": f"p{i}", "description": f"A {word} who answers questions."}
                for i, word in enumerate(["beekeeper", "glassblower", "lighthouse keeper",
                                          "cartographer", "saxophonist"])]
    path = write(tmp_path, jsonl(*personas))
    with start_server() as server:
        version = generate(server, tmp_path / "data", capsys, "--seeds",
                           "seeds/en_general.jsonl", "--num-instructions", "15", "--seed",
                           "8", "--personas", str(path))
    rows = train_rows(version)
    words = {p["id"]: persona_word(p["description"], "en") for p in personas}
    assert rows and all(words[r["provenance"]["persona_id"]] in r["instruction"] for r in rows)


def test_a_prompts_dir_without_the_persona_template_is_one_line_before_any_request(tmp_path,
                                                                                   capsys):
    """persona.j2 is one of the recipe's templates: a --prompts-dir copied before it existed
    is refused up front, naming the file, not after paid requests."""
    prompts = tmp_path / "prompts"
    shutil.copytree(bundled_dir("prompts"), prompts)
    (prompts / "en" / "persona.j2").unlink()
    with start_server() as server:
        code = main(["generate", "--data-dir", str(tmp_path / "data"), "--base-url",
                     server.base_url, "--model", "test-model", "--api-key", "k", "--dataset",
                     "p", "--no-progress", "--seeds", "seeds/en_general.jsonl",
                     "--num-instructions", "5", "--prompts-dir", str(prompts), "--personas",
                     "en"])
        assert server.stats()["requests_total"] == 0
    assert code == 2
    assert capsys.readouterr().err.strip() == (f"selfinstruct: error: {prompts / 'en'}/persona.j2: "
                                               f"prompt template missing")
    assert not (tmp_path / "data").exists()


def bad_persona_run(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str], int]:
    bad = write(tmp_path, jsonl(A, {"id": "a", "description": "Again."}))
    with start_server() as server:
        result = subprocess.run(
            [sys.executable, "-m", "selfinstruct", "generate", "--seeds",
             "seeds/en_general.jsonl", "--num-instructions", "5", "--dataset", "x",
             "--data-dir", str(tmp_path / "data"), "--base-url", server.base_url, "--model",
             "test-model", "--api-key", "k", "--personas", str(bad)],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        return bad, result, server.stats()["requests_total"]


def test_a_bad_persona_file_stops_the_cli_before_any_request(tmp_path):
    bad, result, requests = bad_persona_run(tmp_path)
    assert (result.returncode, requests) == (2, 0)
    assert result.stderr.strip().splitlines() == [
        f"selfinstruct: error: {bad}:2: field 'id': duplicate id 'a' (first on line 1)"]


def test_a_bad_persona_file_writes_nothing(tmp_path):
    bad_persona_run(tmp_path)
    assert not (tmp_path / "data").exists()


def test_a_resume_refuses_a_persona_file_that_changed(tmp_path, capsys):
    """The persona file shapes every generation prompt, like the seeds: an edit since the
    run started would orphan the journaled answers, so the resume stops first."""
    personas = write(tmp_path, jsonl(A, {"id": "b", "description": "A beekeeper in Kyoto."}))
    args = ["generate", "--data-dir", str(tmp_path / "data"), "--model", "test-model",
            "--api-key", "k", "--dataset", "p", "--no-progress", "--seeds",
            "seeds/en_general.jsonl", "--num-instructions", "20"]
    with start_server() as server:
        code = main([*args, "--base-url", server.base_url, "--personas", str(personas),
                     "--max-requests", "2"])
        assert code == 3, capsys.readouterr().err  # stopped by the budget, resumable
        personas.write_text(jsonl(A, {"id": "b", "description": "A fisherman in Kochi."}),
                            encoding="utf-8")
        sent = server.stats()["requests_total"]
        capsys.readouterr()
        code = main(["generate", "--data-dir", str(tmp_path / "data"), "--dataset", "p",
                     "--resume", "--no-progress", "--max-requests", "50"])
        assert server.stats()["requests_total"] == sent
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"selfinstruct: error: {personas.resolve()}: changed since the run "
                           f"started")


# -- resume after SIGKILL at deterministic points ------------------------------------------


def crash_args(data_dir: Path, base_url: str, *extra: str) -> list[str]:
    return ["generate", "--dataset", "crash", "--data-dir", str(data_dir), "--base-url",
            base_url, "--model", "test-model", "--api-key", "k", "--no-progress", *extra]


def crash_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Train rows; a request id keeps only its request fingerprint (the server adds a serial
    number, which differs for a request the killed run had in flight and sent again)."""
    (version,) = sorted((data_dir / "crash").glob("v0*"))
    rows = train_rows(version)
    for row in rows:
        row["provenance"]["request_id"] = row["provenance"]["request_id"][:20]
    return rows


def kill_at(point: str, command: list[str], fifo: Path) -> None:
    """Run `command` until it stops at `point` (selfinstruct.interrupts.pause_point), then
    SIGKILL it: a deterministic moment, not a timed one."""
    kill_paused(command, point, fifo, dict(os.environ))


# Killed after some generation answers (their personas already picked and used), and before
# the instances of the first tasks. The reference and the resumed runs run in-process.
@pytest.mark.parametrize(("recipe", "point"), [("self-instruct", "after:bootstrap-round:2"),
                                               ("self-instruct", "before:instances-batch:1"),
                                               ("alpaca", "after:bootstrap-round:1")])
def test_resume_after_sigkill_gives_the_rows_of_an_uninterrupted_run(tmp_path, capsys, recipe,
                                                                     point):
    settings = ("--seeds", "seeds/ja_general.jsonl", "--recipe", recipe, "--personas", "ja",
                "--num-instructions", "30", "--seed", "21", "--concurrency", "4",
                "--max-retries", "0")
    with start_server(style="messy") as server:
        reference, killed = tmp_path / "reference", tmp_path / "killed"
        assert main(crash_args(reference, server.base_url, *settings)) == 0
        kill_at(point, [sys.executable, "-m", "selfinstruct",
                        *crash_args(killed, server.base_url, *settings)], tmp_path / "fifo")
        assert not list((killed / "crash").glob("v0*"))
        assert main(crash_args(killed, server.base_url, "--resume")) == 0, \
            capsys.readouterr().err
    rows = crash_rows(killed)
    assert rows == crash_rows(reference)
    assert len({r["provenance"]["persona_id"] for r in rows}) >= 2


def test_datasets_gives_the_persona_id_back(tmp_path, capsys):
    """The card's features carry provenance.persona_id, so `datasets.load_dataset` on a
    version returns each row's persona."""
    datasets = pytest.importorskip("datasets")
    with start_server() as server:
        version = generate(server, tmp_path / "data", capsys, "--recipe", "alpaca", "--seeds",
                           "seeds/en_general.jsonl", "--num-instructions", "10", "--seed", "4",
                           "--personas", "en")
    loaded = datasets.load_dataset(str(version), split="train", cache_dir=str(tmp_path / "c"))
    assert [r["provenance"]["persona_id"] for r in loaded.to_list()] == \
        [r["provenance"]["persona_id"] for r in train_rows(version)]
    assert all(r["provenance"]["persona_id"] for r in loaded.to_list())
