"""The append-only run journal: the resume point of a run.

A run lives in ``data/<dataset>/.runs/<run-id>/``: ``run.json`` (the resolved, secret-free
config, written once) and ``journal.jsonl`` (one event per line, appended, flushed and
fsynced before the answer it records is used).

Resume works by *replay*: every model answer is journaled under the content address of its
request (model + API + rendered prompt + parameters + sample index). A resumed run executes
the same deterministic program from the start; each request whose answer is in the journal
is answered from it instead of the network, so no paid call is made twice, and the novelty
pool, counters and accepted rows come out exactly as before the crash. Contrast Alpaca, which
rewrites its whole state file each round and loses it when killed mid-write.

Only successful answers are reused. A request that failed after all retries is journaled for
the record but sent again on resume, since the outage may be over.

In Batch API mode a job is journaled (its id and request keys) as soon as it is created, and
marked done once all its answers are journaled: a run killed while a job is pending finds it
in `pending_batches` on resume and waits for that job instead of paying for a new one.

A process killed mid-append leaves a partial last line; opening the journal cuts it off, so
the next append starts on a clean line. An exclusive lock stops two processes from writing
the same run.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.llm import Completion

RUNS_DIR = ".runs"


def new_run_id() -> str:
    """Sortable by start time, unique across processes."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def runs_root(data_dir: Path, dataset: str) -> Path:
    return data_dir / dataset / RUNS_DIR


