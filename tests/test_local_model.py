"""The real embedded model: llama.cpp's server with SmolLM2-135M, started and stopped by us.

This is the README's main job in small: no key, no endpoint, a real model on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from selfinstruct.local_model import MODEL_ALIAS, LocalModelServer

ROOT = Path(__file__).resolve().parent.parent


def test_embedded_model_gives_n_usable_tasks_from_a_foreign_seed_file(tmp_path):
    """The README's main job on seeds this project did not write: N tasks with instances.

    The 135M model writes almost no usable few-shot instances, so the embedded run answers
    each instruction in chat instead (selfinstruct.recipes.self_instruct: answer mode); N
    counts tasks that kept an instance, and the run tops up until it has them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "generate",
         "--seeds", "tests/fixtures/foreign_seeds_en.jsonl", "--num-instructions", "10",
         "--dataset", "demo", "--data-dir", str(tmp_path), "--seed", "11", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEMO QUALITY" in result.stderr
    version = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["endpoint_kind"] == "embedded" and manifest["demo_quality"] is True
    assert manifest["model"] == MODEL_ALIAS and manifest["api"] == "completions"
    rows = [json.loads(line) for line in (version / "train.jsonl").read_text().splitlines()]
    assert len({r["task_id"] for r in rows}) >= 10
    assert manifest["target"]["accepted"] >= 10 and manifest["target"]["reached"]
    assert all(r["instruction"] and r["output"] for r in rows)
    assert manifest["usage"]["bootstrap"]["requests"] >= 1
    assert manifest["usage"]["instances"]["requests"] >= 10


def test_server_starts_answers_and_stops():
    with LocalModelServer() as server:
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as reply:
            models = json.load(reply)
        process = server._process
        assert process is not None and process.poll() is None
    assert [m["id"] for m in models["data"]] == [MODEL_ALIAS]
    assert process.poll() is not None  # stopped with the context
    assert server.base_url.startswith("http://127.0.0.1:")


def test_serve_local_answers_the_openai_client_until_interrupted():
    import signal
    import socket

    import openai

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "selfinstruct", "serve-local", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                               max_retries=0, timeout=60)
        assert process.stderr is not None
        startup = ""
        while "serving" not in startup:  # the command says when it is ready
            line = process.stderr.readline()
            assert line, f"serve-local exited: {startup}"
            startup += line
        models = [m.id for m in client.models.list()]
        reply = client.completions.create(model=MODEL_ALIAS, prompt="1. Say hi.\n2.",
                                          max_tokens=8, temperature=0)
        assert models == [MODEL_ALIAS] and reply.choices[0].text
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 0
    err = startup + rest
    assert "DEMO QUALITY" in err and f"--base-url http://127.0.0.1:{port}/v1" in err
