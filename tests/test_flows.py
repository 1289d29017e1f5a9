"""The Prefect flow runs the same library steps as the CLI, as a few coarse task runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from selfinstruct.config import build_config


def task_run_names(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def fetch() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return [r.name for r in runs]

    return asyncio.run(fetch())


def test_generate_dataset_flow(prefect_harness, openai_server, tmp_path, monkeypatch):
    from flows.generate import generate_dataset

    monkeypatch.setenv("OPENAI_API_KEY", "sk-flow-SENTINEL-000000000000")
    config = build_config({
        "seeds": "seeds/ja_general.jsonl", "dataset": "flow", "num_instructions": 40,
        "data_dir": str(tmp_path / "data"), "base_url": openai_server.base_url,
        "model": "test-model", "seed": 2,
    }, environ={}).to_public()
    state = generate_dataset(config=config, return_state=True)
    assert state.is_completed()
    version = Path(state.result())
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["target"]["accepted"] == 40 and manifest["language"] == "ja"
    names = task_run_names(state.state_details.flow_run_id)
    rounds = sum(n.startswith("bootstrap-round") for n in names)
    assert rounds == manifest["target"]["rounds"] >= 1
    # Coarse tasks: a handful of runs for 40 instructions, never one per row.
    assert {n.rsplit("-", 1)[0] for n in names} == {
        "bootstrap-round", "classify-batch", "instances-batch", "write-version"}
    assert len(names) < 20
    assert "SENTINEL" not in json.dumps(config)
