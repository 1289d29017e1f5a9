"""The `generate_dataset` flow: the library's generation steps as coarse Prefect tasks.

Each bootstrap round and each batch of classification or instance answers is one task run
(never one per row: a Prefect task costs milliseconds and thousands of tiny ones stall its
database), so a run of 10K instructions makes a few hundred task runs. The step order is
`selfinstruct.pipeline.run` itself, and which run folder a flow run works in is
`selfinstruct.run_identity`'s; this module only says how a step executes.

Resume. The flow's parameters name its run: the same parameters (minus speed settings and
budgets, which a resumed run may change) map to the same run folder,
``data/<dataset>/.runs/<time>-<id>-k<key>``. A re-run of a failed, crashed or killed flow
therefore opens that run again and replays its journal: every request answered before is
answered from the journal, not the endpoint, and generation — deterministic given the stored
seed and those answers — continues where it stopped. A finished run returns its version
without opening anything, so a re-run after a failure past the version write (say, in the
release) does not write a second version. Pass another `run_key` to make a new version with
the same settings.

Why the journal and not Prefect's result cache for these steps: a bootstrap round or a batch
changes the generator's in-memory state (novelty index, pool, funnel); a cached return value
cannot restore that state, replaying the journal does. For the same reason the steps have no
task retries — a step that failed half-way has already changed that state. Recovery is a
re-run (or a flow retry): the run is reopened and replayed, which costs no LLM call.

The API key is never a flow parameter — Prefect stores parameters — it comes from the
environment (`OPENAI_API_KEY`) of the process running the flow (and of each Dask worker).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from selfinstruct._errors import InputError
from selfinstruct.config import GenerateConfig, build_config, with_url_credentials
from selfinstruct.orchestration.artifacts import publish_run_report
from selfinstruct.pipeline import run
from selfinstruct.run import open_run, resume_config
from selfinstruct.run_identity import finished_version, named_run

TaskRunnerName = Literal["local", "dask"]


def prefect_step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Execute one pipeline step as a Prefect task run named after the step."""
    # The generator's state lives in this process; the journal, not Prefect, persists it.
    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)(*args)


@flow(name="generate_dataset", flow_run_name="generate-{config[dataset]}")
def generate_dataset(
    config: dict[str, Any],
    run_dir: str | None = None,
    run_key: str | None = None,
    task_runner: TaskRunnerName = "local",
    dask_address: str | None = None,
) -> str:
    """Generate a dataset version (or finish the run these parameters started); return its path.

    `config` holds `GenerateConfig` fields. `run_dir` continues that run folder instead of
    the one the parameters name; `run_key` names a distinct run with the same settings.
    `task_runner="dask"` answers instance requests on a Dask cluster (`dask_address`, e.g.
    ``tcp://scheduler:8786``, or a temporary local cluster when it is empty).
    """
    # The base URL parameter is stored without credentials; the environment supplies them.
    settings = with_url_credentials(build_config(config), os.environ.get("OPENAI_BASE_URL"))
    if task_runner == "dask" and (settings.embedded or settings.batch_api):
        raise InputError("the Dask task runner needs a direct endpoint (--base-url, no "
                         "--batch-api): the embedded model serves one request at a time, and a "
                         "Batch API job already runs on the provider's side")
    folder = Path(run_dir) if run_dir else named_run(settings, run_key)
    version = finished_version(folder)
    if version is None:
        version = _generate(settings, folder, bool(run_dir), task_runner, dask_address)
    else:
        get_run_logger().info("run %s already wrote %s", folder, version)
    publish_run_report(version)
    return version


def _generate(settings: GenerateConfig, folder: Path, named_by_caller: bool,
              task_runner: TaskRunnerName, dask_address: str | None) -> str:
    api_key = os.environ.get("OPENAI_API_KEY")
    with ExitStack() as stack:
        runner = None
        if task_runner == "dask":
            from prefect_dask import DaskTaskRunner

            # Entered first, closed last: the run settles its answers before the cluster goes.
            runner = stack.enter_context(DaskTaskRunner(address=dask_address))
        if named_by_caller:  # e.g. `selfinstruct generate --resume --prefect`
            settings, folder = resume_config(
                settings.data_dir, settings.dataset, folder,
                {**settings.to_public(), "base_url": settings.base_url})
            gen = stack.enter_context(open_run(settings, api_key=api_key, run_dir=folder))
        else:
            # Resumes the run of this name if it exists (the speed settings and budgets given
            # now apply), else starts it.
            gen = stack.enter_context(open_run(settings, api_key=api_key, run_id=folder.name))
        if gen.journal.cached_answers:
            get_run_logger().info("resuming %s: %d answers in its journal",
                                  gen.journal.run_dir, gen.journal.cached_answers)
        step = prefect_step
        if runner is not None:
            from selfinstruct.orchestration.scale_out import install, step_runner

            stack.callback(install(gen, runner).close)
            step = step_runner(prefect_step)
        return run(gen, step=step)
