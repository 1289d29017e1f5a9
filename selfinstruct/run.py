"""Set up a run: validate everything, pick or start the endpoint, open the journal.

`open_run` is shared by the CLI and the Prefect flow. Its order is deliberate: every input
(seeds, prompts, config, data folder) is checked before a model starts, a file is written or
a request is paid for, so bad input fails fast with one line and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from selfinstruct import features, languages
from selfinstruct._errors import InputError
from selfinstruct.batch_api import BatchClient
from selfinstruct.chat_template import ChatTemplate
from selfinstruct.config import (
    GenerateConfig,
    build_config,
    coerce_setting,
    flag_name,
    resolve_defaults,
)
from selfinstruct.dataset.naming import refuse_inside_version
from selfinstruct.endpoints import EndpointPool
from selfinstruct.input_files import require_regular_file
from selfinstruct.journal import (
    Journal,
    latest_unfinished_run,
    new_run_id,
    runs_root,
    write_run_config,
)
from selfinstruct.language import detect_language
from selfinstruct.llm import Client, LLMClient, RetryPolicy
from selfinstruct.local_model import DEMO_WARNING, LocalModelServer
from selfinstruct.personas import Persona
from selfinstruct.pipeline import Generator
from selfinstruct.prompts import TEMPLATE_NAMES, PromptSet, bundled_dir
from selfinstruct.recipes import recipe_class
from selfinstruct.redact import strip_url_credentials
from selfinstruct.resume_rules import (
    RESUMABLE_OVERRIDES,
    check_inputs,
    check_unchanged,
    endpoint_url,
    input_fingerprint,
    load_run_record,
    run_data_dir,
)
from selfinstruct.seeds import SeedSet, load_seeds


def resume_config(
    data_dir: Path, dataset: str | None, run_dir: Path | None, overrides: dict[str, Any],
    environ: Mapping[str, str] | None = None,
) -> tuple[GenerateConfig, Path]:
    """The stored config of the run to resume, with the allowed overrides applied.

    `run_dir` names the run; otherwise the newest unfinished run of `dataset` is taken.
    `overrides` are the settings given now: speed settings and budgets apply, any other that
    differs from the stored value is refused (`resume_rules`). The environment
    (`environ`, default `os.environ`) only supplies the base URL's credentials.
    """
    if run_dir is None:
        if dataset is None:
            raise InputError("--resume needs --dataset (or --run-dir)")
        run_dir = latest_unfinished_run(data_dir, dataset)
        if run_dir is None:
            raise InputError(f"no unfinished run of '{dataset}' to resume in "
                             f"{runs_root(data_dir, dataset)} (finished runs have written "
                             f"their version; start a new run without --resume)")
    where = run_dir / "run.json"
    record = load_run_record(run_dir)
    stored = dict(record["config"])
    # Runs from before `lookahead` existed used their concurrency as the window depth.
    stored["lookahead"] = stored.get("lookahead") or stored.get("concurrency")
    stored["data_dir"] = str(run_data_dir(run_dir, record))
    config = build_config(stored, environ={}, source=str(where))
    check_unchanged(config, overrides, where)
    given_url = overrides.get("base_url")
    if given_url is not None:
        given_url = coerce_setting("base_url", given_url, "--base-url")
    url = endpoint_url(config, record, given_url,
                       dict(os.environ if environ is None else environ), where)
    changes = {key: coerce_setting(key, value, flag_name(key)) for key, value in overrides.items()
               if key in RESUMABLE_OVERRIDES and value is not None}
    return dataclasses.replace(config, base_url=url, **changes), run_dir


def _check_data_dir(config: GenerateConfig) -> None:
    target = config.data_dir / config.dataset
    # Before anything is paid: a dataset folder inside a version would write into it.
    refuse_inside_version(target, "--data-dir/--dataset")
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
            # The live URL, not the stored form: it may carry the credentials.
            config, run_dir = resume_config(config.data_dir, config.dataset, existing,
                                            {**config.to_public(), "base_url": config.base_url})
    seeds = _load_seeds(config.seeds)
    if run_dir is None:
        config = resolve_defaults(config, detect_language(t.instruction for t in seeds.tasks))
        run_id = run_id or new_run_id()
        run_dir = runs_root(config.data_dir, config.dataset) / run_id
    else:
        run_id = run_dir.name
    prompts = _load_prompts(config)
    chat_template = _recipe_inputs(config, api_key)
    _check_key_variables(config)
    personas = _load_personas(config)
    inputs = input_fingerprint(seeds, prompts, chat_template, config.personas)
    record = load_run_record(run_dir) if (run_dir / "run.json").exists() else None
    if record is not None and "inputs" in record:
        check_inputs(record["inputs"], inputs, run_dir / "run.json")
    # Everything is validated: from here on files are written.
    _check_data_dir(config)
    if record is None:
        write_run_config(run_dir, {
            "run_id": run_id, "config": config.to_public(), "data_dir": str(config.data_dir),
            # The URL is stored without them; a resume must be given them again.
            "base_url_credentials": config.base_url is not None
            and strip_url_credentials(config.base_url) != config.base_url,
            "inputs": inputs})
    elif "inputs" not in record:  # a run started before inputs were recorded
        write_run_config(run_dir, {**record, "inputs": inputs})

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
        elif config.endpoints:
            client = stack.enter_context(_endpoint_pool(config, base_url, api_key, retry))
        else:
            client = stack.enter_context(_direct_client(config, base_url, api_key, retry))
        judge_model = config.filters.judge_model
        judge_client = None
        if judge_model is not None and judge_model != config.model:
            judge_client = stack.enter_context(
                _direct_client(config, base_url, api_key, retry, model=judge_model))
        # The embedded 135M model writes almost no usable few-shot examples; asked in chat it
        # answers the instruction itself, which makes a (demo-quality) instance.
        answer_client = (stack.enter_context(_direct_client(config, base_url, api_key, retry,
                                                            api="chat"))
                         if config.embedded else None)

        def make_client(model: str, url: str | None, api_key_env: str | None,
                        api: str | None) -> Client:
            """A client of another model (verifiers, response models), closed with the run.
            Its key comes from the environment variable it names, else the run's key."""
            key = api_key
            if api_key_env is not None:
                key = os.environ.get(api_key_env)
                if not key:
                    raise InputError(f"the environment variable {api_key_env} (the API key "
                                     f"of model {model!r}) is not set")
            return stack.enter_context(_direct_client(config, url or base_url, key, retry,
                                                      model=model, api=api))

        generator = Generator(config, seeds, prompts, client, journal, run_id=run_id,
                              endpoint_kind=endpoint_kind, judge_client=judge_client,
                              answer_client=answer_client, client_factory=make_client,
                              personas=personas, chat_template=chat_template)
        try:
            yield generator
        finally:
            # Stopped early (Ctrl-C, an error): answers already on their way are journaled,
            # so a resume does not pay for them again. Bounded by one request timeout; a
            # Batch API job is not waited for (its id is journaled, a resume polls it).
            wait = 0 if config.batch_api else config.timeout
            # After a journal failure nothing more can be saved: say nothing about saving.
            if generator.in_flight and wait and generator.journal.failure is None:
                print(f"selfinstruct: saving the answers of {generator.in_flight} requests in "
                      f"flight (up to {wait:.0f} s; Ctrl-C again abandons them)",
                      file=sys.stderr)
            generator.settle(timeout=wait)


