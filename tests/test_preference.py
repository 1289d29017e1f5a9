"""Preference pairs (--preference): ranking rules, the version file, validate, DPO export, Hub.

End to end through the CLI on the loopback server: the server's respond kind answers each
response slot independently (kind_preference.py) and its pairwise judge has a known taste and
a 25 % position bias (kind_pairwise.py), so every kept pair can be checked against what the
judge prefers, and the bias must never decide a pair.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct._errors import InputError
from selfinstruct.cli import EXIT_BUDGET, main
from selfinstruct.config import build_config
from selfinstruct.dataset import write_version
from selfinstruct.dataset.validate_preference import check_preference
from selfinstruct.export_dpo import export_dpo
from selfinstruct.preference_file import PREFERENCE_FILE
from selfinstruct.preference_rank import Slot, rank, slots, spread
from selfinstruct.records import Instance, Task
from selfinstruct.run import open_run
from tests.dataset_samples import manifest, rejected_row, rewrite_manifest, train_row
from tests.hub_env import hub_client_env
from tests.servers.hub_server import HubServer
from tests.servers.kinds.kind_pairwise import answer_quality
from tests.servers.openai_server import start_server

ROOT = Path(__file__).resolve().parent.parent
PREFERENCE_STAGES = ("response_", "prefer_")


# -- the ranking rules (hand-computed) ---------------------------------------------------------

def test_two_responses_a_decided_comparison_is_the_pair() -> None:
    ranking = rank([0, 1], {(0, 1): "b"})
    assert (ranking.chosen, ranking.rejected) == (1, 0)
    assert ranking.scores == {0: 0.0, 1: 1.0}


def test_two_responses_a_tie_makes_no_pair() -> None:
    ranking = rank([0, 1], {(0, 1): "tie"})
    assert not ranking.paired and ranking.scores == {0: 0.5, 1: 0.5}
    assert "every comparison was a tie" in ranking.why


def test_three_responses_best_against_worst() -> None:
    # 2 beats 0 and 1, 1 beats 0: scores 0, 1, 2 -> chosen 2, rejected 0 (the widest gap).
    ranking = rank([0, 1, 2], {(0, 1): "b", (0, 2): "b", (1, 2): "b"})
    assert (ranking.chosen, ranking.rejected) == (2, 0)
    assert ranking.scores == {0: 0.0, 1: 1.0, 2: 2.0}


def test_three_responses_the_pair_needs_its_own_decided_comparison() -> None:
    # 0 beats 1 and 2, but 1 vs 2 is a tie: 0 (2) vs 2 (0.5) has gap 1.5 and 0 beat 2 itself.
    ranking = rank([0, 1, 2], {(0, 1): "a", (0, 2): "a", (1, 2): "tie"})
    assert (ranking.chosen, ranking.rejected) == (0, 1)  # equal gaps: first in slot order
    assert ranking.scores == {0: 2.0, 1: 0.5, 2: 0.5}
    # 0 beat 1, 1 beat 2, 0 vs 2 undecided: scores 1, 1, 0. The widest gap (0 over 2) was
    # never decided and 0 did not outscore 1, so the pair is 1 over 2.
    missing = rank([0, 1, 2], {(0, 1): "a", (1, 2): "a"})
    assert (missing.chosen, missing.rejected) == (1, 2)


def test_a_cycle_makes_no_pair() -> None:
    ranking = rank([0, 1, 2], {(0, 1): "a", (1, 2): "a", (0, 2): "b"})
    assert not ranking.paired and "cycle" in ranking.why


def test_slots_default_to_the_generating_model_at_spread_temperatures() -> None:
    assert spread(2) == [0.2, 1.0] and spread(3) == [0.2, 0.6, 1.0] and spread(1) == [0.7]
    assert slots(2, [], "gen") == [Slot("gen", 0.2), Slot("gen", 1.0)]
    assert slots(3, ["m1", "m2"], "gen") == [Slot("m1", 0.2), Slot("m2", 0.7),
                                             Slot("m1", 1.0)]


# -- stages and prices -------------------------------------------------------------------------

def test_stages_and_prices_of_other_models(tmp_path: Path) -> None:
    """Other response models and the judge model answer their stages and are priced at their
    own prices; the generating model's stages at the run's."""
    prices = {"test-model": {"input": 1.0, "output": 2.0},
              "second-model": {"input": 10.0, "output": 20.0},
              "judge-model": {"input": 100.0, "output": 200.0}}
    tasks = [Task(f"task-{i:06d}", f"Explain how tide pools number {i} form.", 1, "h", None, [],
                  None, instances=[Instance("", "They form at low tide.")]) for i in range(6)]
    with start_server() as server:
        config = build_config({"seeds": "seeds/en_general.jsonl", "dataset": "p",
                               "num_instructions": 5, "data_dir": str(tmp_path / "data"),
                               "base_url": server.base_url, "model": "test-model", "seed": 3,
                               "preference": True, "responses": 3,
                               "response_models": ["test-model", "second-model"],
                               "filters": {"judge_model": "judge-model"}, "prices": prices},
                              environ={})
        with open_run(config, api_key="k", warn=False) as gen:
            gen.tasks = tasks
            for stage in gen.feature_stages:
                gen.stage_batch(stage.name, tasks)
            names = [stage.name for stage in gen.feature_stages]
            models = dict(gen.dispatch.stage_models)
            usage = {name: gen.usage.stages[name] for name in names if name in gen.usage.stages}
            cost = gen.dispatch.cost()
    judged = [f"prefer_{i}_{j}_{o}" for i, j in ((0, 1), (0, 2), (1, 2)) for o in ("ab", "ba")]
    assert names == ["response_0", "response_1", "response_2", *judged, "preference"]
    assert {name: models[name] for name in names if name in models} == {
        "response_1": "second-model", **{name: "judge-model" for name in judged}}
    expected = sum((used.prompt_tokens * prices[models.get(name, "test-model")]["input"]
                    + used.completion_tokens * prices[models.get(name, "test-model")]["output"])
                   / 1e6 for name, used in usage.items())
    assert usage["prefer_0_1_ab"].prompt_tokens and cost == pytest.approx(expected)


# -- runs through the CLI ----------------------------------------------------------------------

def _generate(server: Any, data: Path, *extra: str, dataset: str = "pref",
              seeds: str = "seeds/en_general.jsonl") -> int:
    return main(["generate", "--seeds", seeds, "--num-instructions", "12", "--dataset", dataset,
                 "--data-dir", str(data), "--base-url", server.base_url, "--model", "test-model",
                 "--api-key", "k", "--seed", "7", "--no-progress", "--preference", *extra])


def _version(data: Path, dataset: str = "pref") -> Path:
    (version,) = sorted((data / dataset).glob("v*"))
    return version


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _manifest(version: Path) -> dict[str, Any]:
    return json.loads((version / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted run with --responses 2, and its server's request count."""
    data = tmp_path_factory.mktemp("pref") / "data"
    with start_server() as server:
        code = _generate(server, data, "--responses", "2")
        sent = server.stats()["successes_total"]
    assert code == 0
    return {"data": data, "version": _version(data), "sent": sent}


