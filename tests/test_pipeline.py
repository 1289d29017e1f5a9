"""The pipeline end to end through the real `openai` client and the loopback test server.

Dedup correctness is checked against independent references: rouge_score itself for English,
and a plain LCS over the Japanese tokenisation for Japanese. Bookkeeping is checked by
accounting: every parsed candidate is either accepted or in rejected.jsonl with a reason.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rapidfuzz.distance import LCSseq
from rouge_score import rouge_scorer

from selfinstruct.cli import main
from selfinstruct.config import build_config
from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import ParsedInstance, parse_numbered_list
from selfinstruct.pipeline import Generator, run
from selfinstruct.prompts import sha256_text
from selfinstruct.recipes import RECIPES
from selfinstruct.recipes.base import NoLaterStages
from selfinstruct.records import Task
from selfinstruct.run import open_run, resume_config
from selfinstruct.similarity import tokenize
from tests.servers.openai_server import start_server

SENTINEL_KEY = "sk-SENTINEL0123456789abcdefSECRET"


def generate(server, tmp_path: Path, capsys, *args: str) -> Path:
    argv = [
        "generate",
        "--data-dir",
        str(tmp_path / "data"),
        "--base-url",
        server.base_url,
        "--model",
        "test-model",
        "--api-key",
        SENTINEL_KEY,
        "--no-progress",
        *args,
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    path = Path(out.out.strip().splitlines()[-1])  # the last stdout line is the version path
    assert path.is_dir()
    assert SENTINEL_KEY not in out.out + out.err
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def seed_instructions(path: str) -> list[str]:
    return [
        " ".join(json.loads(line)["instruction"].split()).rstrip(":")
        for line in Path(path).read_text(encoding="utf-8").splitlines()
    ]


def accepted_instructions(version: Path) -> list[str]:
    seen: dict[str, None] = {}
    for row in read_jsonl(version / "train.jsonl"):
        seen.setdefault(row["task_id"] + "\0" + row["instruction"])
    return [key.split("\0", 1)[1] for key in seen]


def check_accounting(version: Path) -> dict[str, Any]:
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    rejected = read_jsonl(version / "rejected.jsonl")
    funnel = manifest["funnel"]
    for row in rejected:
        assert row["reason"], row
        assert row["stage"] in funnel or row["stage"] == "request"
    # Every answer used is read, unreadable (a parse row) or a failed request (a request row).
    answers = funnel["answers"]
    assert answers["in"] == answers["kept"] + sum(answers["drops"].values())
    failed = [r for r in rejected if r["stage"] == "request"]
    unreadable = [r for r in rejected if r["reason"] == "unparseable_answer"]
    assert answers["drops"].get("failed", 0) == len(failed)
    assert answers["drops"].get("unparseable", 0) == len(unreadable)
    # Every drop counted in the funnel is a row of rejected.jsonl and vice versa.
    drops = sum(sum(entry["drops"].values()) for stage, entry in funnel.items()
                if stage != "answers")
    counted = [r for r in rejected if r["stage"] != "classify"]
    assert drops - sum(funnel.get("classify", {}).get("drops", {}).values()) == len(counted)
    # Every parsed candidate instruction is either accepted or rejected with a reason.
    candidate_stages = ("parse", "filter", "target", "novelty")
    rejected_candidates = [r for r in rejected if r["stage"] in candidate_stages]
    accepted = manifest["target"]["accepted_instructions"]
    assert funnel["parse"]["in"] == accepted + len(rejected_candidates)
    # Every rejected row says what was wrong.
    assert all(row["detail"] for row in rejected), [r for r in rejected if not r["detail"]][:3]
    return manifest


def test_english_200_instructions_dedup_matches_rouge_score(openai_server, tmp_path, capsys):
    version = generate(
        openai_server,
        tmp_path,
        capsys,
        "--seeds",
        "seeds/en_general.jsonl",
        "--num-instructions",
        "200",
        "--dataset",
        "en",
        "--seed",
        "7",
    )
    manifest = check_accounting(version)
    target = manifest["target"]
    assert (target["accepted"], target["reached"], target["stop_reason"]) == (
        200, True, "target reached")
    assert target["rounds"] >= 2
    accepted = accepted_instructions(version)
    assert len(accepted) == len(set(accepted)) >= 195  # a task may lose all its instances
    # Exhaustive reference check: each accepted instruction against seeds + earlier ones.
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = seed_instructions("seeds/en_general.jsonl")
    for text in accepted:
        worst = max(scorer.score(text, other)["rougeL"].fmeasure for other in pool)
        assert worst <= 0.7, (text, worst)
        pool.append(text)
    # And each novelty rejection really was too similar to something.
    rejected = read_jsonl(version / "rejected.jsonl")
    too_similar = [r for r in rejected if r["reason"] == "too_similar"]
    assert too_similar
    for row in too_similar[:40]:
        neighbour = row["detail"].split(" vs ", 1)[1][1:-1]
        assert scorer.score(neighbour, row["instruction"])["rougeL"].fmeasure > 0.7
    rows = read_jsonl(version / "train.jsonl")
    assert {r["is_classification"] for r in rows} == {True, False}
    # The report is part of the immutable version: listed in the manifest, checked by validate.
    from selfinstruct.dataset import validate

    assert (version / "report" / "report.html").is_file()
    assert "report/funnel.png" in manifest["files"] and validate(version) == []
    assert all(len(r["provenance"]["most_similar"]) == 10 for r in rows)
    assert all(len(r["provenance"]["prompt_hash"]) == 64 for r in rows)


def japanese_rouge(a: str, b: str) -> float:
    ta, tb = tokenize(a, "ja"), tokenize(b, "ja")
    if not ta or not tb:
        return 0.0
    lcs = LCSseq.similarity(ta, tb)
    p, r = lcs / len(tb), lcs / len(ta)
    return 0.0 if lcs == 0 else 2 * p * r / (p + r)


def test_japanese_100_instructions_dedup_is_character_aware(openai_server, tmp_path, capsys):
    version = generate(
        openai_server,
        tmp_path,
        capsys,
        "--seeds",
        "seeds/ja_general.jsonl",
        "--num-instructions",
        "100",
        "--dataset",
        "ja",
        "--seed",
        "7",
    )
    manifest = check_accounting(version)
    assert manifest["language"] == "ja" and manifest["target"]["accepted"] == 100
    threshold = manifest["config"]["similarity_threshold"]
    accepted = accepted_instructions(version)
    pool = seed_instructions("seeds/ja_general.jsonl")
    for text in accepted:
        assert max(japanese_rouge(text, other) for other in pool) <= threshold, text
        pool.append(text)
    rejected = read_jsonl(version / "rejected.jsonl")
    assert any(r["reason"] == "too_similar" for r in rejected)
    # Japanese-specific filters ran: no Japanese candidate was dropped for word counts.
    assert not any(r["reason"] == "starts_with_non_ascii" for r in rejected)
    text = (version / "train.jsonl").read_text(encoding="utf-8")
    assert "\\u" not in text and "。" in text


@pytest.mark.parametrize("seeds", ["seeds/en_general.jsonl", "seeds/ja_general.jsonl"])
@pytest.mark.parametrize("recipe", ["self-instruct", "alpaca"])
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_every_recipe_api_and_language(openai_server, tmp_path, capsys, seeds, recipe, api):
    version = generate(
        openai_server,
        tmp_path,
        capsys,
        "--seeds",
        seeds,
        "--recipe",
        recipe,
        "--api",
        api,
        "--num-instructions",
        "25",
        "--dataset",
        "d",
        "--seed",
        "1",
    )
    manifest = check_accounting(version)
    assert (manifest["recipe"], manifest["api"]) == (recipe, api)
    assert manifest["target"]["accepted"] == 25
    rows = read_jsonl(version / "train.jsonl")
    assert rows and all(r["output"] for r in rows)
    if recipe == "alpaca":
        assert all(r["is_classification"] is None for r in rows)
    stats = openai_server.stats()
    endpoint = "/v1/chat/completions" if api == "chat" else "/v1/completions"
    assert set(stats["requests_by_endpoint"]) == {endpoint}


def test_secret_never_reaches_any_file(openai_server, tmp_path, capsys):
    generate(
        openai_server,
        tmp_path,
        capsys,
        "--seeds",
        "seeds/en_general.jsonl",
        "--num-instructions",
        "10",
        "--dataset",
        "s",
    )
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes(), path


def config_for(server, tmp_path: Path, n: int, seed: int = 5):
    return build_config(
        {
            "seeds": "seeds/en_general.jsonl",
            "dataset": "r",
            "num_instructions": n,
            "data_dir": str(tmp_path / "data"),
            "base_url": server.base_url,
            "model": "test-model",
            "seed": seed,
        },
        environ={},
    )


class Interrupt(Exception):
    pass


def test_seed_makes_runs_reproducible_and_resume_pays_no_request_twice(tmp_path):

    def rows(version: str) -> list[tuple[str, str, str]]:
        return [
            (r["instruction"], r["input"], r["output"])
            for r in read_jsonl(Path(version) / "train.jsonl")
        ]

    with start_server() as server, \
            open_run(config_for(server, tmp_path / "a", 150), api_key="k", warn=False) as gen:
        reference = rows(run(gen))

    with start_server() as server:

        def stop_after_three_rounds(gen: Generator, stage: str) -> None:
            if stage == "bootstrap" and gen.round == 3:
                raise Interrupt

        with (
            pytest.raises(Interrupt),
            open_run(config_for(server, tmp_path / "b", 150), api_key="k", warn=False) as gen,
        ):
            gen.on_progress = stop_after_three_rounds
            run(gen)
        before = server.stats()["successes_total"]
        # Three rounds used, plus up to 8 requests that were in flight when it stopped:
        # those were settled into the journal before the run closed.
        assert 3 * 8 <= before <= 4 * 8

        config, run_dir = resume_config(tmp_path / "b" / "data", "r", None, {})
        with open_run(config, api_key="k", run_dir=run_dir, warn=False) as gen:
            assert gen.journal.cached_answers == before
            resumed = rows(run(gen))
        stats = server.stats()
        assert stats["max_success_count"] == 1  # no answered request was sent again
    assert resumed == reference


def test_judge_consistency_and_pii_through_the_cli(openai_server, tmp_path, capsys):
    version = generate(openai_server, tmp_path, capsys, "--seeds", "seeds/en_general.jsonl",
                       "--num-instructions", "60", "--dataset", "q", "--seed", "3",
                       "--judge-model", "test-model", "--judge-min-score", "3",
                       "--consistency", "--pii", "mask")
    manifest = check_accounting(version)
    funnel = manifest["funnel"]
    assert funnel["judge"]["drops"].get("low_judge_score", 0) > 0
    assert set(funnel["judge"]["drops"]) <= {"low_judge_score"}
    assert funnel["consistency"]["in"] > 0
    assert set(funnel["consistency"]["drops"]) <= {"label_disagreement"}
    assert manifest["config"]["filters"]["pii"] == "mask"
    rows = read_jsonl(version / "train.jsonl")
    assert rows and all(3 <= r["provenance"]["judge_clarity"] <= 5
                        and 3 <= r["provenance"]["judge_correctness"] <= 5 for r in rows)
    # The judge and consistency answers were requested once each and journaled.
    assert manifest["usage"]["judge"]["requests"] == funnel["judge"]["in"]
    assert openai_server.stats()["max_success_count"] == 1


class DirectAnswers(NoLaterStages):
    """A recipe written only for this test: instructions from a numbered list, and one
    instance per task that is the model's direct answer (a later stage the engine runs)."""

    name = "direct-answers"
    stages = ("instances",)
    # Its own template and stage, declared here: nothing outside the recipe names them.
    templates: ClassVar[dict[str, dict[str, Any]]] = {
        "direct_list": {"instructions": ["Name a fruit.", "Sort the numbers."]}}
    max_tokens: ClassVar[dict[str, tuple[int, int]]] = {"direct": (900, 300)}

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def generation_request(self, nonce: str) -> tuple[Request, int]:
        engine = self.engine
        shown = engine.rng.sample(engine.seed_texts, 8)
        prompt = engine.prompts.render("direct_list", instructions=shown)
        params = engine.dispatch.params("direct", temperature=0.7, stop=["\n17."])
        return engine.dispatch.request("direct", prompt, params, nonce), len(shown) + 1

    def read_generation(self, item: Any, completion: Completion) -> None:
        engine = self.engine
        engine.funnel.answer(None)  # the request-level line: this answer was read
        for parsed in parse_numbered_list(completion.text or "", item.context,
                                          continuation=False, truncated=False):
            engine.gate.consider(parsed.text, parsed.reason, parsed.detail,
                                 sha256_text(item.request.prompt), completion.request_id)

    def stage_request(self, stage: str, task: Task) -> Request:
        prompt = self.engine.prompts.render("answer", instruction=task.instruction)
        params = self.engine.dispatch.params("answer", temperature=0.0)
        return self.engine.dispatch.request("instances", prompt, params, f"answer-{task.id}")

    def read_stage(self, stage: str, task: Task, request: Request,
                   completion: Completion) -> None:
        self.engine.funnel.answer(None)
        self.engine.gate.keep_instances(task, [ParsedInstance("", completion.text or "")])


