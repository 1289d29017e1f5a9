"""The environment of a subprocess that talks to the Hub stand-in as a user's machine would.

Why a module: tests that publish a version and load it back with `datasets` run the client in
a subprocess (huggingface_hub reads its endpoint and token at import), and each needs the same
environment: none of the developer's HF_* settings, the stand-in as the endpoint, a private
HF_HOME, no Xet, telemetry or progress bars, and loopback never proxied.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hub_client_env(hub_url: str, token: str, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HF_", "HUGGINGFACE_")) and key != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": hub_url, "HF_TOKEN": token,
            "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "NO_PROXY": "127.0.0.1"}
