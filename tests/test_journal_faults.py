"""A journal that cannot be written, or was damaged, stops the run in one line (issue 12).

Writer failures are real ones: the disk-full device ``/dev/full`` for the writer thread, and
a file-size limit (RLIMIT_FSIZE, the kernel's own EFBIG) under a whole ``selfinstruct
generate`` process. Damage is done to real journals written by real runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.cli import main
from selfinstruct.journal import Journal, JournalError, _GroupWriter, read_run_config
from selfinstruct.llm import Completion
from tests.servers.openai_server import RunningServer, start_server

ROOT = Path(__file__).resolve().parent.parent


def test_a_failing_disk_fails_every_waiter_instead_of_hanging_them(tmp_path):
    fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    writer = _GroupWriter(fd, tmp_path / "journal.jsonl")
    done = [threading.Event() for _ in range(3)]
    try:
        for event in done:
            writer.put(b'{"type": "x"}', event.set)
        assert all(event.wait(10) for event in done)  # called back, not left waiting
        with pytest.raises(JournalError, match=r"No space left on device.*--resume"):
            writer.check()
        later = threading.Event()
        writer.put(b'{"type": "y"}', later.set)  # after the failure: answered at once
        assert later.wait(10)
    finally:
        writer.close()
        os.close(fd)
    assert JournalError.exit_code == 1 and issubclass(JournalError, InputError)


FILLING = """
import resource, signal, sys, threading
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.RLIM_INFINITY))
from selfinstruct.journal import Journal, JournalError
from selfinstruct.llm import Completion
called = []
with Journal(Path(sys.argv[1])) as journal:
    for i in range(5):  # written one by one: these fit
        journal.record_answer(f"k{i}", "bootstrap", Completion("x" * 90, "stop"))
    for i in range(5, 60):  # queued together: one group that does not fit
        journal.record_answer(f"k{i}", "bootstrap", Completion("x" * 90, "stop"),
                              then=lambda i=i: called.append(i))
    for call in (journal.sync, lambda: journal.record_accepted("t", "x")):
        try:
            call()
        except JournalError as exc:
            print("raised:", exc)
    print("failure:", journal.failure is not None, "callbacks:", len(called))
