"""Instance generation on a Dask cluster, through prefect-dask, with the in-process results.

What moves to the workers is the slow, paid part: sending the instance requests (with the
client's retries) and waiting for the answers. What stays in the flow's process is what must
be exact: bootstrapping (one novelty index decides what is new), classification (tiny
answers, not worth a network hop), and using each answer — parsing, instance filters, funnel,
journal — strictly in task order. Instance requests are a pure function of the classified
tasks (`Generator.instance_request`), so they can be sent ahead, batch by batch, while the
pipeline consumes answers in order: the same requests (same nonces and sampling seeds) get
the same answers, and the version is the one the in-process path writes.

A worker cannot receive the run's live client (it owns an event loop thread and a connection
pool) nor the API key (Prefect records task parameters): each Dask task builds a client from
the endpoint settings and reads ``OPENAI_API_KEY`` from the worker's own environment.

Durability: the pipeline journals each answer as it arrives from the worker, as on the
in-process path. Answers that arrived for requests the pipeline had not reached yet (batches
run ahead) are journaled when the flow stops, so a re-run does not pay for them again.

Budgets and limits: --max-requests holds exactly (requests are planned only up to it); token
and cost budgets are known only from answers, so they stop the run at most the batches in
flight late. Rate limits (--rpm, --tpm) are per client: each worker's client gets its share.

When it pays: a Dask task costs ~100 ms of overhead on top of its batch, so it is for batches
that take seconds (slow or rate-limited-per-client endpoints, many workers each with their
own egress), not for a fast local server.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff
from prefect_dask import DaskTaskRunner

from selfinstruct.llm import Completion, EndpointRefused, LLMClient, Request
from selfinstruct.pipeline import Generator

STAGE = "instances"


def _worth_retrying(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A refused key or unknown model fails every attempt the same way: do not retry it."""
    return not isinstance(state.result(raise_on_failure=False), EndpointRefused)


@task(name="instances-answers", retries=2, retry_delay_seconds=exponential_backoff(2),
      retry_jitter_factor=0.5, retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE,
      persist_result=False)
def answer_requests(endpoint: dict[str, Any], requests: list[Request]) -> list[Completion]:
    """Answer one batch of requests on a worker, in request order.

    Pure (the journal stays with the flow), so Prefect may retry it with backoff.
    """
    with LLMClient(api_key=os.environ.get("OPENAI_API_KEY"), **endpoint) as client:
        return client.run_batch(requests)


def endpoint_settings(gen: Generator, share: int) -> dict[str, Any]:
    """How to rebuild the run's client on a worker: everything but the key.

    `share`: how many worker clients run at once; each gets that share of the rate limits,
    so the cluster as a whole keeps to --rpm / --tpm.
    """
    cfg, client = gen.config, gen.client
    assert isinstance(client, LLMClient), "the flow refuses Dask with the Batch API"
    return {"base_url": client.base_url, "model": client.model, "api": client.api,
            "concurrency": client.concurrency, "timeout": client.timeout,
            "retry": client.retry, "seed": cfg.seed or 0,
            "rpm": cfg.rpm / share if cfg.rpm else None,
            "tpm": cfg.tpm / share if cfg.tpm else None}