def _load_seeds(path: Path) -> SeedSet:
    require_regular_file(path, "seed file (.jsonl)")
    return load_seeds(path)


def _load_prompts(config: GenerateConfig) -> PromptSet:
    """The run's templates, after checking none of them is a FIFO or device (which would
    block the reader or never end)."""
    folder_name = languages.get(config.language or languages.DEFAULT).prompts_folder
    folder = (config.prompts_dir or bundled_dir("prompts")) / folder_name
    own = {**recipe_class(config.recipe).templates, **features.templates(config)}
    for name in (*(f"{t}.j2" for t in (*TEMPLATE_NAMES, *own)), "labels.json"):
        require_regular_file(folder / name, "prompt template or labels.json")
    return PromptSet(folder_name, config.prompts_dir, extra_templates=own)


def _recipe_inputs(config: GenerateConfig, api_key: str | None) -> ChatTemplate | None:
    """Check a recipe's own inputs before anything is written; magpie's chat template.

    Magpie's template comes from --chat-template, the embedded model's GGUF or the
    endpoint's /props (which may need the key, so it is fetched here, where the key is).
    """
    if config.from_version is not None:
        from selfinstruct.evol_parents import check_from_version

        check_from_version(config.from_version)
    if config.recipe != "magpie":
        return None
    from selfinstruct.chat_template import load_chat_template

    return load_chat_template(config, api_key)


def _check_key_variables(config: GenerateConfig) -> None:
    """Every environment variable named as an endpoint's or a verifier's key is set: checked
    before anything is written, so a missing key is one line, not a half-made run folder."""
    named = [(e["api_key_env"], f"endpoint {strip_url_credentials(e['base_url'])}")
             for e in config.endpoints if e.get("api_key_env")]
    named += [(v["api_key_env"], f"model {v['model']!r}")
              for v in config.verify if v.get("api_key_env")]
    for variable, owner in named:
        if not os.environ.get(variable):
            raise InputError(f"the environment variable {variable} (the API key of {owner}) "
                             f"is not set")


def _load_personas(config: GenerateConfig) -> list[Persona]:
    if config.personas is None:
        return []
    from selfinstruct.personas import load_personas

    return load_personas(config.personas, config.language or languages.DEFAULT)


def _direct_client(config: GenerateConfig, base_url: str, api_key: str | None,
                   retry: RetryPolicy, model: str | None = None,
                   api: str | None = None, concurrency: int | None = None,
                   retry_unreachable: bool = True) -> LLMClient:
    return LLMClient(
        base_url=base_url, api_key=api_key, model=model or str(config.model),
        api=api or str(config.api), concurrency=concurrency or config.concurrency or 1,
        timeout=config.timeout or 120.0, retry=retry, seed=config.seed or 0,
        rpm=config.rpm, tpm=config.tpm, retry_unreachable=retry_unreachable)


def _endpoint_pool(config: GenerateConfig, base_url: str, api_key: str | None,
                   retry: RetryPolicy) -> EndpointPool:
    """The run's endpoint and the [[endpoints]] serving the same model, as one client.

    Each endpoint's key comes from the environment variable it names, else the run's key.
    """
    members = [{"base_url": base_url}, *config.endpoints]
    clients = []
    for member in members:
        key = api_key
        if member.get("api_key_env"):
            key = os.environ.get(member["api_key_env"])
            if not key:
                raise InputError(f"the environment variable {member['api_key_env']} (the API "
                                 f"key of endpoint {strip_url_credentials(member['base_url'])}) "
                                 f"is not set")
        clients.append(_direct_client(config, member["base_url"], key, retry,
                                      concurrency=member.get("concurrency"),
                                      retry_unreachable=False))
    return EndpointPool(clients)