class Journal:
    """Open (or create) a run's journal; use as a context manager to hold its lock."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / "journal.jsonl"
        self._answers: dict[str, Completion] = {}
        self.accepted: dict[str, str] = {}  # task id -> instruction, as decided before
        # Batch API jobs created but not yet done: batch id -> {request key: stage}.
        self.pending_batches: dict[str, dict[str, str]] = {}
        self.finished_version: str | None = None
        self._file: Any = None
        self._lock_file: Any = None
        self._writer: _GroupWriter | None = None

    def __enter__(self) -> Journal:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.run_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise InputError(f"{self.run_dir}: another selfinstruct process is using this run") \
                from None
        self._replay()
        self._file = open(self.path, "a", encoding="utf-8")
        self._writer = _GroupWriter(self._file)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _replay(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as handle:
            data = handle.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                handle.truncate(end)  # a torn last line from a killed writer
        for line in data[:end].decode("utf-8").splitlines():
            event = json.loads(line)
            if event["type"] == "answer" and not event["completion"].get("error"):
                self._answers[event["key"]] = Completion.from_json(event["completion"])
            elif event["type"] == "accepted":
                self.accepted[event["task_id"]] = event["instruction"]
            elif event["type"] == "finished":
                self.finished_version = event["version"]
            elif event["type"] == "batch":
                self.pending_batches[event["batch_id"]] = event["requests"]
            elif event["type"] == "batch_done":
                self.pending_batches.pop(event["batch_id"], None)

    @property
    def cached_answers(self) -> int:
        return len(self._answers)

    def answer(self, key: str) -> Completion | None:
        """The journaled answer for a request key, if a successful one exists (a peek)."""
        return self._answers.get(key)

    def take_answer(self, key: str) -> Completion | None:
        """Hand a journaled answer over to its one user, and forget it.

        A 52K-instruction run replays ~150K answers; keeping each after its single use would
        cost hundreds of MB.
        """
        return self._answers.pop(key, None)

    def record_answer(self, key: str, stage: str, completion: Completion,
                      then: Callable[[], None] | None = None, *, keep: bool = True) -> None:
        """Make an answer durable; `then()` runs once it is on disk (fsynced).

        Without `then` the call waits for the disk itself. The pipeline passes `then` and uses
        the answer only when it runs, so nothing is used before it is durable, while many
        answers share one fsync. `keep=False`: the caller uses the answer now, so it is not
        kept in memory for a later `take_answer` (answers recorded ahead of their use — a
        Batch API job's other lines — are kept).
        """
        if keep and not completion.error:
            self._answers[key] = completion
        line = json.dumps({"type": "answer", "key": key, "stage": stage,
                           "completion": completion.to_json()}, ensure_ascii=False)
        self._write(line, then)

    def record_accepted(self, task_id: str, instruction: str) -> None:
        """Note an accepted instruction (made durable with the next group of writes).

        Replay recomputes decisions from the answers; these events let it verify that it
        reached the same ones, and let a reader see what a run has accepted so far.
        """
        if task_id in self.accepted:
            return
        self.accepted[task_id] = instruction
        line = json.dumps({"type": "accepted", "task_id": task_id, "instruction": instruction},
                          ensure_ascii=False)
        assert self._writer is not None
        self._writer.put(line, None)

    def sync(self) -> None:
        """Wait until everything recorded so far is on disk."""
        self._write(None, None)

    def record_batch(self, batch_id: str, requests: dict[str, str]) -> None:
        """Note a Batch API job ({request key: stage}) before waiting for it: the job is paid
        for once created, so a restarted run must find it here rather than create another."""
        self.pending_batches[batch_id] = dict(requests)
        self._write(json.dumps({"type": "batch", "batch_id": batch_id, "requests": requests,
                                "at": time.time()}), None)

    def record_batch_done(self, batch_id: str, status: str) -> None:
        """Note that every answer of a job is journaled (or the job ended without them)."""
        self.pending_batches.pop(batch_id, None)
        self._write(json.dumps({"type": "batch_done", "batch_id": batch_id, "status": status,
                                "at": time.time()}), None)

    def record_finished(self, version: str) -> None:
        self.finished_version = version
        self._write(json.dumps({"type": "finished", "version": version, "at": time.time()}),
                    None)

    def _write(self, line: str | None, then: Callable[[], None] | None) -> None:
        assert self._writer is not None, "use the journal as a context manager"
        if then is not None:
            self._writer.put(line, then)
            return
        done = threading.Event()
        self._writer.put(line, done.set)
        done.wait()


class _GroupWriter:
    """Appends lines from any thread; one fsync covers every line queued meanwhile.

    fsync takes milliseconds; done per answer on the client's event loop it stalled all
    requests. Here a thread writes whatever has queued up, fsyncs once, then runs the
    callbacks of those lines — group commit, as databases do it.
    """

    def __init__(self, file: Any) -> None:
        self._file = file
        self._queue: queue.SimpleQueue[tuple[str | None, Callable[[], None] | None] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="journal-writer")
        self._thread.start()

    def put(self, line: str | None, then: Callable[[], None] | None) -> None:
        """Queue a line (None: only wait for what is queued) and its callback."""
        self._queue.put((line, then))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            group = [item]
            while not self._queue.empty():
                group.append(self._queue.get())
            entries = [entry for entry in group if entry is not None]
            lines = [line for line, _ in entries if line is not None]
            if lines:
                self._file.write("".join(line + "\n" for line in lines))
                self._file.flush()
                os.fsync(self._file.fileno())
            for _, then in entries:
                if then is not None:
                    then()
            if len(entries) < len(group):
                return  # closed


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write ``run.json`` once, atomically; a resumed run reads it back."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, run_dir / "run.json")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not a selfinstruct run folder (no run.json)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc.msg}") from None


def latest_unfinished_run(data_dir: Path, dataset: str) -> Path | None:
    """The newest run of `dataset` that has not written its version yet."""
    root = runs_root(data_dir, dataset)
    if not root.is_dir():
        return None
    for run_dir in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        journal = run_dir / "journal.jsonl"
        if (run_dir / "run.json").exists() and not _has_finished(journal):
            return run_dir
    return None


def _has_finished(journal: Path) -> bool:
    if not journal.exists():
        return False
    with open(journal, "rb") as handle:
        return any(b'"type": "finished"' in line for line in handle)
