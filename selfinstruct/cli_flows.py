"""The Prefect commands of the CLI: `serve` (the cron deployment of `scheduled_release`).

`register(subparsers)` adds them to the main parser. Prefect is imported only when a command
runs, after `prefect_env.configure()` — Prefect reads its settings at import — so `--help`
and the dataset commands never pay for it. Everything the user typed is validated before that
import, so a typo fails in milliseconds, not after a server start.

`add_runner_options` gives any command that runs a flow the scale-out flags
(``--task-runner dask --dask-address tcp://…``); `runner_parameters` turns them into flow
parameters.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from selfinstruct import prefect_env
from selfinstruct._errors import InputError
from selfinstruct.seeds import resolve_seed_path

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

    from selfinstruct.config import GenerateConfig

SCHEDULE_NEEDS_SERVER = (
    "schedules need a running Prefect server (the temporary one never fires them): run "
    "`prefect server start` in another terminal, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api` (see docs/prefect.md)"
)
_PATH_SETTINGS = ("seeds", "data_dir", "prompts_dir")


def add_runner_options(p: argparse.ArgumentParser) -> None:
    """Where instance generation runs: in the flow's process, or on a Dask cluster."""
    p.add_argument("--task-runner", choices=["local", "dask"], default="local",
                   help="dask: answer instance requests on a Dask cluster (pays for batches "
                        "that take seconds; see docs/prefect.md); default: %(default)s")
    p.add_argument("--dask-address", metavar="tcp://HOST:PORT",
                   help="scheduler of an existing Dask cluster (default with --task-runner "
                        "dask: a temporary local cluster)")


def runner_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The flow parameters for `add_runner_options`' flags."""
    if args.dask_address and args.task_runner != "dask":
        raise InputError("--dask-address only applies with --task-runner dask")
    return {"task_runner": args.task_runner, "dask_address": args.dask_address}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `serve` to the CLI's subparsers."""
    from selfinstruct.cli import add_config_options

    p = subparsers.add_parser(
        "serve",
        help="serve the scheduled_release flow on a cron schedule (needs a Prefect server)",
        description="Register the deployment 'scheduled_release/NAME' with the Prefect server "
        "at $PREFECT_API_URL and run its scheduled flow runs until interrupted: each run "
        "generates a new version with these settings, then releases it. The API key and "
        "HF_TOKEN stay in this process's environment; they are never flow parameters.",
    )
    add_config_options(p)
    p.add_argument("--cron", required=True, metavar="EXPR",
                   help='cron schedule, e.g. "0 3 * * *" (03:00 every day)')
    p.add_argument("--timezone", default="UTC", help="IANA time zone of --cron "
                   "(default: %(default)s)")
    p.add_argument("--name", default="scheduled", help="deployment name (default: %(default)s)")
    p.add_argument("--output-dir", type=Path, default=Path("dist"),
                   help="where release archives go (default: %(default)s)")
    p.add_argument("--push-to-hub", metavar="ORG/NAME",
                   help="also publish each version to this Hugging Face dataset repo")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    add_runner_options(p)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show Prefect's INFO logs on the console")
    p.set_defaults(func=_serve)


def export_secrets(api_key: str | None, base_url: str | None) -> None:
    """Hand the API key and the base URL's credentials to flow runs through the environment.

    Prefect stores flow parameters, so secrets are never parameters: the key goes as
    ``OPENAI_API_KEY``, and a base URL with credentials as ``OPENAI_BASE_URL``, from which
    the flow restores them (its ``config`` parameter holds the stripped URL).
    """
    from selfinstruct.redact import strip_url_credentials

    if api_key:
        os.environ["OPENAI_API_KEY"] = api_key
    if base_url and strip_url_credentials(base_url) != base_url:
        os.environ["OPENAI_BASE_URL"] = base_url


def serve_config(args: argparse.Namespace) -> GenerateConfig:
    """The generation settings of `serve`'s flags, validated (credentials included)."""
    from selfinstruct.cli import generation_flags
    from selfinstruct.config import build_config

    return build_config(generation_flags(args), args.config)


def serve_parameters(args: argparse.Namespace,
                     settings: GenerateConfig | None = None) -> dict[str, Any]:
    """The `scheduled_release` parameters for these flags, validated; no secret among them."""
    if args.private and not args.push_to_hub:
        raise InputError("--private only applies with --push-to-hub ORG/NAME")
    config = (settings or serve_config(args)).to_public()
    for name in _PATH_SETTINGS:
        # A schedule outlives this shell: pin relative paths to where it was set up.
        if config.get(name) is not None:
            path = resolve_seed_path(config[name]) if name == "seeds" else Path(config[name])
            config[name] = str(path.resolve())
    return {"config": config, "output_dir": str(args.output_dir.resolve()),
            "push_to_hub": args.push_to_hub, "private": args.private,
            **runner_parameters(args)}


def build_deployment(name: str, cron: str, timezone: str,
                     parameters: dict[str, Any]) -> RunnerDeployment:
    """The cron deployment of `scheduled_release` (Prefect must be configured first)."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.types.entrypoint import EntrypointType
    from pydantic import ValidationError

    from selfinstruct.orchestration.schedule import scheduled_release

    try:
        schedule = CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        problem = "; ".join(error["msg"] for error in exc.errors())
        raise InputError(f"--cron {cron!r} / --timezone {timezone!r}: {problem}") from None
    # A module entry point: flow runs import it from the installed package, wherever the
    # serving process was started (a file path would be relative to its working directory).
    deployment = scheduled_release.to_deployment(
        name=name, schedules=[schedule], parameters=parameters,
        description="Generate a new selfinstruct dataset version, then release it.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # `to_deployment` is "sync compatible": called outside an event loop it returns the
    # deployment itself, never the coroutine its annotation also allows.
    return cast("RunnerDeployment", deployment)


def _serve(args: argparse.Namespace) -> int:
    settings = serve_config(args)
    parameters = serve_parameters(args, settings)
    export_secrets(args.api_key, settings.base_url)  # flow runs inherit this environment
    prefect_env.configure(verbose=args.verbose)
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise InputError(SCHEDULE_NEEDS_SERVER)
    deployment = build_deployment(args.name, args.cron, args.timezone, parameters)
    print(f"selfinstruct: serving scheduled_release/{args.name} ({args.cron!r}, "
          f"{args.timezone}) via {PREFECT_API_URL.value()}; Ctrl-C to stop", file=sys.stderr)
    try:
        serve(deployment, print_starting_message=args.verbose)
    except KeyboardInterrupt:
        # Not the generate message: runs in progress stop, their journals keep the answers.
        print(f"selfinstruct: stopped serving scheduled_release/{args.name}", file=sys.stderr)
    return 0
