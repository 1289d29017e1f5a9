"""The `scheduled_release` flow: generate a new version, then release it — one schedule slot.

Each firing of a schedule is its own run: unless `run_key` is given, the run is named after
the flow run's scheduled start time, so tonight's run does not return last night's version,
while a retry of tonight's run (the flow retries itself, or you retry it in the UI) reopens
tonight's run folder, replays its journal and gets the cached Hub commit instead of
publishing twice. Nobody watches a 3 a.m. run, hence the flow-level retries: a retry costs no
LLM call that was already answered.

Serve it with ``selfinstruct serve --cron ...`` or deploy it from ``prefect.yaml``; both need
a running Prefect server (see docs/prefect.md).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from selfinstruct.orchestration.generate import TaskRunnerName, generate_dataset
from selfinstruct.orchestration.release import release_dataset

RETRIES = 2
RETRY_DELAY_SECONDS = 300


def schedule_slot() -> str:
    """This flow run's scheduled start, the name of its schedule slot (UTC, to the second)."""
    return flow_run.scheduled_start_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@flow(name="scheduled_release", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_SECONDS,
      flow_run_name="scheduled-{config[dataset]}")
def scheduled_release(
    config: dict[str, Any],
    output_dir: str = "dist",
    push_to_hub: str | None = None,
    private: bool = False,
    run_key: str | None = None,
    task_runner: TaskRunnerName = "local",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Generate a version with `config` (`GenerateConfig` fields), then release it."""
    version = generate_dataset(config=config, run_key=run_key or schedule_slot(),
                               task_runner=task_runner, dask_address=dask_address)
    return release_dataset(version=version, output_dir=output_dir, push_to_hub=push_to_hub,
                           private=private)