def test_preference_rows_are_the_judges_decided_pairs(run: dict[str, Any]) -> None:
    version = run["version"]
    rows = _rows(version / PREFERENCE_FILE)
    found = _manifest(version)
    summary = found["preference"]
    assert rows and len(rows) == summary["pairs"] == found["counts"]["preference"]
    assert found["files"][PREFERENCE_FILE]["rows"] == len(rows)
    assert summary["prompts"] == summary["judged"] + summary["unjudged"]
    assert summary["judged"] == summary["pairs"] + summary["ties"]
    assert summary["slots"] == [{"model": "test-model", "temperature": 0.2},
                                {"model": "test-model", "temperature": 1.0}]
    train = _rows(version / "train.jsonl")
    first_input: dict[str, str] = {}
    for row in train:
        first_input.setdefault(row["task_id"], row["input"])
    assert summary["prompts"] == len(first_input)  # every usable task was given responses
    for row in rows:
        assert row["input"] == first_input[row["task_id"]]
        assert row["prompt"] == (f"{row['instruction']}\n\n{row['input']}" if row["input"]
                                 else row["instruction"])
        assert row["chosen"] != row["rejected"]
        assert (row["chosen_score"], row["rejected_score"]) == (1.0, 0.0)
        # The server's judge prefers the better answer; its position bias never decides a pair.
        assert answer_quality(row["chosen"], row["instruction"]) > \
            answer_quality(row["rejected"], row["instruction"])
        assert row["provenance"]["same_model"] is True
        assert {row["provenance"]["chosen_temperature"],
                row["provenance"]["rejected_temperature"]} == {0.2, 1.0}
        assert row["judge_model"] == "test-model" and row["rationale"].startswith("(A = ")


