"""A run that ends without one usable row writes nothing and says why (never an empty version).

An empty version looks like a result, and releasing it publishes a split `datasets` cannot
load; so the run stops with exit code 4, the funnel and the top rejection reasons, and its
journal stays resumable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selfinstruct.cli import EXIT_EMPTY, main
from tests.servers.openai_server import start_server


def test_all_requests_failing_writes_no_version(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    with start_server(fault_rate=1.0, fault_kinds="500", max_faults_per_request=1000) as server:
        code = main(["generate", "--seeds", "seeds/en_general.jsonl", "--num-instructions", "5",
                     "--dataset", "dead", "--data-dir", str(data), "--base-url",
                     server.base_url, "--model", "m", "--api-key", "k", "--max-retries", "0",
                     "--stall-rounds", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_EMPTY
    last = err.strip().splitlines()[-1]
    assert last.startswith("selfinstruct: error: no usable row: no instruction was accepted")
    assert "resumable" in last
    assert "server_error" in last or "500" in last  # the top rejection reason is named
    dataset = data / "dead"
    assert not [p for p in dataset.iterdir() if p.name.startswith("v")]  # no version
    runs = list((dataset / ".runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "journal.jsonl").is_file()  # resumable


def test_no_usable_instances_writes_no_version(tmp_path: Path, capsys) -> None:
    """Tasks are accepted but no instance answer is usable: nothing is written.

    The instance templates are replaced by a prompt the test server does not recognise, so it
    answers plain text with no examples in it.
    """
    prompts = tmp_path / "prompts"
    shutil.copytree("prompts", prompts)
    for name in ("instances_input_first.j2", "instances_output_first.j2"):
        (prompts / "en" / name).write_text("Say one word about: {{ instruction }}\n",
                                           encoding="utf-8")
    data = tmp_path / "data"
    with start_server() as server:
        code = main(["generate", "--seeds", "seeds/en_general.jsonl", "--num-instructions", "3",
                     "--dataset", "noinst", "--data-dir", str(data), "--base-url",
                     server.base_url, "--model", "m", "--api-key", "k", "--max-rounds", "2",
                     "--prompts-dir", str(prompts), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_EMPTY, err[-800:]
    last = err.strip().splitlines()[-1]
    assert "no usable row" in last and "no_valid_instances" in last
    assert "instructions were accepted but none kept a valid instance" in last
    assert not [p for p in (data / "noinst").iterdir() if p.name.startswith("v")]
