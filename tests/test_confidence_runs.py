"""``generate --confidence`` end to end through the CLI: on the loopback test server (chat and
completions, en and ja), against an endpoint that sends no log-probs, across a resume, and
with the real embedded model.

The messy test server writes deliberately bad instance answers (refusals, loops, the other
language) with low token log-probs (tests/servers/logprobs.py) and says which answers it
spoiled (``RunningServer.offered()`` shapes), so a test can check that ``min_confidence``
drops exactly those.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.cli import EXIT_BUDGET, main
from tests.servers.openai_server import detect_prompt, start_server

ROOT = Path(__file__).resolve().parent.parent
DETAIL = re.compile(r"^confidence 0\.\d{4} < min_confidence 0\.6 \(mean log-prob -\d+\.\d{4}, "
                    r"min -\d+\.\d{4}, \d+% of \d+ tokens below p=0\.1\)$")
# Instance defects the server writes with low log-probs, and the ones it does not
# (a PII output is fluent text: a confident model writes it too).
LOW_DEFECTS = {"instance:refusal_output", "instance:repetition_output",
               "instance:wrong_language_output"}
FIGURES = ("confidence", "logprob_mean", "logprob_min", "logprob_low_share", "logprob_tokens")


def generate(server: Any, data: Path, *extra: str, seeds: str = "seeds/en_general.jsonl",
             dataset: str = "c", n: str = "40") -> int:
    return main(["generate", "--seeds", seeds, "--dataset", dataset, "--num-instructions", n,
                 "--data-dir", str(data), "--base-url", server.base_url, "--seed", "5",
                 "--no-progress", *extra])


def read_version(capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    captured = capsys.readouterr()
    return Path(captured.out.strip().splitlines()[-1]), captured.err


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def min_confidence_config(tmp_path: Path, value: float) -> str:
    path = tmp_path / "run.toml"
    path.write_text(f"[filters]\nmin_confidence = {value}\n")
    return str(path)


def prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body["prompt"])


@pytest.mark.parametrize(("api", "seeds"), [("chat", "seeds/en_general.jsonl"),
                                            ("completions", "seeds/ja_general.jsonl")])
def test_low_confidence_drops_the_servers_bad_answers(
        api: str, seeds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = min_confidence_config(tmp_path, 0.6)
    with start_server(style="messy") as server:
        assert generate(server, tmp_path, "--api", api, "--model", "test-model",
                        "--confidence", "--config", config, seeds=seeds) == 0
        offered = {o["id"]: o for o in server.offered()}
        bodies = [r["body"] for r in server.requests()]
    version, err = read_version(capsys)
    rows, rejected = jsonl(version / "train.jsonl"), jsonl(version / "rejected.jsonl")

    # Only the answers that become outputs asked for log-probs, in each API's own words.
    asked = {"chat": {"logprobs": True, "top_logprobs": 0}, "completions": {"logprobs": 1}}[api]
    for body in bodies:
        kind, _ = detect_prompt(prompt_of(body))
        wanted = kind in ("instances_input_first", "instances_output_first")
        assert all(body.get(k) == v for k, v in asked.items()) == wanted, kind
        assert wanted or "logprobs" not in body

    # Kept rows carry the figures of their answer, consistent with each other.
    assert rows and "returned no token log-probabilities" not in err
    for row in rows:
        figures = {k: row["provenance"][k] for k in FIGURES}
        assert figures["confidence"] >= 0.6 and figures["logprob_tokens"] > 0
        assert abs(figures["confidence"] - math.exp(figures["logprob_mean"])) < 1e-4
        assert figures["logprob_min"] <= figures["logprob_mean"] < 0
        assert 0 <= figures["logprob_low_share"] <= 1

    # The drops: instance_filter rows with the figures in words, of deliberately bad answers.
    low = [r for r in rejected if r["reason"] == "low_confidence"]
    assert low, "the seed was chosen so that the server spoils some instance answers"
    for row in low:
        assert row["stage"] == "instance_filter" and DETAIL.match(row["detail"]), row["detail"]
        shapes = set(offered[row["request_id"]]["shapes"])
        assert any(s.startswith("instance:") and s != "instance:pii_output" for s in shapes)
    # ... and every answer the server spoiled with a refusal, a loop or the other language
    # that reached the gate was dropped, none kept.
    read = {r["provenance"]["request_id"] for r in rows} | {r["request_id"] for r in low}
    spoiled = {i for i in read if LOW_DEFECTS & set(offered[i]["shapes"])}
    assert spoiled and spoiled <= {r["request_id"] for r in low}
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["funnel"]["instance_filter"]["drops"]["low_confidence"] == len(low)


@pytest.mark.parametrize("model", ["test-model-no-logprobs",  # ignores the parameter
                                   "test-model-refuses-logprobs"])  # answers it with a 400
def test_an_endpoint_without_logprobs_is_unavailable_once_and_drops_nothing(
        model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = min_confidence_config(tmp_path, 0.99)  # would drop everything if scored
    with start_server(style="messy") as server:
        assert generate(server, tmp_path, "--model", model, "--confidence", "--config", config,
                        n="12") == 0
    version, err = read_version(capsys)
    assert err.count("returned no token log-probabilities") == 1
    assert f"selfinstruct: warning: --confidence: model '{model}'" in err
    rows = jsonl(version / "train.jsonl")
    assert rows and all(row["provenance"][k] is None for row in rows for k in FIGURES)
    rejected = jsonl(version / "rejected.jsonl")
    assert not [r for r in rejected if r["reason"] in ("low_confidence", "http_400")]
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["confidence"]["status"] == "unavailable"


def test_a_resume_replays_the_figures_identically(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Clean style (no failed answers, which a resume sends again by design), and a threshold
    inside its confidence range so that the replay must also drop the same answers."""
    config = min_confidence_config(tmp_path, 0.75)
    flags = ("--model", "test-model", "--confidence", "--config", config)
    with start_server() as server:
        assert generate(server, tmp_path / "whole", *flags, n="20") == 0
    whole, _ = read_version(capsys)
    with start_server() as server:
        assert generate(server, tmp_path / "split", *flags, "--max-requests", "30",
                        n="20") == EXIT_BUDGET
        capsys.readouterr()
        assert main(["generate", "--dataset", "c", "--data-dir", str(tmp_path / "split"),
                     "--resume", "--no-progress", "--max-requests", "1000"]) == 0
        assert server.stats()["max_success_count"] == 1  # no answer was paid for twice
    resumed, _ = read_version(capsys)
    journal = next((tmp_path / "split" / "c" / ".runs").glob("*/journal.jsonl"))
    assert '"logprobs": [-' in journal.read_text(encoding="utf-8")

    def figures(version: Path, name: str) -> list[Any]:
        rows = jsonl(version / name)
        return [(r.get("id"), r.get("output"), r.get("detail"),
                 [r.get("provenance", {}).get(k) for k in FIGURES]) for r in rows]

    assert figures(resumed, "train.jsonl") == figures(whole, "train.jsonl")
    low = [r for r in figures(resumed, "rejected.jsonl") if r[2] and "min_confidence" in r[2]]
    assert len(low) < len(figures(resumed, "train.jsonl"))
    assert low and low == [r for r in figures(whole, "rejected.jsonl")
                           if r[2] and "min_confidence" in r[2]]


def test_embedded_model_gives_real_logprob_figures(tmp_path: Path) -> None:
    """The real SmolLM2-135M through llama.cpp: a couple of rows, scored by real log-probs.

    Its answers come through chat (answer mode), where llama.cpp sends log-probs only when
    ``top_logprobs`` is set as well: this is the test that catches a wire change losing them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "generate",
         "--seeds", "tests/fixtures/foreign_seeds_en.jsonl", "--num-instructions", "2",
         "--dataset", "demo", "--data-dir", str(tmp_path), "--seed", "11", "--no-progress",
         "--confidence"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "returned no token log-probabilities" not in result.stderr
    version = Path(result.stdout.strip().splitlines()[-1])
    rows = jsonl(version / "train.jsonl")
    assert len({r["task_id"] for r in rows}) >= 2
    for row in rows:
        provenance = row["provenance"]
        assert 0 < provenance["confidence"] < 1 and provenance["logprob_tokens"] >= 1
        assert provenance["logprob_min"] <= provenance["logprob_mean"] < 0
        assert abs(provenance["confidence"] - math.exp(provenance["logprob_mean"])) < 1e-4
