"""Kill `selfinstruct generate` at random moments, resume it, and check nothing was lost.

Each trial starts a fresh run as a subprocess against the loopback test server, SIGKILLs it
at a random moment, resumes it with ``--resume`` and checks:

* the version holds exactly N instructions, with no duplicate ids or texts;
* every instruction the killed process had accepted (its journal's ``accepted`` events) is in
  the final dataset under the same task id;
* the result equals an uninterrupted reference run with the same seed, row for row;
* no request whose answer was journaled was sent again — the only requests answered twice
  are those whose answers the dead process never made durable, identified through the
  request id, which embeds the request's fingerprint. There can be at most 2 × concurrency
  of them: up to `concurrency` in flight, plus answers that had arrived (freeing their
  slot) but were still waiting for the journal's group fsync.

Usage: ``python bench/crash_resume.py [--trials 20] [--instructions 200] [--seed 0]``.
Prints one line per trial and a one-line summary; exits 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.openai_server import RunningServer, start_server  # noqa: E402

SEEDS = ROOT / "seeds" / "en_general.jsonl"
CONCURRENCY = 8


@dataclass
class Trial:
    killed_at: float
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    accepted_before_kill: int = 0
    resent_in_flight: int = 0
    finished_before_kill: bool = False


def _command(server: RunningServer, data_dir: Path, n: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "selfinstruct", "generate", "--seeds", str(SEEDS),
            "--num-instructions", str(n), "--dataset", "crash", "--data-dir", str(data_dir),
            "--base-url", server.base_url, "--model", "test-model", "--seed", str(seed),
            "--no-progress", "--concurrency", str(CONCURRENCY)]


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
            "OPENAI_API_KEY": "bench-key"}


def _final_rows(data_dir: Path) -> list[dict]:
    (version,) = sorted((data_dir / "crash").glob("v*"))
    return [json.loads(line) for line in (version / "train.jsonl").open(encoding="utf-8")]


def _journal_events(data_dir: Path) -> list[dict]:
    events = []
    for journal in (data_dir / "crash" / ".runs").glob("*/journal.jsonl"):
        for line in journal.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a torn last line from the kill
                events.append(json.loads(line))
    return events


def _tasks(rows: list[dict]) -> dict[str, str]:
    return {r["task_id"]: r["instruction"] for r in rows}


@contextmanager
def _server(latency_ms: float) -> Iterator[RunningServer]:
    with start_server(latency_ms=latency_ms) as server:
        yield server


def reference_run(n: int, seed: int, latency_ms: float) -> tuple[list[dict], float]:
    """An uninterrupted run: the rows every trial must reproduce, and how long it takes."""
    with tempfile.TemporaryDirectory() as tmp, _server(latency_ms) as server:
        start = time.monotonic()
        subprocess.run(_command(server, Path(tmp), n, seed), env=_env(), check=True,
                       capture_output=True, cwd=ROOT)
        return _final_rows(Path(tmp)), time.monotonic() - start


def run_trial(n: int, seed: int, kill_after: float, latency_ms: float,
              reference: list[dict]) -> Trial:
    trial = Trial(killed_at=kill_after)
    with tempfile.TemporaryDirectory() as tmp, _server(latency_ms) as server:
        data_dir = Path(tmp)
        process = subprocess.Popen(_command(server, data_dir, n, seed), env=_env(), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(kill_after)
        if process.poll() is not None:
            trial.finished_before_kill = True
        else:
            process.send_signal(signal.SIGKILL)
            process.wait()
        before = _journal_events(data_dir)
        accepted_before = {e["task_id"]: e["instruction"] for e in before
                           if e["type"] == "accepted"}
        journaled = {e["completion"]["request_id"][4:20] for e in before
                     if e["type"] == "answer" and e["completion"].get("request_id")}
        trial.accepted_before_kill = len(accepted_before)
        # Killed after the version was written: there is nothing left to resume.
        trial.finished_before_kill |= any(e["type"] == "finished" for e in before)
        if not trial.finished_before_kill:
            resume = subprocess.run(
                [sys.executable, "-m", "selfinstruct", "generate", "--dataset", "crash",
                 "--data-dir", str(data_dir), "--resume", "--no-progress"],
                env=_env(), capture_output=True, text=True, cwd=ROOT)
            if resume.returncode != 0:
                trial.problems.append(f"resume failed: {resume.stderr.strip()[-300:]}")
                trial.ok = False
                return trial
        rows = _final_rows(data_dir)
        tasks = _tasks(rows)
        stats = server.stats()
    if len(tasks) != len(_tasks(reference)):
        trial.problems.append(f"{len(tasks)} tasks with instances, reference has "
                              f"{len(_tasks(reference))}")
    if len({r["id"] for r in rows}) != len(rows):
        trial.problems.append("duplicate row ids")
    if len(set(tasks.values())) != len(tasks):
        trial.problems.append("duplicate instructions")
    lost = [t for t, text in accepted_before.items() if tasks.get(t, text) != text]
    if lost:
        trial.problems.append(f"{len(lost)} instructions accepted before the kill changed")
    strip = [(r["id"], r["instruction"], r["input"], r["output"]) for r in rows]
    if strip != [(r["id"], r["instruction"], r["input"], r["output"]) for r in reference]:
        trial.problems.append("final rows differ from the uninterrupted reference run")
    twice = [fp for fp, count in stats["success_fingerprints"].items() if count > 1]
    resent_journaled = [fp for fp in twice if fp[:16] in journaled]
    trial.resent_in_flight = len(twice) - len(resent_journaled)
    if resent_journaled:
        trial.problems.append(f"{len(resent_journaled)} journaled requests were sent again")
    if trial.resent_in_flight > 2 * CONCURRENCY:
        trial.problems.append(f"{trial.resent_in_flight} re-sent requests, more than could "
                              f"have been in flight or awaiting fsync (2 x {CONCURRENCY})")
    trial.ok = not trial.problems
    return trial


def run_trials(trials: int, n: int, seed: int, latency_ms: float,
               fractions: list[float] | None = None) -> list[Trial]:
    """`fractions` of the reference run's duration to kill at (default: uniform random)."""
    reference, duration = reference_run(n, seed, latency_ms)
    rng = random.Random(seed)
    results = []
    for i in range(trials):
        # Kill anywhere from start-up to just before the end of a normal run.
        fraction = fractions[i] if fractions else rng.uniform(0.1, 0.95)
        kill_after = max(0.3, fraction * duration)
        trial = run_trial(n, seed, kill_after, latency_ms, reference)
        results.append(trial)
        print(f"trial {i + 1:2d}: kill at {kill_after:5.2f}s "
              f"{'(run had finished) ' if trial.finished_before_kill else ''}"
              f"accepted before kill {trial.accepted_before_kill:4d}, re-sent in flight "
              f"{trial.resent_in_flight}: {'ok' if trial.ok else '; '.join(trial.problems)}",
              flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--instructions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    results = run_trials(args.trials, args.instructions, args.seed, args.latency_ms)
    killed = [t for t in results if not t.finished_before_kill]
    passed = sum(t.ok for t in results)
    print(f"crash_resume: {passed}/{len(results)} trials passed ({len(killed)} killed mid-run), "
          f"{args.instructions} instructions each, "
          f"{sum(t.resent_in_flight for t in results)} in-flight requests re-sent, "
          f"0 journaled requests re-sent" if passed == len(results) else
          f"crash_resume: {passed}/{len(results)} trials passed — FAILED")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
