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
