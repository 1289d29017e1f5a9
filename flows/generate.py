"""The `generate_dataset` flow: the library's generation steps as coarse Prefect tasks.

Each bootstrap round and each batch of classification or instance requests is one task run
(never one per row: a Prefect task costs milliseconds and thousands of tiny ones stall its
database), so a run of 10K instructions makes a few hundred task runs. The step order is
`selfinstruct.pipeline.run` itself; this module only says how a step executes.

The API key is never a flow parameter — Prefect stores parameters — it comes from the
environment (`OPENAI_API_KEY`) of the process running the flow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from selfinstruct.config import build_config
from selfinstruct.pipeline import run
from selfinstruct.run import open_run


def prefect_step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Execute one pipeline step as a Prefect task run named after the step."""
    # The generator's state lives in this process; results are not persisted or cached here.
    return task(fn, name=name, cache_policy=NO_CACHE, persist_result=False)(*args)


@flow(name="generate_dataset")
def generate_dataset(config: dict[str, Any], run_dir: str | None = None) -> str:
    """Generate a new dataset version; `config` holds `GenerateConfig` fields.

    `run_dir` continues an unfinished run from its journal.
    """
    settings = build_config(config)
    with open_run(settings, api_key=os.environ.get("OPENAI_API_KEY"),
                  run_dir=Path(run_dir) if run_dir else None) as gen:
        return run(gen, step=prefect_step)
