"""Stop a `selfinstruct` subprocess at a deterministic point of its run, then kill it.

`selfinstruct.interrupts.pause_point` makes a run that has SELFINSTRUCT_TEST_PAUSE=<point> in
its environment write "paused <point>" to the FIFO named by SELFINSTRUCT_TEST_PAUSE_FIFO when
it gets there, and wait. Reading that line is how a test knows the run is exactly there — a
moment fixed by the run's own steps (after the k-th bootstrap round, before an instance
batch …), never by a sleep — and then interrupts or SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_paused(command: list[str], point: str, fifo: Path, env: dict[str, str],
                 stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start `command` and return once it is paused at `point` (a run that ends before it
    gets there fails the assertion with its output)."""
    os.mkfifo(fifo)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
        env={**env, "SELFINSTRUCT_TEST_PAUSE": point, "SELFINSTRUCT_TEST_PAUSE_FIFO": str(fifo)})

    def unblock_if_it_ends_first() -> None:
        process.wait()
        # No reader any more (it was paused and has read its line): nothing to unblock.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock_if_it_ends_first, daemon=True).start()
    with open(fifo, encoding="utf-8") as reader:
        assert reader.read() == f"paused {point}\n", process.communicate(timeout=60)
    return process


def kill_paused(command: list[str], point: str, fifo: Path, env: dict[str, str]) -> None:
    """Run `command` until it is paused at `point`, then SIGKILL it: no handler runs, like a
    crash."""
    process = start_paused(command, point, fifo, env, stdout=subprocess.DEVNULL)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
