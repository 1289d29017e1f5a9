"""Shared fixtures: real loopback servers, and an environment that cannot reach the internet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers.openai_server import RunningServer, start_server

# A developer's own endpoint settings must not leak into tests: every test names its endpoint.
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.pop("OPENAI_API_KEY", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture
def openai_server() -> Iterator[RunningServer]:
    """A fresh OpenAI-compatible test server per test, so its counters belong to that test."""
    with start_server() as server:
        yield server


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test server for the whole session (it costs ~10 s to start).

    PREFECT_HOME and the persisted task results are in temp dirs so tests never touch a
    developer's Prefect state; flow-run heartbeats are off (each would otherwise wait ~1 s at
    the end of a run).
    """
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                             PREFECT_RESULTS_LOCAL_STORAGE_PATH: home / "results"}), \
            prefect_test_harness(server_startup_timeout=120):
        yield