def test_a_new_recipe_is_a_class_and_a_registry_line(openai_server, tmp_path, monkeypatch):
    """The engine drives a recipe it has never seen: windows, gate, instance checks, output."""
    monkeypatch.setitem(RECIPES, DirectAnswers.name, DirectAnswers)
    prompts = tmp_path / "prompts"
    shutil.copytree("prompts", prompts)
    # The recipe's own template (here worded like bootstrap.j2, which the test server answers).
    shutil.copy(prompts / "en" / "bootstrap.j2", prompts / "en" / "direct_list.j2")
    config = dataclasses.replace(config_for(openai_server, tmp_path, 12), recipe="direct-answers",
                                 prompts_dir=prompts,
                                 max_rounds=20)  # a broken engine ends, empty, instead of looping
    with open_run(config, api_key="k", warn=False) as gen:
        assert gen.dispatch.params("direct")["max_tokens"] == 900  # the recipe's own default
        version = Path(run(gen))
    rows = read_jsonl(version / "train.jsonl")
    manifest = check_accounting(version)
    assert manifest["recipe"] == "direct-answers" and manifest["target"]["accepted"] == 12
    assert len({r["task_id"] for r in rows}) == 12 and all(r["output"] for r in rows)
    assert "classify" not in manifest["funnel"] and manifest["usage"]["direct"]["requests"]
    assert "direct_list" in manifest["prompts"]  # its template is hashed like the shared ones
    # one direct answer per accepted task, asked through the engine's instance window
    assert manifest["usage"]["instances"]["requests"] == manifest["target"][
        "accepted_instructions"]


def test_recipe_registry_names_match_their_classes():
    """Each registry line names its class by import path: it must resolve to that recipe."""
    from selfinstruct.recipes import recipe_class

    for name in RECIPES:
        assert recipe_class(name).name == name
