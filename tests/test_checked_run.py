"""Issue 15's whole path in one run: confidence, a verifier and preference pairs together.

`generate --confidence --verify-model disagree-model --preference --responses 2` on the test
server writes one version whose rows carry confidence figures and the verifier's agreement,
whose preference.jsonl exports to TRL's DPO layout and loads from the Hub stand-in by config
name, and which `compare` judges against another model with a win rate and its interval.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.cli import main
from tests.hub_env import hub_client_env
from tests.servers.hub_server import HubServer
from tests.servers.openai_server import start_server

ROOT = Path(__file__).resolve().parents[1]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The one run, then its DPO export, a comparison, and a Hub round trip."""
    tmp = tmp_path_factory.mktemp("checked")
    config = tmp / "run.toml"
    config.write_text("retry_base_delay = 0.01\n[filters]\nmin_confidence = 0.6\n"
                      "min_agreement = 1.0\n")
    found: dict[str, Any] = {"tmp": tmp}
    with start_server(style="messy") as server:
        out = subprocess.run(
            [sys.executable, "-m", "selfinstruct", "generate", "--seeds", "en_general",
             "--dataset", "checked", "--num-instructions", "20", "--data-dir",
             str(tmp / "data"), "--base-url", server.base_url, "--model", "test-model",
             "--seed", "4", "--no-progress", "--config", str(config), "--confidence",
             "--verify-model", "disagree-model", "--preference", "--responses", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        found["version"] = Path(out.stdout.strip().splitlines()[-1])
        compare = subprocess.run(
            [sys.executable, "-m", "selfinstruct", "compare", str(found["version"]),
             "model:other-model", "--judge-model", "test-model", "--base-url",
             server.base_url, "--output", str(tmp / "compare")],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        found["compare"] = compare
    return found


def test_rows_carry_confidence_and_agreement(checked: dict[str, Any]) -> None:
    version = checked["version"]
    rows = _jsonl(version / "train.jsonl")
    assert rows
    for row in rows:
        provenance = row["provenance"]
        assert 0.6 <= provenance["confidence"] <= 1.0  # min_confidence held for every row
        assert provenance["logprob_tokens"] > 0
        (entry,) = provenance["agreement"]
        assert entry["model"] == "disagree-model" and entry["agreed"] is True  # min 1.0
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["confidence"]["status"] == "available"
    assert manifest["agreement"]["verifiers"]["disagree-model"]["checked"] > len(rows)
    # The verifier's disagreements were dropped (low_confidence drops have their own tests:
    # tests/test_confidence_runs.py; this short run may spoil no instance answer).
    rejected = _jsonl(version / "rejected.jsonl")
    disagreed = [row for row in rejected if row["reason"] == "models_disagree"]
    assert disagreed and all("of verifiers agree (min_agreement 1): disagree-model "
                             in row["detail"] for row in disagreed)
    charts = {name for name in manifest["files"] if name.startswith("report/")}
    assert {"report/confidence.png", "report/agreement.png",
            "report/preference.png"} <= charts


def test_preference_pairs_validate_and_export_to_dpo(checked: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    version = checked["version"]
    pairs = _jsonl(version / "preference.jsonl")
    assert pairs
    assert main(["validate", str(version)]) == 0
    out = checked["tmp"] / "dpo.jsonl"
    assert main(["export", str(version), "--format", "dpo", "--output", str(out)]) == 0
    capsys.readouterr()
    import datasets

    loaded = datasets.load_dataset("json", data_files=str(out), split="train").to_list()
    assert loaded == [{"prompt": [{"role": "user", "content": p["prompt"]}],
                       "chosen": [{"role": "assistant", "content": p["chosen"]}],
                       "rejected": [{"role": "assistant", "content": p["rejected"]}]}
                      for p in pairs]


_HUB_CLIENT = textwrap.dedent(
    """
    import json, sys
    import datasets
    from selfinstruct.hub import publish

    publish(sys.argv[1], "selfinstruct-tests/checked")
    pairs = datasets.load_dataset("selfinstruct-tests/checked", "preference", split="train")
    print(json.dumps(pairs.to_list(), ensure_ascii=False))
    """
)


def test_preference_config_loads_from_the_hub(checked: dict[str, Any], tmp_path: Path) -> None:
    with HubServer(tmp_path / "hub", expected_token="hf_dummy") as hub:
        env = hub_client_env(hub.url, "hf_dummy", tmp_path / "hf_home")
        done = subprocess.run([sys.executable, "-c", _HUB_CLIENT, str(checked["version"])],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded == _jsonl(checked["version"] / "preference.jsonl")


def test_compare_prints_a_win_rate_with_its_interval(checked: dict[str, Any]) -> None:
    compare = checked["compare"]
    assert compare.returncode == 0, compare.stderr[-3000:]
    lines = compare.stdout.splitlines()
    rate = next(line for line in lines if line.startswith("win rate of A over B"))
    found = re.search(r"(\d+\.\d)% \(95% CI (\d+\.\d)-(\d+\.\d)%\)", rate)
    assert found, rate
    point, low, high = (float(x) for x in found.groups())
    assert low <= point <= high
    report = json.loads((checked["tmp"] / "compare" / "compare.json").read_text())
    assert report["judged"] > 0
    assert any(line.startswith("length-controlled win rate") for line in lines)
