"""`generate --estimate`: the forecast's arithmetic, its accuracy, and that a resume reuses the
pilot (loopback test server, deterministic; no timing assertions)."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from selfinstruct.config import build_config
from selfinstruct.estimate import forecast, run_pilot
from selfinstruct.pipeline import direct
from selfinstruct.run import open_run
from tests.servers.openai_server import start_server

ROOT = Path(__file__).resolve().parent.parent
PRICE = {"input": 2.0, "output": 8.0}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "OPENAI_API_KEY": "k"}
    return subprocess.run([sys.executable, "-m", "selfinstruct", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def generate_args(server, data: Path, n: int, *extra: str) -> list[str]:
    return ["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "d",
            "--num-instructions", str(n), "--data-dir", str(data), "--base-url",
            server.base_url, "--model", "test-model", "--seed", "3", "--no-progress", *extra]


def test_forecast_arithmetic_follows_the_pilots_journal_and_funnel(tmp_path):
    with start_server() as server:
        config = build_config({"seeds": "seeds/en_general.jsonl", "dataset": "d",
                               "num_instructions": 300, "data_dir": str(tmp_path), "seed": 3,
                               "base_url": server.base_url, "model": "test-model",
                               "prices": {"test-model": PRICE}}, environ={})
        with open_run(config, api_key="k", warn=False) as gen:
            timed = run_pilot(gen, 15, direct)
            funnel = json.loads(json.dumps(gen.funnel.stages))
            usable = sum(1 for task in gen.tasks if task.instances)
            got = forecast(gen, 300, timed.latencies, 4, 90.0)
            journal = gen.journal.path
        sent = server.stats()["requests_total"]
    # Independently: per-stage answers and tokens straight from the journal's lines.
    answers: Counter[str] = Counter()
    tokens: dict[str, list[int]] = {}
    accepted = 0
    for line in journal.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "answer":
            answers[event["stage"]] += 1
            pair = tokens.setdefault(event["stage"], [0, 0])
            pair[0] += event["completion"]["prompt_tokens"]
            pair[1] += event["completion"]["completion_tokens"]
        accepted += event["type"] == "accepted"
    assert sum(answers.values()) == sent and usable == 15 and accepted >= usable
    over = funnel["target"]["drops"].get("over_target", 0)
    acceptable = accepted + over * funnel["novelty"]["kept"] / funnel["novelty"]["in"]
    need = 300 * accepted / usable
    generation = need * answers["bootstrap"] / acceptable
    assert math.isclose(got["stages"]["bootstrap"]["requests"], generation)
    for stage in ("classify", "instances"):
        assert math.isclose(got["stages"][stage]["requests"], need * answers[stage] / accepted)
    prompt = sum(got["stages"][s]["requests"] * tokens[s][0] / answers[s] for s in answers)
    completion = sum(got["stages"][s]["requests"] * tokens[s][1] / answers[s] for s in answers)
    assert math.isclose(got["total"]["prompt_tokens"], prompt)
    assert math.isclose(got["cost"]["usd"], (prompt * 2.0 + completion * 8.0) / 1e6)
    # The interval: Poisson on the acceptable count, Agresti-Coull binomial on the usable share.
    share = (usable + 2) / (accepted + 4)
    rel_u = math.sqrt(share * (1 - share) / accepted) / (usable / accepted)
    rel_g = math.hypot(1 / math.sqrt(acceptable), rel_u)
    low, high = got["stages"]["bootstrap"]["requests_95"]
    assert math.isclose(low, generation * (1 - 1.96 * rel_g))
    assert math.isclose(high, generation * (1 + 1.96 * rel_g))
    assert math.isclose(got["stages"]["classify"]["requests_95"][1],
                        need * (1 + 1.96 * rel_u) * answers["classify"] / accepted)
    # Wall time: concurrency 4 with these latencies, unless 90 requests/minute is slower.
    mean = sum(timed.latencies) / len(timed.latencies)
    assert len(timed.latencies) == sent
    assert math.isclose(got["wall_seconds"]["seconds"],
                        max(got["total"]["requests"] * mean / 4,
                            got["total"]["requests"] / 90 * 60))


@pytest.mark.parametrize("n, extra", [
    (120, ("--pilot", "15")),
    # The judge drops some pilot tasks: a top-up round in the pilot once made the resumed
    # run's replay disagree with the journal's accepted instructions.
    (150, ("--recipe", "alpaca", "--judge-model", "test-model")),
])
def test_estimate_then_resume_reuses_the_pilot_and_the_manifest_compares(tmp_path, n, extra):
    data = tmp_path / "data"
    with start_server() as server:
        result = cli(*generate_args(server, data, n, "--estimate", *extra))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert "n/a (no price)" in result.stderr and "requests:" in result.stderr
        assert not list((data / "d").glob("v*"))  # no version
        pilot_requests = server.stats()["requests_total"]
        run_dir = next((data / "d" / ".runs").iterdir())
        predicted = json.loads((run_dir / "run.json").read_text())["estimate"]
        assert predicted["pilot"]["sent"] == pilot_requests
        assert predicted["target"] == n
        command = result.stderr.split("continue with: ")[1].splitlines()[0]
        assert command == f"selfinstruct generate --dataset d --data-dir {data} --resume"
        resumed = cli(*shlex.split(command)[1:], "--no-progress")  # exactly as printed
        assert resumed.returncode == 0, resumed.stderr
        stats = server.stats()
    assert stats["max_success_count"] == 1  # no pilot request was paid for twice
    manifest = json.loads((Path(resumed.stdout.strip()) / "manifest.json").read_text())
    assert sum(s["cached"] for s in manifest["usage"].values()) == pilot_requests
    actual = manifest["estimate"]["actual"]
    assert manifest["estimate"]["predicted"] == predicted
    assert actual["usable"] == n and actual["total_requests"] == stats["requests_total"]
    low, high = predicted["total"]["requests_95"]
    assert low <= actual["total_requests"] <= high


def test_estimate_with_prefect_or_a_stray_pilot_is_refused_in_one_line(tmp_path):
    with start_server() as server:
        for extra, message in ((["--estimate", "--prefect"], "--estimate runs in-process"),
                               (["--pilot", "5"], "--pilot: needs --estimate")):
            result = cli(*generate_args(server, tmp_path, 50, *extra))
            assert result.returncode == 2
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert server.stats()["requests_total"] == 0
    assert not tmp_path.joinpath("d").exists()


def test_estimate_respects_a_budget_and_warns_when_the_forecast_exceeds_it(tmp_path):
    with start_server() as server:
        stopped = cli(*generate_args(server, tmp_path / "a", 100, "--estimate",
                                     "--max-requests", "5"))
        assert stopped.returncode == 3 and "budget reached" in stopped.stderr
        assert server.stats()["requests_total"] == 5
        warned = cli(*generate_args(server, tmp_path / "b", 100, "--estimate",
                                    "--max-requests", "120"))
    assert warned.returncode == 0, warned.stderr
    assert "warning: --max-requests 120 is below the forecast's upper bound" in warned.stderr
