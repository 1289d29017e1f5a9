"""The Prefect flows against the loopback OpenAI and Hub servers, on one session harness.

What is checked is what a user of the flows relies on: the library's steps run as a few coarse
task runs; a failed, retried or killed run resumes from its journal without asking the
endpoint for any answer twice; a finished run is not generated again; the Hub step of a
release is not repeated; the Dask path writes the version the in-process path writes; every
run carries its report artifacts; and the API key never reaches Prefect.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.config import build_config
from selfinstruct.dataset import read_manifest, read_train_rows
from selfinstruct.pipeline import Generator
from tests.dataset_samples import write_sample
from tests.servers.hub_server import HubServer
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "sk-flow-SENTINEL-000000000000"
HF_SENTINEL = "hf_SENTINELtokenNEVERtoBEshown0123456789"
REPO = "selfinstruct-tests/flows"


def flow_config(tmp_path: Path, server: RunningServer, **settings: Any) -> dict[str, Any]:
    """Parameters of a small Japanese run against the test server (40 instructions)."""
    return build_config({
        "seeds": "seeds/ja_general.jsonl", "dataset": "flow", "num_instructions": 40,
        "data_dir": str(tmp_path / "data"), "base_url": server.base_url,
        "model": "test-model", "seed": 2, **settings,
    }, environ={}).to_public()


def read_run(flow_run_id: Any) -> dict[str, Any]:
    """What Prefect stored about a flow run: parameters, task runs, artifacts, logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async def fetch() -> dict[str, Any]:
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
            task_runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
                    any_=[flow_run_id])))
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return {
            "parameters": flow_run.parameters,
            "run_count": flow_run.run_count,
            "tasks": [(t.name, t.state_name) for t in task_runs],
            "artifacts": {a.key: a.data for a in artifacts},
            "logs": [log.message for log in logs],
        }

    return asyncio.run(fetch())


def rows_without_request_ids(version: str) -> list[dict[str, Any]]:
    """Train rows minus the server's request ids (they count requests, not content)."""
    rows = read_train_rows(version)
    for row in rows:
        row["provenance"].pop("request_id")
    return rows


