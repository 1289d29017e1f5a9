"""Secrets in base URLs and keys: never printed, never stored, still used, and resumable.

Sentinel secrets are grepped in stdout, stderr and every file written under the data folder.
A small Basic-auth gate on 127.0.0.1 stands in for a password-protected endpoint: it answers
401 (echoing the URL with its password, as careless servers do) unless the request carries
the URL's credentials, and forwards good requests to the OpenAI-compatible test server.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from selfinstruct.config import build_config
from selfinstruct.redact import find_secret, redact, strip_url_credentials
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "p@SENTINEL-PASS-4711"  # a raw '@' inside: the LAST '@' ends the userinfo
API_KEY = "sk-SENTINELKEY0123456789"
SENTINELS = ("SENTINEL-PASS-4711", "SENTINELKEY0123456789")


class Gate:
    """Requires Basic auth user:PASSWORD, then forwards to the upstream with a Bearer key."""

    def __init__(self, upstream: RunningServer) -> None:
        host, port = upstream.base_url.split("//")[1].split("/")[0].split(":")
        expected = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
        self.seen: list[str] = []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                auth = self.headers.get("Authorization", "")
                gate.seen.append(auth)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if auth != expected:
                    self._send(401, json.dumps({"error": {
                        "message": f"bad credentials; expected http://user:{PASSWORD}@gate "
                                   f"with {API_KEY}", "type": "invalid_request_error"}}).encode(),
                               {"Content-Type": "application/json"})
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("authorization", "host", "content-length")}
                conn.request(self.command, self.path, body,
                             {**headers, "Authorization": "Bearer k"})
                answer = conn.getresponse()
                data = answer.read()
                self._send(answer.status, data, {"Content-Type": answer.getheader(
                    "Content-Type", "application/json")})
                conn.close()

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, password: str | None = PASSWORD) -> str:
        userinfo = f"user:{password}@" if password else ""
        return f"http://{userinfo}127.0.0.1:{self.port}/v1"


@contextmanager
def gate_server() -> Iterator[Gate]:
    with start_server() as upstream:
        gate = Gate(upstream)
        gate.thread.start()
        try:
            yield gate
        finally:
            gate.httpd.shutdown()
            gate.httpd.server_close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfinstruct", *args], cwd=ROOT,
                          env={"PATH": "", "OPENAI_API_KEY": API_KEY, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def assert_no_secret(data_dir: Path, *outputs: str) -> None:
    files = [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    for sentinel in SENTINELS:
        for text in outputs:
            assert sentinel not in text, text
        for path in files:
            assert sentinel.encode() not in path.read_bytes(), path


def generate_args(data: Path, *extra: str) -> list[str]:
    return ["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "sec",
            "--num-instructions", "12", "--data-dir", str(data), "--model", "test-model",
            "--seed", "5", "--no-progress", *extra]


def test_one_rule_redacts_urls_keys_and_query_secrets():
    text = (f"GET http://user:{PASSWORD}@host:8/v1?api_key=QSECRET123&x=1 failed; "
            f"Authorization: Bearer {API_KEY} hf_abcdefghijklmnop")
    out = redact(text)
    assert "SENTINEL" not in out and "QSECRET123" not in out and "hf_abc" not in out
    assert "http://[REDACTED]@host:8/v1?api_key=[REDACTED]&x=1" in out
    assert strip_url_credentials(f"https://user:{PASSWORD}@h.example/v1?key=abc") == \
        "https://h.example/v1?key=[REDACTED]"
    assert strip_url_credentials("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert find_secret("see sk-proj-****1234") == "OpenAI-style key"
    assert find_secret("plain text about a bearer of news") is not None  # strict by design
    assert find_secret("plain text") is None


def test_stored_config_never_holds_the_password():
    config = build_config({"seeds": "s.jsonl", "dataset": "d", "num_instructions": 1,
                           "base_url": f"http://user:{PASSWORD}@127.0.0.1:9/v1"}, environ={})
    assert config.to_public()["base_url"] == "http://127.0.0.1:9/v1"


def test_password_in_base_url_used_never_shown_and_resumable(tmp_path):
    data = tmp_path / "data"
    with gate_server() as gate:
        # A wrong password: the 401 line (whose body echoes secrets) shows none of them.
        failed = cli(*generate_args(data, "--base-url", gate.url("p@WRONG-SENTINEL-PASS-4711")))
        assert failed.returncode == 1 and "401" in failed.stderr, failed.stderr
        assert "WRONG" not in failed.stderr
        missing = cli(*generate_args(data, "--base-url", gate.url().replace("/v1", "/wrong")))
        assert missing.returncode == 1 and "404" in missing.stderr, missing.stderr
        # The right one, stopped by a budget, then resumed.
        first = cli(*generate_args(data, "--base-url", gate.url(), "--max-requests", "6"))
        assert first.returncode == 3, first.stderr
        assert gate.seen and all(s.startswith("Basic ") for s in gate.seen)
        run_json = next(data.glob("sec/.runs/*/run.json")).read_text()
        assert json.loads(run_json)["base_url_credentials"] is True
        # Without the credentials the resume is refused up front, naming the way out.
        refused = cli("generate", "--dataset", "sec", "--data-dir", str(data), "--resume")
        assert refused.returncode == 2
        assert "had credentials" in refused.stderr and "--base-url" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        # OPENAI_BASE_URL with the same credential-free form supplies them.
        resumed = cli("generate", "--dataset", "sec", "--data-dir", str(data), "--resume",
                      "--max-requests", "1000", env={"OPENAI_BASE_URL": gate.url()})
        assert resumed.returncode == 0, resumed.stderr
        assert Path(resumed.stdout.strip().splitlines()[-1]).name == "v0001"
        assert_no_secret(data, failed.stdout, failed.stderr, missing.stderr, first.stdout,
                         first.stderr, refused.stderr, resumed.stdout, resumed.stderr)


def test_resume_with_another_base_url_is_refused(tmp_path):
    data = tmp_path / "data"
    with gate_server() as gate:
        first = cli(*generate_args(data, "--base-url", gate.url(), "--max-requests", "4"))
        assert first.returncode == 3, first.stderr
        other = gate.url().replace(str(gate.port), str(gate.port + 1))
        refused = cli("generate", "--dataset", "sec", "--data-dir", str(data), "--resume",
                      "--base-url", other)
    assert refused.returncode == 2
    assert "--base-url: http://[REDACTED]@127.0.0.1" in refused.stderr
    assert "is not the endpoint of the run" in refused.stderr
    assert_no_secret(data, refused.stderr)


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_run_uses_the_url_credentials(tmp_path, monkeypatch):
    from selfinstruct.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    # Restored after the test; the CLI hands the credentials to the flow through it.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/unused")
    with gate_server() as gate:
        assert main(generate_args(data, "--base-url", gate.url(), "--prefect")) == 0
        assert gate.seen and all(s.startswith("Basic ") for s in gate.seen)
    assert list(data.glob("sec/v0001/manifest.json"))
    assert_no_secret(data)
