"""Prefect around the flows: prefect.yaml, `selfinstruct serve`, the quiet isolated runtime.

None of these start a Prefect server: they check what a user's `prefect deploy`, `selfinstruct
serve` and every other command would be handed, and that fast commands never import Prefect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfinstruct import prefect_env
from selfinstruct._errors import InputError
from selfinstruct.cli import build_parser
from selfinstruct.config import build_config
from tests.dataset_samples import write_sample

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "sk-serve-SENTINEL-000000000000"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OPENAI_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_prefect_yaml_loads_as_prefect_deploy_reads_it():
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint
    from rich.console import Console

    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 (closed with the test)
    deployments, actions = _load_deploy_configs_and_actions(ROOT / "prefect.yaml",
                                                            console=console)
    console.file.close()
    assert {d["name"] for d in deployments} == {"nightly", "on-demand", "release"}
    assert actions["pull"] is None  # prefect deploy records the project folder
    names = {}
    for deployment in deployments:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        names[deployment["name"]] = flow.name
        flow.validate_parameters(deployment["parameters"])  # names and types of the flow
        if "config" in deployment["parameters"]:
            build_config(deployment["parameters"]["config"], environ={})
    assert names == {"nightly": "scheduled_release", "on-demand": "generate_dataset",
                     "release": "release_dataset"}
    nightly = next(d for d in deployments if d["name"] == "nightly")
    (schedule,) = nightly["schedules"]
    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == "0 3 * * *"


def _serve_args(*extra: str):
    return build_parser().parse_args([
        "serve", "--cron", "0 3 * * *", "--seeds", "seeds/en_general.jsonl", "--dataset",
        "nightly", "--num-instructions", "50", "--base-url", "http://127.0.0.1:9/v1",
        "--model", "m", "--api-key", SENTINEL, *extra])


def test_serve_builds_the_cron_deployment_without_secrets():
    from selfinstruct.cli_flows import build_deployment, serve_parameters

    args = _serve_args("--push-to-hub", "org/name", "--task-runner", "dask",
                       "--dask-address", "tcp://127.0.0.1:8786")
    parameters = serve_parameters(args)
    # A schedule outlives the shell that set it up: its paths are absolute.
    assert parameters["config"]["seeds"] == str(Path("seeds/en_general.jsonl").resolve())
    assert parameters["config"]["seed"] is None  # each scheduled run draws its own
    assert parameters["task_runner"] == "dask"
    assert parameters["dask_address"] == "tcp://127.0.0.1:8786"
    deployment = build_deployment("nightly", "0 3 * * *", "Europe/Paris", parameters)
    assert deployment.name == "nightly" and deployment.flow_name == "scheduled_release"
    # A module path: flow runs find it in the installed package, whatever their cwd.
    assert deployment.entrypoint == "selfinstruct.orchestration.schedule.scheduled_release"
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "0 3 * * *"
    assert schedule.schedule.timezone == "Europe/Paris"
    assert deployment.parameters == parameters
    assert SENTINEL not in json.dumps(parameters)


@pytest.mark.parametrize(("extra", "message"), [
    (("--private",), "--private only applies with --push-to-hub"),
    (("--dask-address", "tcp://x:1"), "--dask-address only applies with --task-runner dask"),
])
def test_serve_rejects_bad_flags_before_prefect(extra, message):
    from selfinstruct.cli_flows import serve_parameters

    with pytest.raises(InputError, match=message):
        serve_parameters(_serve_args(*extra))


def test_serve_rejects_a_bad_cron():
    from selfinstruct.cli_flows import build_deployment

    with pytest.raises(InputError, match="--cron 'every night'"):
        build_deployment("nightly", "every night", "UTC", {})


def test_serve_needs_a_prefect_server(tmp_path):
    """With no PREFECT_API_URL, serving would register with a temporary server that never
    fires schedules: refuse with the commands to run instead."""
    done = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "serve", "--cron", "0 3 * * *", "--seeds",
         "seeds/en_general.jsonl", "--dataset", "nightly", "--num-instructions", "5",
         "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
        cwd=ROOT, env=_clean_env(PREFECT_HOME=str(tmp_path / "home")), capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 2
    assert "prefect server start" in done.stderr
    assert "PREFECT_API_URL=http://127.0.0.1:4200/api" in done.stderr


def test_prefect_env_fills_only_what_the_user_left_unset(tmp_path, monkeypatch):
    for name in prefect_env.defaults(tmp_path):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", "/elsewhere")
    prefect_env.configure(tmp_path)
    assert os.environ["PREFECT_HOME"] == "/elsewhere"
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(
        tmp_path.resolve() / ".prefect" / "results")
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "WARNING"
    assert int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 60
    assert prefect_env.defaults(tmp_path, verbose=True)[
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "INFO"


def test_fast_commands_never_import_prefect(tmp_path):
    folder = write_sample(tmp_path / "data" / "demo")
    code = textwrap.dedent("""
        import contextlib, io, sys
        from selfinstruct.cli import main

        with contextlib.redirect_stdout(io.StringIO()):
            for argv in (["--help"], ["serve", "--help"], ["validate", sys.argv[1]],
                         ["versions", "demo", "--data-dir", sys.argv[2]]):
                try:
                    main(argv)
                except SystemExit:
                    pass
        print("prefect" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "data")],
                          cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
