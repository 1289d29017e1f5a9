"""Batch API mode through the real `openai` client and the loopback server's Batch API.

Why: batch mode must give the data direct mode gives (same bodies, same answers, same order),
resolve every future, treat a failed line as direct mode treats a failed request, turn the
queue into jobs when it is full or idle, and — the costly failure — make a restarted run wait
for the job it already paid for instead of creating another. Jobs here complete on their 2nd
poll and polls are 20 ms apart, so each test takes a fraction of a second.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from selfinstruct.batch_api import BatchClient
from selfinstruct.batch_lines import BatchClientClosed, batch_price, line_outcome
from selfinstruct.config import GenerateConfig, build_config
from selfinstruct.journal import Journal
from selfinstruct.llm import Completion, EndpointRefused, LLMClient, Request, RetryPolicy
from selfinstruct.pipeline import Generator, run
from selfinstruct.run import open_run, resume_config
from tests.servers.adversarial_proxy import Plan, start_proxy
from tests.servers.openai_server import RunningServer, start_server

BOOTSTRAP = "Come up with a series of tasks:\n1. Say hello to the team.\n2. Plan a picnic.\n3."
CLASSIFY = ("Can the following task be regarded as a classification task with finite output "
            "labels?\n\nTask: Classify the sentiment of this review as positive or negative.\n"
            "Is it classification?")
FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)


def some_requests(n: int) -> list[Request]:
    """Requests of several kinds and parameters (incl. a stop list and non-ASCII text)."""
    kinds = [
        ("bootstrap", BOOTSTRAP, {"max_tokens": 64, "temperature": 0.7, "top_p": 0.5,
                                  "presence_penalty": 2.0, "stop": ["\n9.", "9."]}),
        ("classify", CLASSIFY, {"max_tokens": 5, "temperature": 0.0, "stop": ["\n"]}),
        ("instances", "日本語の質問に答えてください。", {"max_tokens": 30}),
    ]
    return [Request(stage, f"{prompt} {i}" if stage == "bootstrap" else prompt,
                    {**params, "seed": i}, f"n-{i}")
            for i, (stage, prompt, params) in ((i, kinds[i % len(kinds)]) for i in range(n))]


@contextmanager
def batch_client(server: RunningServer, journal: Journal, api: str = "chat",
                 **options: Any) -> Iterator[BatchClient]:
    settings: dict[str, Any] = {"flush_after": 0.05, "poll_interval": 0.02, "retry": FAST_RETRY}
    with BatchClient(base_url=server.base_url, api_key="k", model="test-model", api=api,
                     journal=journal, **{**settings, **options}) as client:
        yield client


def direct_answers(server: RunningServer, requests: list[Request],
                   api: str = "chat") -> list[Completion]:
    with LLMClient(base_url=server.base_url, api_key="k", model="test-model", api=api,
                   retry=FAST_RETRY) as client:
        return client.run_batch(requests)


def results(futures: list[Future[Completion]]) -> list[Completion]:
    return [future.result(timeout=10) for future in futures]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def same_answer(a: Completion, b: Completion) -> bool:
    return (a.text, a.finish_reason, a.prompt_tokens, a.completion_tokens, a.error) == (
        b.text, b.finish_reason, b.prompt_tokens, b.completion_tokens, b.error)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "run") as opened:
        yield opened


def events(journal: Journal) -> list[dict[str, Any]]:
    journal.sync()
    return [json.loads(line) for line in journal.path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------------------------
# Answers, order, futures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_batch_answers_equal_direct_answers_in_request_order(
        openai_server: RunningServer, journal: Journal, api: str) -> None:
    requests = some_requests(7)
    with batch_client(openai_server, journal, api=api) as client:
        futures = [client.submit(r) for r in requests]
        twin = client.submit(requests[0])  # the same request again shares its line
        answers = results(futures)
        assert twin.result(timeout=10).text == answers[0].text
    stats = openai_server.stats()
    assert (stats["batches_created"], stats["batch_requests_total"]) == (1, 7)
    direct = direct_answers(openai_server, requests, api)
    assert all(same_answer(a, d) for a, d in zip(answers, direct, strict=True))
    assert all(a.error is None and a.text and a.request_id and a.attempts == 1 for a in answers)
    # Identical bodies: each was answered once as a batch line and once directly.
    assert sorted(openai_server.stats()["success_fingerprints"].values()) == [2] * 7
    kinds = [e["type"] for e in events(journal)]
    assert kinds == ["batch", "batch_done"] and not journal.pending_batches
    assert client.describe()["batch"] is True and "k" not in json.dumps(client.describe())


def test_the_requests_file_has_one_line_per_request_keyed_by_journal_key(
        openai_server: RunningServer, journal: Journal) -> None:
    requests = some_requests(3)
    with batch_client(openai_server, journal) as client:
        results([client.submit(r) for r in requests])
    sdk = openai.OpenAI(base_url=openai_server.base_url, api_key="k")
    batch = sdk.batches.list().data[0]
    assert sdk.files.retrieve(batch.input_file_id).purpose == "batch"
    lines = [json.loads(x) for x in sdk.files.content(batch.input_file_id).text.splitlines()]
    assert [line["custom_id"] for line in lines] == [
        r.key("test-model", "chat") for r in requests]
    assert {(line["method"], line["url"]) for line in lines} == {
        ("POST", "/v1/chat/completions")}
    assert lines[0]["body"]["messages"] == [{"role": "user", "content": requests[0].prompt}]
    assert batch.endpoint == "/v1/chat/completions" and batch.completion_window == "24h"


# --------------------------------------------------------------------------------------------
# When the queue becomes a job
# --------------------------------------------------------------------------------------------


def test_queue_flushes_when_full_and_when_idle(
        openai_server: RunningServer, journal: Journal) -> None:
    requests = some_requests(7)
    with batch_client(openai_server, journal, batch_size=3, flush_after=0.6) as client:
        started = time.monotonic()
        futures = [client.submit(r) for r in requests]
        wait_for(lambda: openai_server.stats()["batches_created"] == 2)
        assert time.monotonic() - started < 0.5  # two full jobs went out at once...
        assert not futures[6].done()  # ...the 7th request waits for the queue to go idle
        answers = results(futures)
        assert time.monotonic() - started >= 0.6
    sizes = [b.request_counts.total for b in openai.OpenAI(
        base_url=openai_server.base_url, api_key="k").batches.list().data]
    assert sorted(sizes) == [1, 3, 3]
    direct = direct_answers(openai_server, requests)
    assert all(same_answer(a, d) for a, d in zip(answers, direct, strict=True))


# --------------------------------------------------------------------------------------------
# Failed lines
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,max_retries,error,jobs", [
    ("500", 2, None, 2),  # retried in a second job, which succeeds
    ("429", 2, None, 2),
    ("expired", 2, None, 2),  # "response": null, error.code batch_expired
    ("400", 2, "http_400: Invalid request in batch line (test server).", 1),  # not retried
    ("500", 0, "http_500: gave up after 1 attempts", 1),
])
def test_failed_lines_are_retried_or_reported_like_direct_failures(
        journal: Journal, kind: str, max_retries: int, error: str | None, jobs: int) -> None:
    requests = some_requests(4)
    with start_server(batch_error_rate=1.0, batch_error_kinds=[kind],
                      max_faults_per_request=1) as server:
        retry = RetryPolicy(max_retries=max_retries, base_delay=0.01, max_delay=0.05)
        with batch_client(server, journal, retry=retry) as client:
            answers = results([client.submit(r) for r in requests])
        stats = server.stats()
        direct = direct_answers(server, requests)
    assert stats["batches_created"] == jobs
    assert stats["batch_errors_by_kind"] == {kind: 4}
    if error is None:
        assert all(same_answer(a, d) for a, d in zip(answers, direct, strict=True))
        assert all(a.attempts == 2 for a in answers)
    else:
        assert all(a.error == error and a.text == "" for a in answers)
    answered = [e for e in events(journal) if e["type"] == "answer"]
    assert answered == []  # the journal is the pipeline's business


def test_lines_of_a_cancelled_job_go_into_a_new_job(journal: Journal) -> None:
    requests = some_requests(3)
    with start_server(batch_polls=1000, batch_seconds=0.3) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="k")
        with batch_client(server, journal) as client:
            futures = [client.submit(r) for r in requests]
            wait_for(lambda: bool(journal.pending_batches))
            sdk.batches.cancel(next(iter(journal.pending_batches)))  # e.g. from the dashboard
            answers = results(futures)
        assert server.stats()["batches_created"] == 2
        direct = direct_answers(server, requests)
    assert all(same_answer(a, d) and a.attempts == 2
               for a, d in zip(answers, direct, strict=True))
    done = [e["status"] for e in events(journal) if e["type"] == "batch_done"]
    assert done == ["cancelled", "completed"]


def test_unreachable_endpoint_gives_up_like_direct_mode(journal: Journal) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    with BatchClient(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="test-model",
                     api="chat", journal=journal, flush_after=0.01,
                     retry=RetryPolicy(max_retries=0)) as client:
        answer = client.submit(some_requests(1)[0]).result(timeout=10)
    assert answer.error and answer.error.startswith("connection_error: gave up after 1 attempts")
    assert not journal.pending_batches


def test_line_outcome_reads_every_record_shape() -> None:
    ok = {"custom_id": "a", "error": None, "response": {"status_code": 200, "request_id": "r1",
          "body": {"id": "cmpl-1", "choices": [{"text": "hi", "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}}
    completion, retry = line_outcome(ok, "completions")
    assert (completion.text, completion.request_id, completion.prompt_tokens, retry) == (
        "hi", "r1", 3, False)
    empty = {"response": {"status_code": 200, "body": {"choices": []}}}
    assert line_outcome(empty, "chat")[0].error.startswith("empty_choices") and line_outcome(
        empty, "chat")[1]
    not_run = {"response": None, "error": {"code": "batch_expired", "message": "late"}}
    assert line_outcome(not_run, "chat") == (Completion("", None, error="batch_expired: late"),
                                             True)


@pytest.mark.parametrize(("body", "kind", "retry"), [
    ({"choices": "oops"}, "invalid_response", True),
    ({"choices": [None]}, "invalid_response", True),
    ({"choices": [{"finish_reason": "stop"}]}, "invalid_response", True),
    ({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]},
     "no_content", False),
    ("not an object", "invalid_response", True),
])
def test_hostile_batch_lines_fail_with_a_kind_not_an_exception(body, kind, retry) -> None:
    """The same wire rules as direct mode: a malformed line is an error kind, never a crash."""
    record = {"custom_id": "a", "response": {"status_code": 200, "body": body}}
    completion, retryable = line_outcome(record, "chat")
    assert completion.error.split(":")[0] == kind and retryable is retry
    error_body = {"custom_id": "a", "response": {"status_code": 400, "body": {"error": "x"}}}
    assert line_outcome(error_body, "chat")[0].error == "http_400: x"
    assert line_outcome("garbage", "chat")[0].error.startswith("invalid_response")


def test_foreign_ids_and_absurd_usage_in_batch_lines_are_coerced() -> None:
    body = {"id": {"weird": 1}, "usage": {"prompt_tokens": 1e308, "completion_tokens": "2"},
            "choices": [{"message": {"content": "a\ud800b"}, "finish_reason": "stop"}]}
    line = json.loads(json.dumps({"response": {"status_code": 200, "request_id": 42,
                                                "body": body}}))
    completion, retryable = line_outcome(line, "chat")
    assert completion.request_id == "42" and not retryable
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)
    assert completion.usage_unknown and completion.text == "a\ufffdb"


# --------------------------------------------------------------------------------------------
# Paid once: restarts re-attach to the journaled job
# --------------------------------------------------------------------------------------------


def test_restarted_run_polls_the_journaled_job_instead_of_creating_one(
        openai_server: RunningServer, tmp_path: Path) -> None:
    requests = some_requests(6)
    keys = {r.key("test-model", "chat") for r in requests}
    run_dir = tmp_path / "run"
    with Journal(run_dir) as journal:
        # Never polls: the run is "killed" while its job is pending.
        client = BatchClient(base_url=openai_server.base_url, api_key="k", model="test-model",
                             api="chat", journal=journal, flush_after=0.02, poll_interval=3600)
        futures = [client.submit(r) for r in requests]
        wait_for(lambda: bool(journal.pending_batches))
        client.close()
    for future in futures:
        with pytest.raises(BatchClientClosed):
            future.result(timeout=0)
    assert openai_server.stats()["batch_requests_total"] == 0  # nothing answered yet

    with Journal(run_dir) as journal:  # the resumed process replays the journal
        assert [set(s) for s in journal.pending_batches.values()] == [keys]
        with batch_client(openai_server, journal) as client:
            # It asks for half of the requests first, as a look-ahead window would.
            first = results([client.submit(r) for r in requests[:3]])
            wait_for(lambda: not journal.pending_batches)
            # The other answers were journaled on arrival, before anyone asked for them.
            assert all(journal.answer(r.key("test-model", "chat")) for r in requests[3:])
            rest = results([client.submit(r) for r in requests[3:]])
    stats = openai_server.stats()
    assert (stats["batches_created"], stats["batch_requests_total"]) == (1, 6)
    assert stats["max_success_count"] == 1  # no line answered twice
    direct = direct_answers(openai_server, requests)
    assert all(same_answer(a, d) for a, d in zip(first + rest, direct, strict=True))
    with Journal(run_dir) as journal:
        assert journal.pending_batches == {}


def test_job_created_but_never_journaled_is_found_by_its_tag(
        openai_server: RunningServer, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = some_requests(4)

    def crash(batch_id: str, stages: dict[str, str]) -> None:
        raise RuntimeError("killed between creating the job and journaling it")

    monkeypatch.setattr(journal, "record_batch", crash)
    with batch_client(openai_server, journal) as client:
        futures = [client.submit(r) for r in requests]
        with pytest.raises(RuntimeError, match="killed"):
            futures[0].result(timeout=10)
        with pytest.raises(RuntimeError, match="killed"):
            client.submit(requests[0]).result(timeout=10)  # a broken client says why
    monkeypatch.undo()
    with batch_client(openai_server, journal) as client:
        answers = results([client.submit(r) for r in requests])
    stats = openai_server.stats()
    assert (stats["batches_created"], stats["batch_requests_total"]) == (1, 4)
    assert all(same_answer(a, d) for a, d in
               zip(answers, direct_answers(openai_server, requests), strict=True))


def test_endpoint_without_batch_api_stops_the_run(
        openai_server: RunningServer, journal: Journal) -> None:
    with BatchClient(base_url=openai_server.url + "/no-batch-api", api_key="k",
                     model="test-model", api="chat", journal=journal, flush_after=0.01,
                     retry=FAST_RETRY) as client:
        future = client.submit(some_requests(1)[0])
        with pytest.raises(EndpointRefused, match="run without --batch-api"):
            future.result(timeout=10)
    assert openai_server.stats()["batches_created"] == 0


def test_batch_price_and_describe() -> None:
    assert batch_price({"input": 1.0, "output": 4.0, "batch_discount": 0.5}) == {
        "input": 0.5, "output": 2.0}
    assert batch_price({"input": 1.0, "output": 4.0}) == {"input": 1.0, "output": 4.0}
    assert batch_price(None) is None


# --------------------------------------------------------------------------------------------
# The server's Batch API itself
# --------------------------------------------------------------------------------------------


def test_server_batch_lifecycle_cancel_and_validation() -> None:
    with start_server(batch_polls=3) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        body = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}
        good = sdk.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
        batch = sdk.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        statuses = [batch.status] + [sdk.batches.retrieve(batch.id).status for _ in range(4)]
        assert statuses == ["validating", "in_progress", "in_progress", "completed",
                            "completed"]
        output = sdk.files.content(sdk.batches.retrieve(batch.id).output_file_id).text
        assert json.loads(output)["response"]["body"]["choices"][0]["message"]["content"]
        assert server.stats()["batch_requests_total"] == 1  # answered once, not per poll

        pending = sdk.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
        assert sdk.batches.cancel(pending.id).status == "cancelling"
        cancelled = sdk.batches.retrieve(pending.id)
        assert (cancelled.status, cancelled.output_file_id) == ("cancelled", None)
        with pytest.raises(openai.BadRequestError):
            sdk.batches.cancel(pending.id)

        bad_lines = [line, line, {**line, "custom_id": "b", "url": "/v1/completions"}]
        bad = sdk.files.create(file=("bad.jsonl", "\n".join(map(json.dumps, bad_lines))
                                     .encode()), purpose="batch")
        failed = sdk.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions",
                                    completion_window="24h")
        assert failed.status == "failed" and failed.errors and failed.errors.data
        assert [e.line for e in failed.errors.data] == [2, 3]

        listed = sdk.batches.list(limit=2)
        assert [b.id for b in listed.data] == [failed.id, pending.id] and listed.has_more
        with pytest.raises(openai.NotFoundError):
            sdk.batches.retrieve("batch-unknown")
        with pytest.raises(openai.NotFoundError):
            sdk.files.content("file-unknown")
        assert server.stats()["requests_by_endpoint"]["/v1/batches/{id}"] >= 6


def test_server_batch_completes_after_batch_seconds() -> None:
    with start_server(batch_polls=1000, batch_seconds=0.0) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        line = {"custom_id": "a", "method": "POST", "url": "/v1/completions",
                "body": {"model": "test-model", "prompt": "hi"}}
        upload = sdk.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/completions",
                                   completion_window="24h")
        assert sdk.batches.retrieve(batch.id).status == "completed"


# --------------------------------------------------------------------------------------------
# The whole pipeline in batch mode
# --------------------------------------------------------------------------------------------


def pipeline_config(server: RunningServer, data_dir: Path, *, batch: bool,
                    poll: float = 0.01) -> GenerateConfig:
    flags = {"seeds": "seeds/en_general.jsonl", "dataset": "d", "data_dir": data_dir,
             "num_instructions": 12, "base_url": server.base_url, "model": "test-model",
             "seed": 3, "concurrency": 8, "batch_api": batch, "batch_poll_interval": poll,
             "retry_base_delay": 0.01}
    return build_config(flags, environ={})


def generate_version(server: RunningServer, data_dir: Path, *, batch: bool) -> Path:
    """Run the whole pipeline against `server`, in Batch API mode or direct."""
    config = pipeline_config(server, data_dir, batch=batch)
    with open_run(config, api_key="k", warn=False) as gen:
        return Path(run(gen))


def dataset_rows(version: Path, name: str) -> list[dict[str, Any]]:
    """Rows of a version file without request ids (they name HTTP exchanges, not data)."""
    out = []
    for line in (version / name).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row.pop("request_id", None)
        row.get("provenance", {}).pop("request_id", None)
        out.append(row)
    return out


def same_dataset(a: Path, b: Path) -> bool:
    return all(dataset_rows(a, name) == dataset_rows(b, name)
               for name in ("train.jsonl", "rejected.jsonl"))


def test_pipeline_in_batch_mode_writes_the_dataset_direct_mode_writes(
        openai_server: RunningServer, tmp_path: Path) -> None:
    batch_version = generate_version(openai_server, tmp_path / "batch", batch=True)
    stats = openai_server.stats()
    direct_version = generate_version(openai_server, tmp_path / "direct", batch=False)
    assert same_dataset(batch_version, direct_version)
    assert len(dataset_rows(batch_version, "train.jsonl")) >= 12
    assert stats["batches_created"] >= 3  # bootstrap, classify and instances each waited
    assert stats["batch_requests_total"] == stats["batch_successes_total"]
    assert stats["max_success_count"] == 1 and stats["requests_by_endpoint"].get(
        "/v1/chat/completions") is None  # everything went through batches


def test_pipeline_killed_with_a_pending_job_resumes_without_paying_again(
        openai_server: RunningServer, tmp_path: Path) -> None:
    config = pipeline_config(openai_server, tmp_path / "data", batch=True, poll=3600)
    failures: list[BaseException] = []

    def run_until_killed(gen: Generator) -> None:
        try:
            run(gen)
        except BaseException as exc:
            failures.append(exc)

    with open_run(config, api_key="k", warn=False) as gen:
        worker = threading.Thread(target=run_until_killed, args=(gen,))
        worker.start()
        wait_for(lambda: bool(gen.journal.pending_batches))
        gen.client.close()  # the process dies while its first job is pending
        worker.join(timeout=10)
        pending = next(iter(gen.journal.pending_batches))
        run_dir = gen.journal.run_dir
    assert [type(e) for e in failures] == [BatchClientClosed]

    config, run_dir = resume_config(config.data_dir, config.dataset, run_dir,
                                    {"batch_poll_interval": 0.01})
    with open_run(config, api_key="k", run_dir=run_dir, warn=False) as gen:
        resumed = Path(run(gen))
        kinds = [(e["type"], e.get("batch_id")) for e in events(gen.journal)]
    stats = openai_server.stats()
    assert stats["max_success_count"] == 1  # no request line answered twice
    assert kinds.count(("batch", pending)) == 1 and ("batch_done", pending) in kinds
    assert stats["batches_created"] == sum(kind == "batch" for kind, _ in kinds)
    assert same_dataset(resumed, generate_version(openai_server, tmp_path / "direct",
                                                  batch=False))


def test_hostile_batch_output_lines_never_crash_a_batch_run(
        openai_server: RunningServer, tmp_path: Path) -> None:
    """Output files whose lines are malformed, null-content, oddly counted or cut in half
    (through the adversarial proxy): the run finishes; each line is retried, coerced or
    recorded as a request error, as in direct mode."""
    modes = ("choices_string", "content_filter", "usage_huge", "id_object", "lone_surrogate",
             "truncated_json")
    with start_proxy(openai_server, Plan(batch_modes=modes)) as proxy:
        version = generate_version(proxy, tmp_path, batch=True)  # type: ignore[arg-type]
        applied = proxy.stats()["applied"]
    assert set(applied) == set(modes)
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 12
    assert "no_content" in manifest["request_errors"]
    assert sum(s.get("usage_unknown", 0) for s in manifest["usage"].values()) > 0
    (journal,) = tmp_path.rglob("journal.jsonl")  # answers were cleaned where they entered
    assert "\ufffd" in journal.read_text(encoding="utf-8")
    assert b"\\ud800" not in journal.read_bytes()