def test_every_prompt_without_a_pair_has_a_rejected_row(run: dict[str, Any]) -> None:
    version = run["version"]
    found = _manifest(version)
    funnel = found["funnel"]["preference"]
    summary = found["preference"]
    assert funnel["in"] == summary["prompts"] and funnel["kept"] == summary["pairs"]
    dropped = [r for r in _rows(version / "rejected.jsonl") if r["stage"] == "preference"]
    assert len(dropped) == summary["ties"] + summary["unjudged"] > 0
    assert {r["reason"] for r in dropped} <= {"preference_tie", "too_few_responses",
                                              "not_judged"}
    ties = [r for r in dropped if r["reason"] == "preference_tie"]
    assert len(ties) == summary["ties"]
    assert all("0 vs 1: " in r["detail"] for r in ties)
    # The server's judge names the first answer for 25 % of prompts: the swap turns that into
    # a tie instead of a pair (one order alone would have let the bias pick the winner).
    assert any("the orders disagree (position bias)" in r["detail"] for r in ties)
    # Both orders of every pair were asked: the usage shows the two judge stages alike.
    usage = found["usage"]
    assert usage["prefer_0_1_ab"]["requests"] == usage["prefer_0_1_ba"]["requests"] > 0
    assert usage["response_0"]["requests"] == usage["response_1"]["requests"] == \
        summary["prompts"]


