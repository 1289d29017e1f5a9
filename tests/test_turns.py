"""`--turns N`: multi-turn conversations end to end on the loopback server, their rows, exports,
validation and loading (the text rules of each turn: tests/test_turn_text.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.dataset import TRAIN_FILE, read_manifest, validate, write_version
from selfinstruct.dataset.schema import TRAIN_SCHEMA, as_loaded, check
from selfinstruct.export import export_version
from tests.dataset_samples import manifest, rejected_row, run_cli, train_row
from tests.servers.kinds import kind_turns
from tests.servers.openai_server import start_server
from tests.test_pipeline import generate, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
TURNS = 3
SEEDS = {"en": "seeds/en_general.jsonl", "ja": "seeds/ja_general.jsonl"}
# Reasons only a follow-up can be dropped for (the messy server writes each of them).
FOLLOWUP_REASONS = {"followup_ignores_conversation", "followup_is_answer", "copied_prompt",
                    "followup_repeats_conversation"}


def _args(recipe: str, lang: str, api: str, n: int = 8, seed: int = 1) -> list[str]:
    return ["--seeds", SEEDS[lang], "--recipe", recipe, "--api", api, "--num-instructions",
            str(n), "--dataset", "t", "--seed", str(seed), "--turns", str(TURNS)]


def _header(kind: str, lang: str) -> str:
    """The first line the test server recognises a turns prompt kind by."""
    return next(h for k, lg, h in kind_turns.HEADERS if (k, lg) == (kind, lang))


def _conversation_rows(version: Path) -> list[dict[str, Any]]:
    """Train rows, each checked to hold one whole conversation of TURNS user turns."""
    rows = read_jsonl(version / TRAIN_FILE)
    assert rows
    for row in rows:
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * TURNS, row["id"]
        assert all(m["content"].strip() for m in messages)
        first = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
        assert messages[0]["content"] == first and messages[1]["content"] == row["output"]
    return rows


def _check_accounting(version: Path) -> dict[str, Any]:
    """Every answer used (each request's, journaled or not) is accounted for once: read,
    unreadable or a failed request; and every drop the funnel counts is one rejected row of
    its stage with a detail (and no row is uncounted)."""
    manifest_ = read_manifest(version)
    rejected = read_jsonl(version / "rejected.jsonl")
    funnel = manifest_["funnel"]
    answers = funnel["answers"]
    used = sum(stage["requests"] + stage["cached"] for stage in manifest_["usage"].values())
    assert answers["in"] == used == answers["kept"] + sum(answers["drops"].values())
    unreadable = [r for r in rejected
                  if r["reason"] in ("unparseable_answer", "unreadable_verdict")]
    assert answers["drops"].get("unparseable", 0) == len(unreadable)
    assert answers["drops"].get("failed", 0) == sum(r["stage"] == "request" for r in rejected)
    for stage, entry in funnel.items():
        if stage != "answers":
            assert sum(entry["drops"].values()) == sum(r["stage"] == stage for r in rejected)
    assert {r["stage"] for r in rejected} <= set(funnel)
    assert all(r["detail"] for r in rejected)
    return manifest_


# -- end to end, through the CLI ---------------------------------------------------------------

@pytest.mark.parametrize(("recipe", "style", "lang", "api"), [
    ("self-instruct", "clean", "en", "chat"),
    ("self-instruct", "messy", "ja", "completions"),
    ("self-instruct", "messy", "en", "chat"),
    ("alpaca", "clean", "ja", "completions"),
    ("alpaca", "messy", "en", "completions"),
    ("alpaca", "messy", "ja", "chat"),
])
def test_turns_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture, recipe: str,
                          style: str, lang: str, api: str) -> None:
    with start_server(style=style) as server:
        version = generate(server, tmp_path, capsys, *_args(recipe, lang, api))
        bodies = [entry["body"] for entry in server.requests()]
    manifest_ = _check_accounting(version)
    rows = _conversation_rows(version)
    assert len({row["task_id"] for row in rows}) == len(rows) == 8  # one conversation a task
    assert manifest_["config"]["turns"] == TURNS
    stages = {f"turn{k}_{side}" for k in range(2, TURNS + 1) for side in ("user", "answer")}
    assert stages <= set(manifest_["usage"])
    funnel = manifest_["funnel"]["turns"]
    rejected = read_jsonl(version / "rejected.jsonl")
    turn_rows = [r for r in rejected if r["stage"] == "turns"]
    assert funnel["kept"] == len(rows)
    assert funnel["in"] == funnel["kept"] + len(turn_rows)
    for row in turn_rows:  # a dropped conversation names its turn
        if row["reason"] != "not_continued":
            assert row["detail"].startswith(("turn 2: ", "turn 3: ")), row
    if style == "messy":
        assert {r["reason"] for r in turn_rows} & FOLLOWUP_REASONS
    if api == "chat":  # later answers see the whole conversation as chat messages
        longest = max(len(body.get("messages", [])) for body in bodies)
        assert longest == 2 * TURNS - 1
    else:
        assert any(body.get("prompt", "").startswith(_header("continue", lang))
                   for body in bodies)


def test_a_bad_turn_drops_the_conversation_and_asks_nothing_more(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A conversation dropped at turn 2 sends no turn-3 request; its task is replaced."""
    with start_server(style="messy") as server:
        version = generate(server, tmp_path, capsys, *_args("self-instruct", "en", "chat"))
        bodies = [entry["body"] for entry in server.requests()]
    rejected = read_jsonl(version / "rejected.jsonl")
    dropped_at_2 = [r for r in rejected if r["stage"] == "turns"
                    and r["detail"].startswith("turn 2: ")]
    assert dropped_at_2
    turn3_prompts = [m["content"] for body in bodies for m in body.get("messages", [])[:1]
                     if m["content"].startswith(_header("followup", "en"))
                     and m["content"].count("### User") == 3]
    for row in dropped_at_2:
        first_turn = row["instruction"]
        assert not any(f"### User\n{first_turn}" in prompt for prompt in turn3_prompts), row
    manifest_ = read_manifest(version)
    assert manifest_["target"]["accepted"] == 8  # the run topped up for the lost tasks


# -- resume after SIGKILL -----------------------------------------------------------------------

def _command(base_url: str, data_dir: Path, recipe: str) -> list[str]:
    return [sys.executable, "-m", "selfinstruct", "generate", "--data-dir", str(data_dir),
            "--base-url", base_url, "--model", "test-model", "--no-progress",
            "--concurrency", "4", *_args(recipe, "en", "chat", n=10, seed=4)]


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
            "OPENAI_API_KEY": "k"}


