"""Several endpoints in one run (`--base-url` given more than once; selfinstruct.endpoints).

Real loopback servers: two test servers answer the same model, one of them behind the
adversarial proxy's "die" mode, which stops that endpoint for good at its k-th request — a
server killed mid-run at a deterministic point, not after a sleep. Because the test server's
answers depend only on the request, a run over several endpoints must write exactly the rows
a run over one writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct.cli import main
from selfinstruct.endpoints import BENCH_AFTER, EndpointPool
from selfinstruct.llm import LLMClient, Request, RetryPolicy
from tests.servers.adversarial_proxy import Plan, start_proxy
from tests.servers.openai_server import RunningServer, start_server


@pytest.fixture
def two_servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    with start_server(latency_ms=20) as first, start_server(latency_ms=20) as second:
        yield first, second


def _generate(data_dir: Path, urls: list[str], *extra: str) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "run.toml"
    # The same look-ahead for one endpoint and two (two would default to twice as deep), so
    # the prompts, and therefore the rows, are the same.
    config.write_text("retry_base_delay = 0.01\nlookahead = 8\n")
    args = ["generate", "--seeds", "en_general", "--dataset", "multi", "--num-instructions",
            "24", "--data-dir", str(data_dir), "--model", "test-model", "--seed", "11",
            "--concurrency", "4", "--no-progress", "--config", str(config), *extra]
    for url in urls:
        args += ["--base-url", url]
    return args


def _version(capsys: pytest.CaptureFixture[str], code: int) -> Path:
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return Path(captured.out.strip().splitlines()[-1])


def _rows(version: Path) -> list[dict]:
    rows = [json.loads(line) for line in (version / "train.jsonl").open()]
    for row in rows:  # the only field that names the server's answer, not the data
        row["provenance"].pop("request_id")
    return rows


def test_requests_spread_over_endpoints_and_rows_equal_a_single_endpoint_run(
        two_servers, tmp_path, capsys):
    first, second = two_servers
    version = _version(capsys, main(_generate(tmp_path / "one", [first.base_url])))
    first.reset()
    pooled = _version(capsys, main(_generate(tmp_path / "two",
                                             [first.base_url, second.base_url])))
    assert _rows(pooled) == _rows(version)
    served = [first.stats()["requests_total"], second.stats()["requests_total"]]
    assert min(served) > 0.25 * sum(served), served  # both carried a real share
    manifest = json.loads((pooled / "manifest.json").read_text())
    endpoints = manifest["endpoints"]
    assert [e["base_url"] for e in endpoints] == [first.base_url, second.base_url]
    assert sum(e["requests"] for e in endpoints) == sum(
        s["requests"] for s in manifest["usage"].values())
    assert all(e["errors"] == {} and e["mean_latency_s"] > 0 for e in endpoints)


def test_a_killed_endpoint_is_benched_and_the_run_loses_nothing(two_servers, tmp_path, capsys):
    first, second = two_servers
    version = _version(capsys, main(_generate(tmp_path / "one", [first.base_url])))
    with start_proxy(second, Plan(by_number={6: "die"})) as dying:
        pooled = _version(capsys, main(_generate(tmp_path / "two",
                                                 [first.base_url, dying.base_url])))
        assert dying.stats()["applied"] == {"die": 1}
    assert _rows(pooled) == _rows(version)
    manifest = json.loads((pooled / "manifest.json").read_text())
    survivor, dead = manifest["endpoints"]
    assert dead["times_benched"] >= 1
    assert dead["errors"].get("connection_error", 0) >= BENCH_AFTER
    assert survivor["errors"] == {}
    # Nothing was lost: no failed answer, no rejected request row.
    assert manifest["funnel"]["answers"]["drops"] == {}
    rejected = [json.loads(line) for line in (pooled / "rejected.jsonl").open()]
    assert not [r for r in rejected if r["stage"] == "request"]


def test_when_every_endpoint_is_down_a_request_fails_instead_of_waiting(tmp_path):
    with start_server() as server:
        url = server.base_url
    # Both ports are closed now: every attempt is refused at once.
    clients = [LLMClient(base_url=url, api_key=None, model="test-model", api="chat",
                         retry=RetryPolicy(max_retries=3, base_delay=0.01),
                         retry_unreachable=False) for _ in range(2)]
    with EndpointPool(clients) as pool:
        completion = pool.submit(Request("bootstrap", "hi", {}, "n1")).result(timeout=30)
        assert completion.error is not None and completion.error.startswith("connection_error")
        assert sum(e.requests for e in pool.endpoints) == 4  # 2 × endpoints, then it gives up


def test_an_endpoint_key_comes_from_the_variable_it_names(tmp_path, capsys, monkeypatch):
    with start_server() as server:
        config = tmp_path / "run.toml"
        config.write_text(f'[[endpoints]]\nbase_url = "{server.base_url}"\n'
                          f'api_key_env = "SECOND_ENDPOINT_KEY"\n')
        monkeypatch.delenv("SECOND_ENDPOINT_KEY", raising=False)
        code = main(["generate", "--seeds", "en_general", "--dataset", "k",
                     "--num-instructions", "5", "--data-dir", str(tmp_path / "data"),
                     "--base-url", server.base_url, "--model", "test-model",
                     "--config", str(config), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.strip().splitlines() == [
            f"selfinstruct: error: the environment variable SECOND_ENDPOINT_KEY (the API key "
            f"of endpoint {server.base_url}) is not set"]
        assert not (tmp_path / "data").exists()
        monkeypatch.setenv("SECOND_ENDPOINT_KEY", "sk-second-endpoint-secret")
        code = main(["generate", "--seeds", "en_general", "--dataset", "k",
                     "--num-instructions", "5", "--data-dir", str(tmp_path / "data"),
                     "--base-url", server.base_url, "--model", "test-model",
                     "--config", str(config), "--no-progress"])
        assert code == 0, capsys.readouterr().err
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "data").rglob("*")
                      if p.is_file())
    assert "sk-second-endpoint-secret" not in written
    assert "SECOND_ENDPOINT_KEY" in written  # the name is recorded, never the value