"""


def test_a_journal_that_cannot_grow_answers_every_caller_and_keeps_whole_lines(tmp_path):
    done = subprocess.run([sys.executable, "-c", FILLING, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert len(out) == 3 and all("cannot write the run journal (File too large)" in line
                                 for line in out[:2])
    assert out[2] == "failure: True callbacks: 55"  # nobody left waiting
    data = (tmp_path / "journal.jsonl").read_bytes()
    assert 0 < len(data) <= 3000 and data.endswith(b"\n")
    with Journal(tmp_path) as journal:  # whole lines only: it replays and appends again
        assert journal.cached_answers == 5 and journal.failure is None


def test_text_that_utf8_cannot_hold_is_journaled_escaped_not_fatal(tmp_path):
    """Answers are cleaned where they enter, but no caller may kill the writer thread."""
    odd = Completion("lone \ud800 surrogate", "stop", request_id="r")
    with Journal(tmp_path) as journal:
        journal.record_answer("k", "bootstrap", odd)
        journal.record_accepted("t1", "also \udfff here")
        journal.record_accepted("t2", "line\u2028separator and next\x85line")
        journal.sync()
    assert b"\\ud800" in (tmp_path / "journal.jsonl").read_bytes()
    with Journal(tmp_path) as journal:
        # An answer replays as a fresh one arrives: with U+FFFD in place of the surrogate.
        assert journal.answer("k").text == "lone \ufffd surrogate"
        # Only "\n" ends a line: U+2028 and U+0085 inside text are not line breaks.
        assert journal.accepted == {"t1": "also \udfff here",
                                    "t2": "line\u2028separator and next\x85line"}


def test_journaled_foreign_ids_and_absurd_usage_replay_coerced(tmp_path):
    """Journals written before the wire rules (an int id, 1e308 tokens) resume cleanly."""
    line = {"type": "answer", "key": "k", "stage": "bootstrap",
            "completion": {"text": "hi", "finish_reason": "stop", "request_id": 7,
                           "prompt_tokens": 1e308, "completion_tokens": "x", "error": None,
                           "attempts": 1}}
    (tmp_path / "journal.jsonl").write_text(json.dumps(line) + "\n")
    with Journal(tmp_path) as journal:
        answer = journal.answer("k")
    assert (answer.request_id, answer.prompt_tokens, answer.completion_tokens) == ("7", 0, 0)
    assert answer.usage_unknown


def three_answers(run_dir: Path) -> Path:
    with Journal(run_dir) as journal:
        for key in ("k1", "k2", "k3"):
            journal.record_answer(key, "bootstrap", Completion(key, "stop"))
    return run_dir / "journal.jsonl"


@pytest.mark.parametrize(("damage", "reason"), [
    ('{"type": "answer", "key": "k2", "sta', "invalid JSON"),
    ('{"type": "answer", "key": 5, "stage": "b", "completion": {}}', "expected a string"),
    ('{"type": "answer", "stage": "b", "completion": {}}', "missing field 'key'"),
    ('{"type": "accepted", "task_id": "t", "instruction": null}', "expected a string"),
    ('["not", "an", "event"]', "not a JSON object but a list"),
    ('{"type": "finished", "version": "v\udcff"}', "not UTF-8"),
])
def test_a_corrupt_line_in_the_middle_is_refused_and_the_journal_left_as_it_was(
        tmp_path, damage, reason):
    path = three_answers(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[1] = damage.encode("utf-8", "surrogateescape")
    path.write_bytes(b"\n".join(lines) + b'{"torn')  # and a torn tail, which stays too
    before = path.read_bytes()
    with pytest.raises(InputError, match=rf"journal.jsonl:2: corrupt journal line.*{reason}"), \
            Journal(tmp_path):
        pass
    assert path.read_bytes() == before
    with Journal(tmp_path.parent / "other"):  # the refused run's lock was released
        pass


@pytest.mark.parametrize(("content", "message"), [
    (b"[]", "expected a JSON object, got list"),
    (b'{"run_id": "x", "config": 3}', "field 'config': missing or not an object"),
    (b'{"config": ', "invalid JSON"),
    (b'{"config": {"a": "\xff"}}', "not UTF-8"),
])
def test_a_bad_run_json_is_refused_in_one_line(tmp_path, content, message):
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_run_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'run.json'}: ")


@pytest.mark.parametrize("name", ["run.json", "journal.jsonl"])
def test_run_files_that_are_not_regular_files_are_refused(tmp_path, name):
    """A FIFO would block the read forever; /dev/zero would never end."""
    (tmp_path / "run.json").write_text('{"config": {}}')
    (tmp_path / name).unlink(missing_ok=True)
    os.mkfifo(tmp_path / name)
    with pytest.raises(InputError, match=f"{name}: not a regular file"):
        if name == "run.json":
            read_run_config(tmp_path)
        else:
            with Journal(tmp_path):
                pass


def generate_argv(server: RunningServer, data_dir: Path, *extra: str) -> list[str]:
    return ["generate", "--seeds", str(ROOT / "seeds" / "en_general.jsonl"), "--dataset", "j",
            "--num-instructions", "30", "--data-dir", str(data_dir), "--base-url",
            server.base_url, "--model", "test-model", "--seed", "5", "--no-progress", *extra]


def stopped_run(server: RunningServer, data_dir: Path) -> Path:
    """A run stopped by its request budget: an unfinished journal to resume."""
    assert main(generate_argv(server, data_dir, "--max-requests", "12")) == 3
    (journal,) = data_dir.glob("j/.runs/*/journal.jsonl")
    return journal


def test_resuming_a_journal_damaged_in_the_middle_exits_with_the_line(tmp_path, capsys):
    with start_server() as server:
        journal = stopped_run(server, tmp_path)
        lines = journal.read_bytes().split(b"\n")
        lines[3] = lines[3][: len(lines[3]) // 2]
        journal.write_bytes(b"\n".join(lines))
        before = journal.read_bytes()
        sent = server.stats()["requests_total"]
        capsys.readouterr()
        code = main(["generate", "--dataset", "j", "--data-dir", str(tmp_path), "--resume",
                     "--no-progress"])
        assert server.stats()["requests_total"] == sent  # nothing asked, nothing paid
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"selfinstruct: error: {journal}:4: corrupt journal line")
    assert journal.read_bytes() == before and not list(tmp_path.glob("j/v*"))


def test_resuming_with_a_bad_run_json_exits_with_its_name(tmp_path, capsys):
    with start_server() as server:
        journal = stopped_run(server, tmp_path)
    run_json = journal.parent / "run.json"
    run_json.write_text('{"run_id": "x"}')
    capsys.readouterr()
    code = main(["generate", "--dataset", "j", "--data-dir", str(tmp_path), "--resume",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"selfinstruct: error: {run_json}: field 'config': missing "
                                 f"or not an object"]


# Runs `selfinstruct generate` with files limited to LIMIT bytes: the journal outgrows it
# mid-run and its writes fail with EFBIG, as on a full disk. SIGXFSZ is ignored (inherited
# through exec) so the write fails instead of killing the process.
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from selfinstruct.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_journal_that_cannot_grow_stops_the_run_in_one_line_and_resumes(tmp_path):
    with start_server() as server:
        argv = generate_argv(server, tmp_path, "--concurrency", "4")
        stopped = subprocess.run([sys.executable, "-c", LIMITED, "40000", *argv], cwd=ROOT,
                                 capture_output=True, text=True, timeout=300)
        (journal,) = tmp_path.glob("j/.runs/*/journal.jsonl")
        err = stopped.stderr.strip().splitlines()
        assert stopped.returncode == 1, stopped.stderr
        assert len(err) == 1 and "cannot write the run journal (File too large)" in err[0]
        assert not list(tmp_path.glob("j/v*"))
        data = journal.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 40000
        written = [json.loads(line) for line in data.splitlines()]  # every line whole
        assert sum(e["type"] == "answer" for e in written) > 5
        resumed = subprocess.run([sys.executable, "-m", "selfinstruct", *argv[:1],
                                  "--dataset", "j", "--data-dir", str(tmp_path), "--resume",
                                  "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert server.stats()["max_success_count"] <= 2  # journaled answers not bought again
    version = Path(resumed.stdout.strip().splitlines()[-1])
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 30
    assert manifest["usage"]["bootstrap"]["cached"] > 0
