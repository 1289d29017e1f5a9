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

A write that fails (disk full, an I/O error) stops the run instead of hanging it: the lines
of the failed group are cut off again (so every line on disk stays whole), every later
journal call raises `JournalError`, and callbacks still run so nobody waits forever — the
next `sync` or synchronous write in the run's thread raises, before anything built on an
answer that is not durable leaves the process. Any damage other than a torn last line (a
corrupt line in the middle, a bad ``run.json``) is refused with the file and line, and the
journal is left untouched.
"""

from __future__ import annotations

import contextlib
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
from selfinstruct.fileio import atomic_write
from selfinstruct.llm import Completion

RUNS_DIR = ".runs"


class JournalError(InputError):
    """The journal could not be written: the run stops (exit 1); what is on disk is whole and
    a resume continues from it once the cause (often a full disk) is fixed."""

    exit_code = 1


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
        try:
            self._replay()
            self._file = open(self.path, "ab", buffering=0)
        except BaseException:
            self._unlock()
            raise
        self._writer = _GroupWriter(self._file.fileno(), self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _replay(self) -> None:
        """Read every event; cut a torn last line off only once all others have been read,
        so a journal refused for damage elsewhere is left exactly as it was."""
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a regular file")
        with open(self.path, "rb+") as handle:
            data = handle.read()
            end = data.rfind(b"\n") + 1
            for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    raise InputError(
                        f"{self.path}:{number}: corrupt journal line ({_reason(exc)}); only a "
                        f"torn last line is repaired — restore the file or start a new run "
                        f"without --resume") from None
            if end < len(data):
                handle.truncate(end)  # a torn last line from a killed writer

    def _apply(self, event: Any) -> None:
        """Take one event into the replay state (any malformed field raises)."""
        if not isinstance(event, dict):
            raise TypeError(f"not a JSON object but a {type(event).__name__}")
        kind = event["type"]
        if kind == "answer":
            key, completion = _text(event["key"]), event["completion"]
            if not isinstance(completion, dict):
                raise TypeError("'completion' is not an object")
            if not completion.get("error"):
                self._answers[key] = Completion.from_json(completion)
        elif kind == "accepted":
            self.accepted[_text(event["task_id"])] = _text(event["instruction"])
        elif kind == "finished":
            self.finished_version = _text(event["version"])
        elif kind == "batch":
            requests = event["requests"]
            if not isinstance(requests, dict):
                raise TypeError("'requests' is not an object")
            self.pending_batches[_text(event["batch_id"])] = requests
        elif kind == "batch_done":
            self.pending_batches.pop(_text(event["batch_id"]), None)
        elif not isinstance(kind, str):
            raise TypeError("'type' is not a string")
        # Other event types are notes for readers; replay does not need them.

    @property
    def failure(self) -> JournalError | None:
        """Why writing stopped, if it did: a run stopping on it has nothing left to save."""
        return None if self._writer is None else self._writer.failure

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
        self._write({"type": "answer", "key": key, "stage": stage,
                     "completion": completion.to_json()}, then)

    def record_accepted(self, task_id: str, instruction: str) -> None:
        """Note an accepted instruction (made durable with the next group of writes).

        Replay recomputes decisions from the answers; these events let it verify that it
        reached the same ones, and let a reader see what a run has accepted so far.
        """
        if task_id in self.accepted:
            return
        self.accepted[task_id] = instruction
        writer = self._open_writer()
        writer.check()
        writer.put(_encode({"type": "accepted", "task_id": task_id,
                            "instruction": instruction}), None)

    def sync(self) -> None:
        """Wait until everything recorded so far is on disk (`JournalError` if it cannot be)."""
        self._write(None, None)

    def record_batch(self, batch_id: str, requests: dict[str, str]) -> None:
        """Note a Batch API job ({request key: stage}) before waiting for it: the job is paid
        for once created, so a restarted run must find it here rather than create another."""
        self.pending_batches[batch_id] = dict(requests)
        self._write({"type": "batch", "batch_id": batch_id, "requests": requests,
                     "at": time.time()}, None)

    def record_batch_done(self, batch_id: str, status: str) -> None:
        """Note that every answer of a job is journaled (or the job ended without them)."""
        self.pending_batches.pop(batch_id, None)
        self._write({"type": "batch_done", "batch_id": batch_id, "status": status,
                     "at": time.time()}, None)

    def record_finished(self, version: str) -> None:
        self.finished_version = version
        self._write({"type": "finished", "version": version, "at": time.time()}, None)

    def _open_writer(self) -> _GroupWriter:
        assert self._writer is not None, "use the journal as a context manager"
        return self._writer

    def _write(self, event: dict[str, Any] | None, then: Callable[[], None] | None) -> None:
        """Queue `event`; run `then` once it is durable, or, without `then`, wait for that
        here and raise `JournalError` if the journal has failed."""
        writer = self._open_writer()
        line = None if event is None else _encode(event)
        if then is not None:
            writer.put(line, then)
            return
        done = threading.Event()
        writer.put(line, done.set)
        done.wait()
        writer.check()


def _encode(event: dict[str, Any]) -> bytes:
    """One journal line. Text is kept readable (not \\u-escaped) unless it cannot be UTF-8
    (a lone surrogate): then escaped JSON, which replays to exactly the same strings."""
    try:
        return json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(event).encode("ascii")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return " ".join(str(exc).split())[:120] or type(exc).__name__


class _GroupWriter:
    """Appends lines from any thread; one fsync covers every line queued meanwhile.

    fsync takes milliseconds; done per answer on the client's event loop it stalled all
    requests. Here a thread writes whatever has queued up, fsyncs once, then runs the
    callbacks of those lines — group commit, as databases do it.

    The thread never dies: after a failed write it stops writing, keeps `failure`, and still
    runs every callback, so no caller waits forever for a line that will never be written.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self._path = path
        self.failure: JournalError | None = None
        self._queue: queue.SimpleQueue[tuple[bytes | None, Callable[[], None] | None] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="journal-writer")
        self._thread.start()

    def put(self, line: bytes | None, then: Callable[[], None] | None) -> None:
        """Queue a line (None: only wait for what is queued) and its callback."""
        self._queue.put((line, then))

    def check(self) -> None:
        """Raise the failure, if writing has failed."""
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while not self._queue.empty():
                group.append(self._queue.get())
            entries = [entry for entry in group if entry is not None]
            if self.failure is None:
                self._append([line for line, _ in entries if line is not None])
            for _, then in entries:
                if then is None:
                    continue
                try:
                    then()
                except Exception as exc:  # a caller's bug: stop the run, do not kill the thread
                    self._fail(f"a journal callback failed ({type(exc).__name__}: {exc})")
            if len(entries) < len(group):
                return  # closed

    def _append(self, lines: list[bytes]) -> None:
        """Write and fsync `lines`; on failure cut the file back to where it was, so the
        journal holds whole lines only, and remember the failure."""
        if not lines:
            return
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            data = memoryview(b"".join(line + b"\n" for line in lines))
            while data:
                data = data[os.write(self._fd, data):]
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            self._fail(exc.strerror or str(exc))

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = JournalError(
                f"{self._path}: cannot write the run journal ({reason}); the run stopped. "
                f"Lines already written are intact: fix the cause and continue with --resume")


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write ``run.json`` once, atomically; a resumed run reads it back."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "run.json", _encode(config))


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The stored run: an object with a ``config`` object (anything else is refused here, in
    one line, rather than failing later with a KeyError)."""
    path = run_dir / "run.json"
    if path.exists() and not path.is_file():  # a FIFO would block, /dev/zero never end
        raise InputError(f"{path}: not a regular file")
    try:
        stored = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{path}: not a selfinstruct run folder (no run.json)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: {_reason(exc)}") from None
    if not isinstance(stored, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(stored).__name__}")
    if not isinstance(stored.get("config"), dict):
        raise InputError(f"{path}: field 'config': missing or not an object")
    return stored


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