@pytest.fixture
def fail_once(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The second instance batch of the next run raises once, after the first was used.

    A deterministic failure midway: answers already used (and those in flight) are in the
    journal when the flow fails, so a re-run must not ask for them again.
    """
    original = Generator.stage_batch
    calls = {"batches": 0, "raised": 0}

    def stage_batch(gen: Generator, name: str, tasks: list) -> None:
        if name == "instances":
            calls["batches"] += 1
            if calls["batches"] == 2 and not calls["raised"]:
                calls["raised"] += 1
                raise RuntimeError("injected failure after the first instance batch")
        original(gen, name, tasks)

    monkeypatch.setattr(Generator, "stage_batch", stage_batch)
    return calls


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    return SENTINEL


def harness_env() -> dict[str, str]:
    """A subprocess's environment pointing at this session's harness (it is set in Prefect's
    settings, not the environment, so children must be told)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PREFECT_"))}
    return {**env, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_HOME": str(PREFECT_HOME.value()),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "ERROR", "NO_PROXY": "127.0.0.1"}


def test_generate_dataset_flow(prefect_harness, openai_server, tmp_path, api_key):
    from selfinstruct.orchestration.artifacts import report_link
    from selfinstruct.orchestration.generate import generate_dataset

    config = flow_config(tmp_path, openai_server)
    state = generate_dataset(config=config, return_state=True)
    assert state.is_completed()
    version = Path(state.result())
    manifest = read_manifest(version)
    assert manifest["target"]["accepted"] == 40 and manifest["language"] == "ja"
    stored = read_run(state.state_details.flow_run_id)
    names = [name for name, _ in stored["tasks"]]
    rounds = sum(n.startswith("bootstrap-round") for n in names)
    assert rounds == manifest["target"]["rounds"] >= 1
    # Coarse tasks: a handful of runs for 40 instructions, never one per row.
    assert {n.rsplit("-", 1)[0] for n in names} == {
        "bootstrap-round", "classify-batch", "instances-batch", "write-version"}
    assert len(names) < 20

    assert set(stored["artifacts"]) == {"flow-run-report", "flow-version"}
    report = stored["artifacts"]["flow-run-report"]
    for heading in ("# flow v0001", "## Funnel", "## Requests and tokens", "Cost estimate"):
        assert heading in report
    assert "n/a (no price for model 'test-model'" in report
    assert f"| instances | {manifest['usage']['instances']['requests']} |" in report
    link = report_link(version)
    assert link.is_relative_to(version)  # its report page, or the folder itself
    assert link.resolve().as_uri() in stored["artifacts"]["flow-version"]

    # The key travelled in the environment only: not a parameter, artifact or log line.
    stored_text = json.dumps([stored["parameters"], stored["artifacts"], stored["logs"]],
                             default=str)
    assert SENTINEL not in stored_text and stored["parameters"]["config"] == config

    # Same parameters again: the finished run answers, nothing is generated or paid twice.
    before = openai_server.stats()["successes_total"]
    assert generate_dataset(config=config) == str(version)
    assert openai_server.stats()["successes_total"] == before
    assert [p.name for p in version.parent.iterdir() if p.name.startswith("v")] == ["v0001"]


def test_failed_flow_resumes_without_rerequesting(prefect_harness, openai_server, tmp_path,
                                                  fail_once, api_key):
    from selfinstruct.orchestration.generate import generate_dataset

    config = flow_config(tmp_path, openai_server)
    failed = generate_dataset(config=config, return_state=True)
    assert failed.is_failed() and fail_once["raised"] == 1
    paid_before = openai_server.stats()["successes_total"]
    assert paid_before > 0

    version = generate_dataset(config=config)  # the same parameters: the same run
    manifest = read_manifest(version)
    stats = openai_server.stats()
    assert stats["max_success_count"] == 1  # no request was answered twice
    cached = sum(stage["cached"] for stage in manifest["usage"].values())
    assert cached == paid_before  # everything paid before the failure came from the journal
    assert len(list((tmp_path / "data" / "flow" / ".runs").iterdir())) == 1


def test_flow_retry_replays_the_journal(prefect_harness, openai_server, tmp_path, fail_once,
                                        api_key):
    from selfinstruct.orchestration.generate import generate_dataset

    config = flow_config(tmp_path, openai_server)
    retried = generate_dataset.with_options(retries=1, retry_delay_seconds=0)
    state = retried(config=config, return_state=True)
    assert state.is_completed() and fail_once["raised"] == 1
    assert read_run(state.state_details.flow_run_id)["run_count"] == 2
    assert openai_server.stats()["max_success_count"] == 1


def test_killed_cli_run_resumes(prefect_harness, tmp_path):
    """`selfinstruct generate --prefect` killed mid-run; the same parameters finish the run."""
    from selfinstruct.orchestration.generate import generate_dataset

    with start_server(latency_ms=40) as server:
        config = flow_config(tmp_path, server, concurrency=2)
        argv = [sys.executable, "-m", "selfinstruct", "generate", "--prefect",
                "--seeds", config["seeds"], "--dataset", "flow", "--num-instructions", "40",
                "--data-dir", config["data_dir"], "--base-url", server.base_url,
                "--model", "test-model", "--seed", "2", "--concurrency", "2"]
        child = subprocess.Popen(argv, cwd=ROOT, env=harness_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True)
        runs = tmp_path / "data" / "flow" / ".runs"
        deadline = time.monotonic() + 90
        answered = 0
        while answered < 12 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            answered = sum(path.read_text(encoding="utf-8").count('"type": "answer"')
                           for path in runs.glob("*/journal.jsonl"))
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

        version = generate_dataset(config=config)
        manifest = read_manifest(version)
        stats = server.stats()
        # Only answers that never reached the journal are asked again: at most the requests
        # in flight when the process died (concurrency 2).
        assert sum(n - 1 for n in stats["success_fingerprints"].values()) <= 2
        assert sum(s["cached"] for s in manifest["usage"].values()) >= answered


def test_release_flow_and_scheduled_release_with_hub(prefect_harness, openai_server, tmp_path):
    """scheduled_release generates, archives and publishes; a retry of the same slot neither
    generates nor publishes again (a second publish would be refused: tags are immutable)."""
    code = textwrap.dedent("""
        import json, sys
        from selfinstruct.orchestration.schedule import scheduled_release

        config, dist = json.loads(sys.argv[1]), sys.argv[2]
        results = []
        for _ in range(2):
            state = scheduled_release(config=config, output_dir=dist, push_to_hub=sys.argv[3],
                                      run_key="2030-01-01", return_state=True)
            results.append(state.result())
        print(json.dumps(results))
    """)
    config = flow_config(tmp_path, openai_server)
    with HubServer(tmp_path / "hub", expected_token=HF_SENTINEL) as hub:
        env = {**harness_env(), "OPENAI_API_KEY": SENTINEL, "HF_ENDPOINT": hub.url,
               "HF_TOKEN": HF_SENTINEL, "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(config), str(tmp_path / "dist"), REPO],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        first, second = json.loads(done.stdout.splitlines()[-1])
        repo = hub.state.repos[("dataset", REPO)]
        assert list(repo.tags) == ["v0001"] and len(repo.commits) >= 1
        commits = len(repo.commits)
    assert first == second
    assert first["hub"]["tag"] == "v0001" and Path(first["archive"]).is_file()
    assert openai_server.stats()["max_success_count"] == 1
    assert commits == len(repo.commits)
    assert HF_SENTINEL not in done.stdout + done.stderr and SENTINEL not in done.stdout


def test_release_flow_without_hub(prefect_harness, tmp_path):
    from selfinstruct.orchestration.release import release_dataset

    folder = write_sample(tmp_path / "data" / "demo")
    state = release_dataset(version=str(tmp_path / "data" / "demo" / "latest"),
                            output_dir=str(tmp_path / "dist"), return_state=True)
    release = state.result()
    assert release["version"] == str(folder) and release["hub"] is None
    assert Path(release["archive"]).name == "demo-v0001.tar.gz"
    stored = read_run(state.state_details.flow_run_id)
    assert sorted(name.rsplit("-", 1)[0] for name, _ in stored["tasks"]) == [
        "build-archive", "validate-version"]
    assert release["sha256"] in stored["artifacts"]["demo-release"]


def test_release_from_the_cli_through_prefect(prefect_harness, tmp_path):
    folder = write_sample(tmp_path / "data" / "demo")
    done = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "release", str(folder), "--output-dir",
         str(tmp_path / "dist"), "--prefect"],
        cwd=ROOT, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    archive = tmp_path / "dist" / "demo-v0001.tar.gz"
    assert done.stdout.strip().startswith(f"release: {archive} (sha256 ")
    assert archive.is_file()


@pytest.fixture
def dask_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        yield cluster


def test_dask_path_writes_the_in_process_version(prefect_harness, openai_server, tmp_path,
                                                  dask_cluster, api_key, monkeypatch):
    import selfinstruct.orchestration.scale_out as scale_out
    from selfinstruct.llm import LLMClient
    from selfinstruct.orchestration.generate import generate_dataset

    # One transient failure on a worker: the batch task is retried (no delay in tests).
    monkeypatch.setattr(scale_out, "answer_requests",
                        scale_out.answer_requests.with_options(retry_delay_seconds=0))
    original, failures = LLMClient.run_batch, []

    def flaky(client: LLMClient, requests: list) -> list:
        if not failures:
            failures.append(len(requests))
            raise ConnectionError("injected: worker lost its connection")
        return original(client, requests)

    monkeypatch.setattr(LLMClient, "run_batch", flaky)
    local = generate_dataset(config=flow_config(tmp_path / "local", openai_server))
    state = generate_dataset(config=flow_config(tmp_path / "dask", openai_server),
                             task_runner="dask", dask_address=dask_cluster.scheduler_address,
                             return_state=True)
    remote = state.result()
    assert failures  # the worker task did fail once
    assert rows_without_request_ids(remote) == rows_without_request_ids(local)
    local_manifest, remote_manifest = read_manifest(local), read_manifest(remote)
    assert remote_manifest["funnel"] == local_manifest["funnel"]
    assert remote_manifest["usage"] == local_manifest["usage"]
    tasks = read_run(state.state_details.flow_run_id)["tasks"]
    on_workers = [status for name, status in tasks if name.startswith("instances-answers")]
    # 40 tasks in 2 batches, then the top-up phase for tasks that kept no instance: 1 batch.
    assert local_manifest["target"]["accepted_instructions"] > 40
    assert len(on_workers) == 3 and set(on_workers) == {"Completed"}
    # Every stage's requests were answered on the workers, none by the flow's process.
    names = {name.split("-answers")[0] + "-answers" for name, _ in tasks if "-answers" in name}
    assert names == {"bootstrap-answers", "classify-answers", "instances-answers"}, names
    assert not any(name.startswith(("bootstrap-round", "classify-batch")) for name, _ in tasks)

    # --max-requests holds on the Dask path too: batches sent ahead stop at the budget.
    usage = local_manifest["usage"]
    budget = usage["bootstrap"]["requests"] + usage["classify"]["requests"] + 5
    before = openai_server.stats()["successes_total"]
    stopped = generate_dataset(
        config=flow_config(tmp_path / "budget", openai_server, max_requests=budget),
        task_runner="dask", dask_address=dask_cluster.scheduler_address, return_state=True)
    assert stopped.is_failed() and "max-requests" in stopped.message
    assert openai_server.stats()["successes_total"] - before == budget


def test_cron_deployment_gets_scheduled_runs(prefect_harness, tmp_path):
    """What `selfinstruct serve` registers is scheduled by the server at the cron times (with
    SQLAlchemy 2.1, Prefect 3.8.8's scheduler fails to insert the runs: they never fire)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from selfinstruct.cli_flows import build_deployment

    parameters = {"config": {"seeds": "seeds/en_general.jsonl", "dataset": "cron",
                             "num_instructions": 5, "base_url": "http://127.0.0.1:9/v1",
                             "model": "m", "data_dir": str(tmp_path / "data")}}
    deployment_id = build_deployment("cron-test", "0 3 * * *", "UTC", parameters).apply()

    async def schedule() -> list[Any]:
        async with get_client() as client:
            response = await client._client.post(f"/deployments/{deployment_id}/schedule",
                                                  json={})
            response.raise_for_status()
            return await client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])))

    runs = asyncio.run(schedule())
    assert runs and all(run.state_name == "Scheduled" for run in runs)
    assert {(run.expected_start_time.hour, run.expected_start_time.minute) for run in runs} == {
        (3, 0)}
    assert runs[0].parameters == parameters


def test_run_identity_names_one_run_per_settings(tmp_path):
    """Speed settings and budgets may change on a re-run; what shapes the output may not."""
    from selfinstruct.journal import runs_root
    from selfinstruct.run_identity import finished_version, identity_key, named_run

    def settings(**changes: Any) -> Any:
        return build_config({"seeds": "seeds/en_general.jsonl", "dataset": "id",
                             "data_dir": str(tmp_path), "base_url": "http://127.0.0.1:9/v1",
                             "model": "m", "seed": 1, "num_instructions": 10, **changes},
                            environ={})

    key = identity_key(settings())
    assert identity_key(settings(concurrency=3, max_cost=2.0, rpm=60)) == key
    assert identity_key(settings(num_instructions=11)) != key
    assert identity_key(settings(), run_key="2030-01-01") != key
    first = named_run(settings())
    assert first.parent == runs_root(tmp_path, "id") and first.name.endswith(f"-k{key}")
    assert not first.exists() and finished_version(first) is None
    first.mkdir(parents=True)  # a flow run opened it: the same settings find it again
    assert named_run(settings(concurrency=7)) == first
    assert named_run(settings(), run_key="other") != first