def _without_request_ids(version: Path) -> list[dict[str, Any]]:
    """Train rows without the server's request ids (a per-server sequence number is part of
    them, so two servers give the same answer another id)."""
    rows = read_jsonl(version / TRAIN_FILE)
    for row in rows:
        row["provenance"].pop("request_id")
    return rows


@pytest.mark.parametrize("recipe", ["self-instruct", "alpaca"])
def test_resume_after_sigkill_at_turn_3_gives_the_same_rows(tmp_path: Path,
                                                             recipe: str) -> None:
    with start_server(style="messy") as server:
        subprocess.run(_command(server.base_url, tmp_path / "ref", recipe), env=_env(),
                       check=True, capture_output=True, cwd=ROOT)
        (reference,) = (tmp_path / "ref" / "t").glob("v*")
    with start_server(style="messy") as server:
        data_dir = tmp_path / "killed"
        with kind_turns.hold("followup", TURNS) as reached:
            process = subprocess.Popen(_command(server.base_url, data_dir, recipe), env=_env(),
                                       cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                # The run is now blocked on its first turn-3 follow-up, every answer of the
                # earlier turns journaled: kill it there.
                assert reached.wait(timeout=300), "the run never reached turn 3"
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
        assert not list((data_dir / "t").glob("v*"))
        resume = subprocess.run(
            [sys.executable, "-m", "selfinstruct", "generate", "--dataset", "t", "--data-dir",
             str(data_dir), "--resume", "--no-progress"],
            env=_env(), capture_output=True, text=True, cwd=ROOT)
        assert resume.returncode == 0, resume.stderr
        assert "resuming" in resume.stderr
        twice = {fp for fp, n in server.stats()["success_fingerprints"].items() if n > 1}
        resent = [e["body"] for e in server.requests() if e["fingerprint"] in twice]
    (version,) = (data_dir / "t").glob("v*")
    assert _without_request_ids(version) == _without_request_ids(reference)
    # Only the follow-ups held when the run was killed were asked again.
    for body in resent:
        prompt = body["messages"][0]["content"]
        assert prompt.startswith(_header("followup", "en")) and prompt.count("### User") == 3


# -- exports and loading ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def turns_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One --turns run (Japanese: non-ASCII must survive every format)."""
    from selfinstruct.cli import main

    data = tmp_path_factory.mktemp("turns")
    with start_server() as server:
        argv = ["generate", "--data-dir", str(data), "--base-url", server.base_url, "--model",
                "test-model", "--api-key", "k", "--no-progress",
                *_args("alpaca", "ja", "chat", n=6)]
        assert main(argv) == 0
    (version,) = (data / "t").glob("v*")
    return version


def test_validate_and_release_take_a_turns_version(turns_version: Path, tmp_path: Path) -> None:
    assert validate(turns_version) == []
    assert run_cli(["release", str(turns_version), "--output-dir", str(tmp_path / "dist")]) == 0
    assert list((tmp_path / "dist").iterdir())


def test_chat_exports_write_whole_conversations(turns_version: Path, tmp_path: Path) -> None:
    rows = _conversation_rows(turns_version)
    export_version(turns_version, "openai-chat", tmp_path / "chat.jsonl")
    export_version(turns_version, "sharegpt", tmp_path / "sharegpt.jsonl")
    export_version(turns_version, "alpaca", tmp_path / "alpaca.jsonl")
    chat = read_jsonl(tmp_path / "chat.jsonl")
    sharegpt = read_jsonl(tmp_path / "sharegpt.jsonl")
    alpaca = read_jsonl(tmp_path / "alpaca.jsonl")
    assert [r["messages"] for r in chat] == [row["messages"] for row in rows]
    roles = {"user": "human", "assistant": "gpt"}
    assert [r["conversations"] for r in sharegpt] == [
        [{"from": roles[m["role"]], "value": m["content"]} for m in row["messages"]]
        for row in rows]
    assert alpaca == [{k: row[k] for k in ("instruction", "input", "output")} for row in rows]
    assert "\\u" not in (tmp_path / "chat.jsonl").read_text(encoding="utf-8")


def test_datasets_gives_the_messages_column_back(turns_version: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from selfinstruct.dataset import load, train_features

    rows = read_jsonl(turns_version / TRAIN_FILE)
    ours = load(turns_version, cache_dir=tmp_path / "a")
    plain = datasets.load_dataset(str(turns_version), split="train",
                                  cache_dir=str(tmp_path / "b"))  # the card's dataset_info
    for loaded in (ours, plain):
        assert loaded.to_list() == [as_loaded(row, TRAIN_SCHEMA) for row in rows]
        assert loaded.features == train_features()


_PUBLISH_AND_LOAD = """
import json, sys
import datasets
from selfinstruct.hub import publish
publish(sys.argv[1], sys.argv[2])
print(json.dumps(datasets.load_dataset(sys.argv[2], split="train").to_list(), ensure_ascii=False))
"""


def test_the_hub_gives_the_messages_column_back(turns_version: Path, tmp_path: Path) -> None:
    """Published to the Hub stand-in, the card's features bring `messages` back as written."""
    pytest.importorskip("datasets")
    from tests.servers.hub_server import HubServer
    from tests.test_hub import SENTINEL, _client_env

    with HubServer(tmp_path / "hub", expected_token=SENTINEL) as hub:
        done = subprocess.run([sys.executable, "-c", _PUBLISH_AND_LOAD, str(turns_version),
                               "selfinstruct-tests/turns"], env=_client_env(tmp_path / "home", hub),
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert [row["messages"] for row in loaded] == \
        [row["messages"] for row in _conversation_rows(turns_version)]


def test_a_single_turn_row_loads_messages_as_none(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from selfinstruct.dataset import load

    folder = write_version(tmp_path / "demo", [train_row(0), train_row(1)], [rejected_row(0)],
                           manifest())
    assert [row["messages"] for row in load(folder, cache_dir=tmp_path / "c").to_list()] == \
        [None, None]


# -- the messages column: schema and validation ------------------------------------------------

def _row_with(messages: Any) -> dict[str, Any]:
    row = train_row(1)  # no input: the first user turn is the instruction
    row["messages"] = messages
    return row


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


GOOD = _turns(("user", "Summarize the text number 0"),
              ("assistant", "Output 1\nwith a second line"),
              ("user", 'And "second line"?'), ("assistant", "It is the last one."))


@pytest.mark.parametrize(("messages", "field", "problem"), [
    (GOOD[1:], "messages[0].role", "expected 'user' (turns alternate, starting with the user)"),
    (GOOD[:1] + GOOD[2:], "messages[1].role", "expected 'assistant'"),
    (GOOD[:3], "messages", "ends with a user turn that has no answer"),
    (GOOD[:1], "messages", "needs a user and an assistant turn"),
    ([*GOOD[:2], {"role": "user", "content": " "}, GOOD[3]], "messages[2].content",
     "empty message"),
    ([{"role": "user", "content": 3}, GOOD[1]], "messages[0].content", "expected string"),
    ([{"role": "user"}, GOOD[1]], "messages[0].content", "missing"),
    ("hello", "messages", "expected an array"),
    (_turns(("user", "another question"), ("assistant", "x")), "messages[0].content",
     "is not the row's instruction"),
    (_turns(("user", "Summarize the text number 0"), ("assistant", "x")), "messages[1].content",
     "is not the row's output"),
])
def test_bad_messages_are_one_clear_problem(messages: Any, field: str, problem: str) -> None:
    found = list(check(_row_with(messages), TRAIN_SCHEMA, "", True))
    assert len(found) == 1, found
    assert found[0][0] == field and problem in found[0][1], found


def test_good_or_absent_messages_pass() -> None:
    assert list(check(_row_with(GOOD), TRAIN_SCHEMA, "", True)) == []
    assert list(check(train_row(1), TRAIN_SCHEMA, "", True)) == []
    assert list(check(_row_with(None), TRAIN_SCHEMA, "", True)) == []


def test_validate_names_file_line_and_field(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match=r"row 1: field 'messages\[1\].role'"):
        write_version(tmp_path / "refused", [_row_with(GOOD[:1] + GOOD[2:])], [], manifest())
    folder = write_version(tmp_path / "demo", [train_row(0), _row_with(GOOD)], [], manifest())
    lines = (folder / TRAIN_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[1])
    row["messages"] = row["messages"][::-1]
    lines[1] = json.dumps(row, ensure_ascii=False) + "\n"
    (folder / TRAIN_FILE).write_text("".join(lines), encoding="utf-8")
    assert f"{folder / TRAIN_FILE}:2: field 'messages[0].role': expected 'user'" in \
        "\n".join(validate(folder))
    assert run_cli(["validate", str(folder)]) == 1
    assert "selfinstruct: error: " in capsys.readouterr().err
