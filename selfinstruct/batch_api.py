"""OpenAI Batch API mode (``--batch-api``): the same answers at the batch price, hours later.

Why: OpenAI bills Batch API answers at a discount (half price at the time of writing) in
exchange for a completion window of up to 24 hours. A dataset run that can wait gets the same
data for less.

How it fits: `BatchClient` has the interface the pipeline uses of `LLMClient` —
``submit(request)`` returns a future of a `Completion`; ``model``, ``api``, ``describe()``,
``close()`` — so the pipeline, its ordered look-ahead window and the journal work unchanged.
Requests queue up; a background thread turns the queue into one batch job when it holds
`batch_size` requests, or when no request arrived for `flush_after` seconds (the pipeline has
issued its window and now waits for the oldest answer). A job is: the requests file (JSONL,
one line per request, its ``custom_id`` the request's journal key, its body exactly what
`LLMClient` would send), an upload, a batch, a poll every `poll_interval` seconds, then the
output and error files, from which every future is resolved on the client's thread, where
the pipeline's callback journals the answer before the pipeline uses it.

Paid once: a job's id and request keys are journaled right after it is created, before any
polling. A run killed while a job is pending finds the job in the journal on resume and polls
it: requests it covers wait for it instead of going into a new job, and answers to lines the
resumed run has not asked for yet are journaled when they arrive, where the pipeline will find
them. The gap between creating a job and journaling it is covered too: each job carries a
metadata tag (a hash of the run, the requests file and the attempt numbers), and before
creating a job the client looks for a recent one with the same tag.

Failures mirror `LLMClient`: a line answered 429 or 5xx, malformed, or left unanswered by a job
that failed, expired or was cancelled goes into a later job after a backoff, up to
``retry.max_retries`` times; other statuses become ``Completion(error=...)``. A 401/403/404 from
the files or batches endpoints stops the run (`EndpointRefused`): most OpenAI-compatible
servers (vLLM, Ollama, llama.cpp) have no Batch API at all.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import random
import threading
import time
from collections import deque
from typing import Any

import openai

from selfinstruct.batch_lines import (
    ENDPOINTS,
    TAG_KEY,
    TERMINAL,
    BatchClientClosed,
    Job,
    Line,
    Outcome,
    fail_lines,
    failure,
    is_fatal,
    line_outcome,
    resolve,
)
from selfinstruct.journal import Journal
from selfinstruct.llm import FATAL_STATUSES, Completion, EndpointRefused, Request, RetryPolicy
from selfinstruct.redact import redact
from selfinstruct.wire import (
    error_kind,
    request_body,
)


class BatchClient:
    """Answer requests through OpenAI Batch API jobs; `LLMClient`'s interface for the pipeline."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        api: str,
        journal: Journal,
        batch_size: int = 10_000,
        flush_after: float = 2.0,
        poll_interval: float = 30.0,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        seed: int = 0,
    ) -> None:
        if api not in ENDPOINTS:
            raise ValueError(f"api must be one of {', '.join(ENDPOINTS)}, not {api!r}")
        self.base_url = base_url
        self.model = model
        self.api = api
        self.batch_size = batch_size
        self.flush_after = flush_after
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)  # jitter only; never affects which data is kept
        self._journal = journal
        self._api_key = api_key  # only for redacting error messages; never logged or stored
        # The SDK's own retries are fine for uploads, polls and downloads (repeating them
        # costs nothing); creating a job is never retried blindly (see `_flush`).
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed",
                                     timeout=timeout, max_retries=self.retry.max_retries)
        self._cond = threading.Condition()
        self._lines: dict[str, Line] = {}  # submitted, not yet answered
        self._queue: deque[Line] = deque()  # waiting for the next job
        self._jobs: dict[str, Job] = {}
        self._covered: dict[str, str] = {}  # request key -> job that will answer it
        self._ready: dict[str, Completion] = {}  # answers that arrived before their request
        self._last_submit = 0.0
        self._not_before = 0.0  # retry backoff: no new job before this time
        self._closed = False
        self._broken: Exception | None = None  # why the background thread stopped
        for batch_id, stages in journal.pending_batches.items():
            self._watch(batch_id, stages, next_poll=0.0)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="selfinstruct-batch")
        self._thread.start()

    def describe(self) -> dict[str, Any]:
        """What the manifest may record about the endpoint: never the key."""
        return {"base_url": self.base_url, "model": self.model, "api": self.api, "batch": True,
                "batch_size": self.batch_size, "poll_interval": self.poll_interval}

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        """Queue one request for the next job (or wait for the journaled job covering it)."""
        key = request.key(self.model, self.api)
        future: concurrent.futures.Future[Completion] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batch client is closed")
            ready: Completion | Exception | None = self._broken or self._ready.pop(key, None)
            if ready is None:
                line = self._lines.get(key)
                if line is None:
                    line = self._lines[key] = Line(key, request)
                    line.batch_id = self._covered.get(key)
                    if line.batch_id is None:
                        self._queue.append(line)
                        self._last_submit = time.monotonic()
                        self._cond.notify()
                    else:
                        line.attempts = 1  # sent by an earlier process of this run
                line.waiters.append(future)
                return future
        resolve(future, ready)
        return future

    def close(self) -> None:
        """Stop polling. Pending jobs are left alone (never cancelled): they stay on the server
        and in the journal, where a resumed run finds them. Unanswered futures fail with
        `BatchClientClosed`, so nothing waits forever."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            lines = self._take(list(self._lines.values()))
            self._cond.notify_all()
        fail_lines(lines, BatchClientClosed("the batch client closed before this answer arrived; "
                                       "its job, if created, is in the journal"))
        self._thread.join(timeout=self.timeout)
        self._client.close()

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            while (work := self._next_work()) is not None:
                lines, jobs = work
                if lines:
                    self._flush(lines)
                for job in jobs:
                    self._poll(job)
        except Exception as exc:  # a bug or an unwritable journal: nobody may wait forever
            with self._cond:
                self._broken = exc
                lines = self._take(list(self._lines.values()))
            fail_lines(lines, exc)

    def _take(self, lines: list[Line]) -> list[Line]:
        """Remove `lines` from the unanswered ones (lock held): whoever takes a line resolves
        its futures, so close, errors and answers never resolve one twice."""
        return [line for line in lines if self._lines.pop(line.key, None) is line]

    def _next_work(self) -> tuple[list[Line], list[Job]] | None:
        """Wait until the queue should become a job or a job is due for a poll."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                flush_at = self._flush_at(now)
                due = [job for job in self._jobs.values() if job.next_poll <= now]
                if flush_at <= now or due:
                    count = min(self.batch_size, len(self._queue)) if flush_at <= now else 0
                    for job in due:
                        job.next_poll = math.inf  # being polled
                    return [self._queue.popleft() for _ in range(count)], due
                wake = min([flush_at, *(job.next_poll for job in self._jobs.values())])
                self._cond.wait(None if wake == math.inf else wake - now)
            return None

    def _flush_at(self, now: float) -> float:
        """When the queue becomes a job: at once when full, else after `flush_after` seconds
        without a new request; never before a retry backoff has passed."""
        if not self._queue:
            return math.inf
        due = now if len(self._queue) >= self.batch_size else self._last_submit + self.flush_after
        return max(due, self._not_before)

    def _watch(self, batch_id: str, stages: dict[str, str], next_poll: float) -> None:
        self._jobs[batch_id] = Job(batch_id, stages, next_poll)
        for key in stages:
            self._covered[key] = batch_id

    def _flush(self, lines: list[Line]) -> None:
        """Send `lines` as one job, and journal the job before waiting for it."""
        path = ENDPOINTS[self.api]
        content = b"".join(
            json.dumps({"custom_id": line.key, "method": "POST", "url": path,
                        "body": request_body(line.request, self.model, self.api)},
                       ensure_ascii=False).encode("utf-8") + b"\n"
            for line in lines)
        attempts = ",".join(str(line.attempts) for line in lines)
        tag = hashlib.sha256(b"\0".join([self._journal.run_dir.name.encode("utf-8"), content,
                                         attempts.encode("ascii")])).hexdigest()[:32]
        try:
            batch_id = self._find_job(tag) or self._create_job(content, tag)
        except openai.APIError as exc:
            if is_fatal(exc):
                self._refuse(lines, exc, "create a batch")
            else:
                self._send_failed(lines, exc)
            return
        stages = {line.key: line.request.stage for line in lines}
        self._journal.record_batch(batch_id, stages)
        with self._cond:
            for line in lines:
                line.batch_id = batch_id
                line.attempts += 1
            self._watch(batch_id, stages, time.monotonic() + self.poll_interval)

    def _find_job(self, tag: str) -> str | None:
        """A recent job with this tag: created, but its creation never reached the journal
        (the process died, or the response to the create call was lost)."""
        try:
            recent = self._client.batches.list(limit=100).data
        except openai.APIStatusError:
            return None  # listing is optional; the create call reports real problems
        for batch in recent:
            if ((batch.metadata or {}).get(TAG_KEY) == tag and batch.id not in self._jobs
                    and batch.status not in ("failed", "expired", "cancelling", "cancelled")):
                return batch.id
        return None

    def _create_job(self, content: bytes, tag: str) -> str:
        upload = self._client.files.create(
            file=("selfinstruct-batch.jsonl", content, "application/jsonl"), purpose="batch")
        # Not retried by the SDK: a retry after a lost response would create (and bill) a
        # second job. The next attempt looks the first one up by its tag instead.
        batch = self._client.with_options(max_retries=0).batches.create(
            input_file_id=upload.id, endpoint=ENDPOINTS[self.api],  # type: ignore[arg-type]
            completion_window="24h", metadata={TAG_KEY: tag})
        return batch.id

    def _poll(self, job: Job) -> None:
        try:
            batch = self._client.batches.retrieve(job.batch_id)
            if batch.status not in TERMINAL:
                with self._cond:
                    job.next_poll = time.monotonic() + self.poll_interval
                return
            outcomes: dict[str, Outcome] = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    outcomes.update(self._read_results(file_id))
        except openai.NotFoundError:  # unknown here (another endpoint?) or its files expired
            self._finish(job, "not_found", {}, "the endpoint no longer has this batch")
            return
        except openai.APIError as exc:
            # A job is paid for: keep polling through outages, unless the key stopped working.
            with self._cond:
                job.next_poll = time.monotonic() + self.poll_interval
                if not is_fatal(exc):
                    return
                del self._jobs[job.batch_id]
                lines = [line for key in job.stages
                         if (line := self._lines.get(key)) and line.batch_id == job.batch_id]
            self._refuse(lines, exc, f"poll batch {job.batch_id}")
            return
        errors = (batch.errors.data or []) if batch.errors else []
        reason = "; ".join(f"{e.code}: {e.message}" for e in errors)[:200] or None
        self._finish(job, batch.status, outcomes, reason)

    def _read_results(self, file_id: str) -> dict[str, Outcome]:
        """Outcomes by request key. A line that cannot be read names no request: the request
        it answered counts as not run and goes into a later job."""
        outcomes: dict[str, Outcome] = {}
        for row in self._client.files.content(file_id).content.split(b"\n"):
            try:
                record = json.loads(row) if row.strip() else None
            except (ValueError, RecursionError):
                continue
            key = record.get("custom_id") if isinstance(record, dict) else None
            if isinstance(key, str):
                outcomes[key] = line_outcome(record, self.api)
        return outcomes

    def _finish(
        self, job: Job, status: str, outcomes: dict[str, Outcome], reason: str | None
    ) -> None:
        """Hand out a finished job's answers; lines without a usable one go into a later job.

        Answers to requests nobody submitted yet (the job was created by an earlier process
        of the run) are journaled, then the job is marked done: in that order, so a crash in
        between only means polling the job once more.
        """
        deliveries: list[tuple[Line, Completion]] = []
        early: list[tuple[str, str, Completion]] = []
        with self._cond:
            del self._jobs[job.batch_id]
            retry_attempts = 0
            for key, stage in job.stages.items():
                if self._covered.get(key) == job.batch_id:
                    del self._covered[key]
                # Not run at all (the job failed, expired, was cancelled): worth another job.
                completion, retryable = outcomes.get(key) or (
                    failure(f"batch_{status}", reason), True)
                line = self._lines.get(key)
                if line is None:
                    if completion.error is None:
                        self._ready[key] = completion
                        early.append((key, stage, completion))
                    continue
                if completion.error is not None and line.batch_id != job.batch_id:
                    continue  # the line waits for another job; an answer from here is moot
                if retryable and line.attempts <= self.retry.max_retries:
                    line.batch_id = None
                    self._queue.append(line)
                    retry_attempts = max(retry_attempts, line.attempts)
                    continue
                self._take([line])
                if line.batch_id is None:  # queued for a retry, answered by an older job
                    self._queue.remove(line)
                completion.attempts = max(1, line.attempts)
                if retryable:
                    kind = (completion.error or "").split(":", 1)[0]
                    completion.error = f"{kind}: gave up after {line.attempts} attempts"
                deliveries.append((line, completion))
            if retry_attempts:
                backoff = self.retry.backoff(retry_attempts - 1, self._rng)
                self._not_before = time.monotonic() + backoff
                self._cond.notify()
        for line, completion in deliveries:
            for waiter in line.waiters:
                resolve(waiter, completion)
        for key, stage, completion in early:
            self._journal.record_answer(key, stage, completion)
        self._journal.record_batch_done(job.batch_id, status)

    def _refuse(self, lines: list[Line], exc: openai.APIError, action: str) -> None:
        """401/403/404 from the files or batches endpoints: stop the run, as `LLMClient` does
        (the pending job, if any, stays in the journal for a resume with a working key)."""
        status = getattr(exc, "status_code", 0)
        with self._cond:
            lines = self._take(lines)
        fail_lines(lines, EndpointRefused(
            f"{self.base_url} answered {status} ({FATAL_STATUSES[status]}) when asked to "
            f"{action}: {self._message(exc)}. Most OpenAI-compatible servers have no Batch "
            f"API; run without --batch-api there"))

    def _send_failed(self, lines: list[Line], exc: openai.APIError) -> None:
        """No job was created for `lines` (as far as we know): try again after a backoff, and
        give up on a line after as many attempts as a direct request gets."""
        kind = error_kind(exc)
        given_up: list[Line] = []
        with self._cond:
            for line in reversed(lines):
                line.failed_sends += 1
                if line.failed_sends > self.retry.max_retries:
                    given_up += self._take([line])
                elif not self._closed:
                    self._queue.appendleft(line)
            self._not_before = time.monotonic() + self.retry.backoff(
                max(line.failed_sends for line in lines) - 1, self._rng)
        for line in given_up:
            completion = failure(kind, f"gave up after {line.failed_sends} attempts "
                                        f"({self._message(exc)})")
            completion.attempts = line.failed_sends
            for waiter in line.waiters:
                resolve(waiter, completion)

    def _message(self, exc: Exception) -> str:
        """A one-line error summary with the key redacted."""
        return redact(" ".join(str(exc).split())[:200], [self._api_key])