class DaskInstanceClient:
    """The run's LLM client, except that instance requests are answered by Dask workers.

    A `selfinstruct.llm.Client`, installed as `gen.client`. On the first instance request it
    plans the rest (`_plan`) and keeps `lookahead` batches submitted ahead of the one in use.
    """

    def __init__(self, gen: Generator, runner: DaskTaskRunner, workers: int) -> None:
        self._gen = gen
        self._local = gen.client
        self._runner = runner
        self._lookahead = 2 * workers  # two batches per worker thread: none waits for work
        self._endpoint = endpoint_settings(gen, share=workers)
        self.model: str = self._local.model
        self.api: str = self._local.api
        self._lock = threading.Lock()
        self._batches: list[list[Request]] | None = None
        self._batch_of: dict[str, int] = {}
        self._submitted = 0
        self._collectors: list[concurrent.futures.Future[None]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._lookahead, thread_name_prefix="selfinstruct-dask")
        # key -> the future the pipeline holds, or what arrived before it asked
        self._waiting: dict[str, concurrent.futures.Future[Completion]] = {}
        self._arrived: dict[str, tuple[Request, Completion | BaseException]] = {}

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the endpoint: the run's client's description."""
        return self._local.describe()

    def _key(self, request: Request) -> str:
        return request.key(self.model, self.api)

    def _plan(self, first: Request) -> list[list[Request]]:
        """The instance requests to send, from `first` on, in the pipeline's batches.

        Those answered in the journal are left out; the plan stops where --max-requests
        stops the pipeline, which counts every request it issues (journal-answered too) and
        has just counted `first`.
        """
        gen, max_requests = self._gen, self._gen.config.max_requests
        left = None if max_requests is None else max_requests - gen.requests_issued + 1
        started, batches = False, []
        for tasks in gen.batches(gen.tasks):
            batch = []
            for item in tasks:
                request = gen.instance_request(item)
                started = started or request == first
                if not started or left == 0:
                    continue
                if left is not None:
                    left -= 1
                if gen.journal.answer(self._key(request)) is None:
                    batch.append(request)
            if batch:
                batches.append(batch)
        return batches

    def _extend_plan(self, first: Request) -> None:
        batches = self._plan(first)
        if self._batches is None:
            self._batches = []
        offset = len(self._batches)
        self._batches.extend(batches)
        for index, batch in enumerate(batches, start=offset):
            for request in batch:
                self._batch_of[self._key(request)] = index

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        """`LLMClient.submit`: the answer comes from the Dask batch holding this request."""
        if request.stage != STAGE:
            return self._local.submit(request)
        key = self._key(request)
        if self._batches is None or key not in self._batch_of:
            # The first instance request, or the first of a top-up phase (`pipeline.run`):
            # plan the requests from here on, after those planned before.
            self._extend_plan(request)
        if key not in self._batch_of:
            raise RuntimeError("an instance request was not planned for Dask: the pipeline's "
                               "instance requests or budget accounting changed")
        self._submit_until(self._batch_of[key] + self._lookahead)
        future: concurrent.futures.Future[Completion] = concurrent.futures.Future()
        with self._lock:
            arrived = self._arrived.pop(key, None)
            if arrived is None:
                self._waiting[key] = future
                return future
        _resolve(future, arrived[1])
        return future

    def _submit_until(self, end: int) -> None:
        assert self._batches is not None
        while self._submitted < min(end, len(self._batches)):
            requests = self._batches[self._submitted]
            prefect_future = self._runner.submit(
                answer_requests, {"endpoint": self._endpoint, "requests": requests})
            self._collectors.append(self._pool.submit(self._collect, requests, prefect_future))
            self._submitted += 1

    def _collect(self, requests: list[Request], prefect_future: Any) -> None:
        try:
            outcomes: list[Completion | BaseException] = list(prefect_future.result())
        except BaseException as exc:  # handed to whoever waits for these answers
            outcomes = [exc] * len(requests)
        for request, outcome in zip(requests, outcomes, strict=True):
            key = self._key(request)
            with self._lock:
                waiting = self._waiting.pop(key, None)
                if waiting is None:
                    self._arrived[key] = (request, outcome)
                    continue
            _resolve(waiting, outcome)

    def close(self) -> None:
        """Wait for batches on their way, then journal answers the pipeline never took."""
        concurrent.futures.wait(self._collectors)
        self._pool.shutdown()
        for key, (request, outcome) in self._arrived.items():
            if isinstance(outcome, Completion):
                self._gen.journal.record_answer(key, request.stage, outcome)
        self._arrived.clear()


def _resolve(future: concurrent.futures.Future[Completion],
             outcome: Completion | BaseException) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def step_runner(task_step: Callable[..., Any]) -> Callable[..., Any]:
    """`task_step`, except that instance batches run in the flow's own context.

    Prefect ships the submitting context to the worker, and a step task's context holds its
    function — a method of the (unpicklable) generator. The batch's Prefect task runs are the
    workers' "instances-answers"; using the answers in order takes milliseconds.
    """

    def step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args) if name == "instances-batch" else task_step(name, fn, *args)

    return step


def install(gen: Generator, runner: DaskTaskRunner) -> DaskInstanceClient:
    """Route the run's instance requests to the cluster behind `runner`."""
    workers = max(1, sum(runner.client.nthreads().values()))
    client = DaskInstanceClient(gen, runner, workers)
    gen.client = client
    return client