def test_validate_catches_a_tampered_preference_file(run: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "pref" / run["version"].name
    shutil.copytree(run["version"], copy)
    assert main(["validate", str(copy)]) == 0
    path = copy / PREFERENCE_FILE
    rows = _rows(path)
    rows[0]["rejected"] = rows[0]["chosen"]  # a pair that teaches nothing
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{PREFERENCE_FILE}: sha256 does not match" in err
    # A forger who also rewrites the manifest's hash is caught by the row checks.
    import hashlib

    data = path.read_bytes()

    def resign(found: dict[str, Any]) -> None:
        found["files"][PREFERENCE_FILE].update(sha256=hashlib.sha256(data).hexdigest(),
                                               bytes=len(data))

    rewrite_manifest(copy, resign)
    problems = check_preference(copy, _manifest(copy))
    assert problems == [f"{path}:1: field 'rejected': is the same text as chosen: not a "
                        "preference pair"]
    assert main(["validate", str(copy)]) == 1
    assert "is the same text as chosen" in capsys.readouterr().err


def test_dpo_export_round_trips_through_datasets(run: dict[str, Any], tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = _rows(run["version"] / PREFERENCE_FILE)
    conversational, standard = tmp_path / "dpo.jsonl", tmp_path / "dpo_standard.jsonl"
    assert main(["export", str(run["version"]), "--format", "dpo", "--output",
                 str(conversational)]) == 0
    assert export_dpo(run["version"], "dpo-standard", standard) == len(rows)
    cache = str(tmp_path / "cache")
    loaded = datasets.load_dataset("json", data_files=str(conversational), split="train",
                                   cache_dir=cache)
    assert loaded.column_names == ["prompt", "chosen", "rejected"]
    assert loaded.to_list() == [
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "chosen": [{"role": "assistant", "content": r["chosen"]}],
         "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    plain = datasets.load_dataset("json", data_files=str(standard), split="train",
                                  cache_dir=cache)
    assert plain.to_list() == [{k: r[k] for k in ("prompt", "chosen", "rejected")}
                               for r in rows]


def test_the_store_checks_preference_rows_and_names(run: dict[str, Any], tmp_path: Path) -> None:
    row = _rows(run["version"] / PREFERENCE_FILE)[0]
    args = (tmp_path / "d", [train_row(0)], [rejected_row(0)], manifest())
    with pytest.raises(ValueError, match=r"preference\.jsonl row 2: field 'chosen_score': "
                                         r"expected float64, got string"):
        write_version(*args, data_files={PREFERENCE_FILE: [row, {**row, "chosen_score": "1"}]})
    with pytest.raises(ValueError, match=r"data file 'pairs\.jsonl': not one of"):
        write_version(*args, data_files={"pairs.jsonl": [row]})
    assert not list((tmp_path / "d").iterdir())  # nothing left behind
    empty = write_version(*args, data_files={PREFERENCE_FILE: []})
    assert (empty / PREFERENCE_FILE).read_bytes() == b""
    assert _manifest(empty)["counts"]["preference"] == 0
    assert check_preference(empty, _manifest(empty)) == []
    # No pair, no "preference" config: load_dataset would fail on an empty split.
    assert "config_name: preference" not in (empty / "README.md").read_text(encoding="utf-8")
    assert "config_name: preference" in (run["version"] / "README.md").read_text(
        encoding="utf-8")


def test_a_version_without_pairs_cannot_be_exported_as_dpo(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "plain", [train_row(0)], [rejected_row(0)], manifest())
    with pytest.raises(InputError, match=r"no preference\.jsonl in this version"):
        export_dpo(folder, "dpo", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_resume_pays_nothing_twice(run: dict[str, Any], tmp_path: Path) -> None:
    usage = _manifest(run["version"])["usage"]
    total = sum(stage["requests"] for stage in usage.values())
    paid_for_pairs = sum(stage["requests"] for name, stage in usage.items()
                         if name.startswith(PREFERENCE_STAGES))
    data = tmp_path / "data"
    with start_server() as server:
        # Stop halfway through the preference requests: a deterministic point (requests are
        # counted as issued), then resume without the budget.
        stop_at = total - paid_for_pairs // 2
        assert _generate(server, data, "--responses", "2", "--max-requests",
                         str(stop_at)) == EXIT_BUDGET
        assert main(["generate", "--resume", "--dataset", "pref", "--data-dir", str(data),
                     "--base-url", server.base_url, "--api-key", "k", "--no-progress",
                     "--max-requests", "100000"]) == 0
        sent = server.stats()["successes_total"]
    assert sent == run["sent"] == total
    # Same pairs; only the server's request ids differ (it numbers requests as they arrive).
    assert _without_request_ids(_version(data)) == _without_request_ids(run["version"])


def _without_request_ids(version: Path) -> list[dict[str, Any]]:
    rows = _rows(version / PREFERENCE_FILE)
    for row in rows:
        assert row["provenance"].pop("chosen_request_id").startswith("req_")
        assert row["provenance"].pop("rejected_request_id").startswith("req_")
    return rows


def test_messy_japanese_three_responses_account_for_every_answer(tmp_path: Path) -> None:
    """Two response models and a judge model of its own; every answer accounted for."""
    data = tmp_path / "data"
    with start_server(style="messy") as server:
        assert _generate(server, data, "--responses", "3", "--response-models",
                         "test-model,second-model", "--judge-model", "judge-model",
                         dataset="prefja", seeds="seeds/ja_general.jsonl") == 0
    version = _version(data, "prefja")
    found = _manifest(version)
    assert found["preference"]["slots"] == [
        {"model": "test-model", "temperature": 0.2}, {"model": "second-model",
                                                      "temperature": 0.7},
        {"model": "test-model", "temperature": 1.0}]
    assert found["preference"]["judge_model"] == "judge-model"
    answers = found["funnel"]["answers"]
    assert answers["in"] == answers["kept"] + sum(answers["drops"].values())
    rejected = _rows(version / "rejected.jsonl")
    unread = [r for r in rejected if r["stage"] == "parse"
              and r["detail"].startswith(PREFERENCE_STAGES)]
    assert unread  # messy judges and responders write unreadable answers; each has its row
    assert all(r["reason"] == "unparseable_answer" for r in unread)
    rows = _rows(version / PREFERENCE_FILE)
    assert len(rows) == found["preference"]["pairs"] > 0
    assert check_preference(version, found) == []
    assert any(row["chosen_score"] == 2.0 for row in rows)  # a response that beat both others
    assert {row["judge_model"] for row in rows} == {"judge-model"}
    assert any(not row["provenance"]["same_model"] for row in rows)
    for row in rows:
        assert row["provenance"]["same_model"] == (row["chosen_model"] == row["rejected_model"])
    for row in rows:
        assert answer_quality(row["chosen"], row["instruction"]) > \
            answer_quality(row["rejected"], row["instruction"])


# -- the Hub: `load_dataset(repo, "preference")` ---------------------------------------------

_HUB_CLIENT = textwrap.dedent(
    """
    import json, sys
    import datasets
    from selfinstruct.hub import publish

    version, repo = sys.argv[1:3]
    publish(version, repo)
    pairs = datasets.load_dataset(repo, "preference", split="train")
    train = datasets.load_dataset(repo, split="train")
    print(json.dumps({"pairs": pairs.to_list(), "train": len(train)}, ensure_ascii=False))
    """
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "hub", expected_token="hf_dummy") as server:
        yield server


def test_the_hub_card_publishes_a_preference_config(run: dict[str, Any], hub: HubServer,
                                                    tmp_path: Path) -> None:
    env = hub_client_env(hub.url, "hf_dummy", tmp_path / "hf_home")
    done = subprocess.run([sys.executable, "-c", _HUB_CLIENT, str(run["version"]),
                           "selfinstruct-tests/pref"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded["pairs"] == _rows(run["version"] / PREFERENCE_FILE)
    assert loaded["train"] == _manifest(run["version"])["counts"]["train"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--response-models", "m1,m2"],
     "--response-models needs --preference (they write its responses)"),
    (["--preference", "--responses", "2", "--response-models", "m1,m2,m3"],
     "--response-models names 3 models but --responses is 2: each model needs a response "
     "slot"),
])
def test_bad_response_models_are_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
        message: str) -> None:
    with start_server() as server:
        code = main(["generate", "--seeds", "en_general", "--dataset", "p",
                     "--num-instructions", "3", "--data-dir", str(tmp_path / "data"),
                     "--base-url", server.base_url, "--model", "test-model", "--no-progress",
                     *extra])
        assert server.stats()["requests_total"] == 0
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"selfinstruct: error: {message}"]
    assert not (tmp_path / "data").exists()
