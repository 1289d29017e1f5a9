"""Set up a run: validate everything, pick or start the endpoint, open the journal.

`open_run` is shared by the CLI and the Prefect flow. Its order is deliberate: every input
(seeds, prompts, config, data folder) is checked before a model starts, a file is written or
a request is paid for, so bad input fails fast with one line and leaves nothing behind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.batch_api import BatchClient
from selfinstruct.config import GenerateConfig, build_config, resolve_defaults
from selfinstruct.journal import (
    Journal,
    latest_unfinished_run,
    new_run_id,
    read_run_config,
    runs_root,
    write_run_config,
)
from selfinstruct.language import detect_language
from selfinstruct.llm import Client, LLMClient, RetryPolicy
from selfinstruct.local_model import DEMO_WARNING, LocalModelServer
from selfinstruct.pipeline import Generator
from selfinstruct.prompts import PromptSet
from selfinstruct.seeds import load_seeds

# Settings a resumed run may change: they affect speed or how far it goes (budgets included),
# never which data the already-journaled answers produce.
RESUMABLE_OVERRIDES = ("concurrency", "timeout", "max_retries", "retry_base_delay",
                       "batch_size", "batch_poll_interval",
                       "num_instructions", "max_rounds", "stall_rounds", "rpm", "tpm",
                       "max_requests",
                       "max_tokens", "max_cost", "prices")


def resume_config(
    data_dir: Path, dataset: str | None, run_dir: Path | None, overrides: dict[str, Any]
) -> tuple[GenerateConfig, Path]:
    """The stored config of the run to resume, with the allowed overrides applied.

    `run_dir` names the run; otherwise the newest unfinished run of `dataset` is taken. The
    environment is ignored on purpose: a run resumes against the endpoint it started with.
    """
    if run_dir is None:
        if dataset is None:
            raise InputError("--resume needs --dataset (or --run-dir)")
        run_dir = latest_unfinished_run(data_dir, dataset)
        if run_dir is None:
            raise InputError(f"no unfinished run of '{dataset}' to resume in "
                             f"{runs_root(data_dir, dataset)} (finished runs have written "
                             f"their version; start a new run without --resume)")
    stored = read_run_config(run_dir)["config"]
    changes = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES and v is not None}
    return build_config({**stored, **changes}, environ={}), run_dir


def _check_data_dir(config: GenerateConfig) -> None:
    target = config.data_dir / config.dataset
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{target}: cannot create the dataset folder: {exc.strerror}") from None
    if not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")


@contextmanager
def open_run(
    config: GenerateConfig,
    *,
    api_key: str | None,
    run_dir: Path | None = None,
    run_id: str | None = None,
    warn: bool = True,
) -> Iterator[Generator]:
    """Yield a ready `Generator`; stops the embedded model and closes everything on exit.

    `run_dir`: continue that earlier run from its journal (`config` from `resume_config`).
    `run_id`: name the run (e.g. a hash of a flow's parameters); if a run of that name
    exists it is resumed, so re-running the same scheduled flow continues the same run.
    """
    if run_dir is None and run_id is not None:
        existing = runs_root(config.data_dir, config.dataset) / run_id
        if (existing / "run.json").exists():
            config, run_dir = resume_config(config.data_dir, config.dataset, existing,
                                            config.to_public())
    seeds = load_seeds(config.seeds)
    if run_dir is None:
        config = resolve_defaults(config, detect_language(t.instruction for t in seeds.tasks))
        run_id = run_id or new_run_id()
        run_dir = runs_root(config.data_dir, config.dataset) / run_id
    else:
        run_id = run_dir.name
    prompts = PromptSet(config.language or "en", config.prompts_dir)
    _check_data_dir(config)
    if not (run_dir / "run.json").exists():
        write_run_config(run_dir, {"run_id": run_id, "config": config.to_public()})

    with ExitStack() as stack:
        journal = stack.enter_context(Journal(run_dir))
        if journal.finished_version:
            raise InputError(f"{run_dir}: this run already finished as {journal.finished_version}")
        if config.embedded:
            if warn:
                print(f"selfinstruct: warning: {DEMO_WARNING}", file=sys.stderr)
            server = stack.enter_context(LocalModelServer())
            base_url, endpoint_kind = server.base_url, "embedded"
        else:
            base_url, endpoint_kind = str(config.base_url), "openai-compatible"
        retry = RetryPolicy(max_retries=config.max_retries, base_delay=config.retry_base_delay)
        client: Client
        if config.batch_api:
            client = stack.enter_context(BatchClient(
                base_url=base_url, api_key=api_key, model=str(config.model),
                api=str(config.api), journal=journal, batch_size=config.batch_size,
                poll_interval=config.batch_poll_interval, timeout=config.timeout or 120.0,
                # A job waits this long for more requests; never longer than a poll.
                flush_after=min(2.0, config.batch_poll_interval),
                retry=retry, seed=config.seed or 0))
        else:
            client = stack.enter_context(_direct_client(config, base_url, api_key, retry))
        judge_model = config.filters.judge_model
        judge_client = None
        if judge_model is not None and judge_model != config.model:
            judge_client = stack.enter_context(
                _direct_client(config, base_url, api_key, retry, model=judge_model))
        generator = Generator(config, seeds, prompts, client, journal, run_id=run_id,
                              endpoint_kind=endpoint_kind, judge_client=judge_client)
        try:
            yield generator
        finally:
            # Stopped early (Ctrl-C, an error): answers already on their way are journaled,
            # so a resume does not pay for them again. Bounded by one request timeout; a
            # Batch API job is not waited for (its id is journaled, a resume polls it).
            wait = 0 if config.batch_api else config.timeout
            if generator.in_flight and wait:
                print(f"selfinstruct: saving the answers of {generator.in_flight} requests in "
                      f"flight (up to {wait:.0f} s; Ctrl-C again abandons them)",
                      file=sys.stderr)
            generator.settle(timeout=wait)


def _direct_client(config: GenerateConfig, base_url: str, api_key: str | None,
                   retry: RetryPolicy, model: str | None = None) -> LLMClient:
    return LLMClient(
        base_url=base_url, api_key=api_key, model=model or str(config.model),
        api=str(config.api), concurrency=config.concurrency or 1,
        timeout=config.timeout or 120.0, retry=retry, seed=config.seed or 0,
        rpm=config.rpm, tpm=config.tpm)
