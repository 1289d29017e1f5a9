"""A run's requests answered elsewhere (e.g. on Dask workers), with the in-process results.

What moves out of the run's process is the slow, paid part: sending every request of the
recipe's stages (with the client's retries) and waiting for the answers. What stays is what
must be exact: the novelty index (one index decides what is new), the journal, and using
each answer — parsing, filters, funnel — strictly in issue order. Instance requests are a pure
function of the classified tasks (`Generator.instance_request`), so they are planned and sent
ahead, batch by batch, while the pipeline consumes answers in order; the other stages'
requests go in micro-batches as they are issued (`remote_batches`). The same requests (same
nonces and sampling seeds) get the same answers, so the version is the one the in-process
path writes.

This module is the planning — which requests, in which batches, how far ahead, within which
budget — and knows nothing of the executor: the caller passes `send(endpoint, requests)`,
which starts one batch somewhere and returns a handle whose `result()` gives its answers
(`selfinstruct.orchestration.scale_out` sends them as Prefect tasks on a Dask cluster).

A remote worker cannot receive the run's live client (it owns an event loop thread and a
connection pool) nor the API key (executors record task parameters): `answer_batch` builds a
client from `endpoint_settings` and reads ``OPENAI_API_KEY`` from the worker's environment.
With several endpoints (`selfinstruct.endpoints`), each batch is answered by a pool of all of
them on its worker, so a dead endpoint is routed around there too.

Durability: the pipeline journals each answer as it arrives, as on the in-process path.
Answers that arrived for requests the pipeline had not reached yet (batches run ahead) are
journaled on `close`, so a re-run does not pay for them again.

Budgets and limits: --max-requests holds exactly (requests are planned only up to it); token
and cost budgets are known only from answers, so they stop the run at most the batches in
flight late. Rate limits (--rpm, --tpm) are per client: each remote client gets its share.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any

from selfinstruct.config import GenerateConfig
from selfinstruct.endpoints import EndpointPool
from selfinstruct.llm import Completion, LLMClient, Request
from selfinstruct.pipeline import Generator
from selfinstruct.remote_batches import BatchHandle, MicroBatches, SendBatch, resolve

STAGE = "instances"


def endpoint_settings(gen: Generator, share: int) -> dict[str, Any]:
    """How to rebuild the run's client elsewhere: everything but the key.

    `share`: how many remote clients run at once; each gets that share of the rate limits,
    so all of them together keep to --rpm / --tpm.
    """
    cfg, client = gen.config, gen.client
    if isinstance(client, EndpointPool):
        members = [_client_settings(e.client, cfg, share) for e in client.endpoints]
        return {**members[0], "members": members}
    if not isinstance(client, LLMClient):
        raise TypeError("requests can be answered elsewhere only from a direct endpoint")
    return _client_settings(client, cfg, share)


def _client_settings(client: LLMClient, cfg: GenerateConfig, share: int) -> dict[str, Any]:
    # An endpoint's own key is not sent either: only the run's key reaches the workers.
    return {"base_url": client.base_url, "model": client.model, "api": client.api,
            "concurrency": client.concurrency, "timeout": client.timeout,
            "retry": client.retry, "seed": cfg.seed or 0,
            "rpm": cfg.rpm / share if cfg.rpm else None,
            "tpm": cfg.tpm / share if cfg.tpm else None,
            "retry_unreachable": client.retry_unreachable}


def answer_batch(endpoint: dict[str, Any], requests: list[Request]) -> list[Completion]:
    """Answer one batch of requests on a worker, in request order.

    Pure (the journal stays with the run), so an executor may retry it.
    """
    key = os.environ.get("OPENAI_API_KEY")
    members = endpoint.get("members")
    if members is None:
        with LLMClient(api_key=key, **endpoint) as client:
            return client.run_batch(requests)
    with EndpointPool([LLMClient(api_key=key, **member) for member in members]) as pool:
        futures = [pool.submit(request) for request in requests]
        return [future.result() for future in futures]


def plan_instance_requests(gen: Generator, first: Request,
                           key: Callable[[Request], str]) -> list[list[Request]]:
    """The instance requests to send, from `first` on, in the pipeline's batches.

    Those answered in the journal are left out; the plan stops where --max-requests stops
    the pipeline, which counts every request it issues (journal-answered too) and has just
    counted `first`.
    """
    max_requests = gen.config.max_requests
    left = None if max_requests is None else max_requests - gen.requests_issued + 1
    started, batches = False, []
    for tasks in gen.batches(gen.tasks):
        batch = []
        for item in tasks:
            request = gen.instance_request(item)
            if request is None:  # nothing to ask for this task: no request, none counted
                continue
            started = started or request == first
            if not started or left == 0:
                continue
            if left is not None:
                left -= 1
            if gen.journal.answer(key(request)) is None:
                batch.append(request)
        if batch:
            batches.append(batch)
    return batches


class RemoteClient:
    """The run's LLM client, answering every request through `send` (e.g. on Dask workers).

    A `selfinstruct.llm.Client`. On the first instance request of a phase it plans the rest
    and keeps `lookahead` batches sent ahead of the one in use; every other stage's requests
    (bootstrap, classify, a recipe's own stages) go in micro-batches as they are issued
    (`remote_batches.MicroBatches`). The journal, the novelty index and the use of answers
    stay in the run's process.
    """

    def __init__(self, gen: Generator, send: SendBatch, workers: int) -> None:
        self._gen = gen
        self._local = gen.client
        self._send = send
        self._lookahead = 2 * workers  # two batches per worker thread: none waits for work
        self._endpoint = endpoint_settings(gen, share=workers)
        self.model: str = self._local.model
        self.api: str = self._local.api
        self._lock = threading.Lock()
        self._batches: list[list[Request]] = []
        self._batch_of: dict[str, int] = {}
        self._submitted = 0
        self._collectors: list[concurrent.futures.Future[None]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._lookahead, thread_name_prefix="selfinstruct-remote")
        # key -> the future the pipeline holds, or what arrived before it asked
        self._waiting: dict[str, concurrent.futures.Future[Completion]] = {}
        self._arrived: dict[str, tuple[Request, Completion | BaseException]] = {}
        self._others = MicroBatches(send, self._endpoint,
                                    max_batch=max(4, gen.dispatch.depth // workers))

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the endpoint: the run's client's description."""
        return self._local.describe()

    def _key(self, request: Request) -> str:
        return request.key(self.model, self.api)

    def _extend_plan(self, first: Request) -> None:
        batches = plan_instance_requests(self._gen, first, self._key)
        offset = len(self._batches)
        self._batches.extend(batches)
        for index, batch in enumerate(batches, start=offset):
            for request in batch:
                self._batch_of[self._key(request)] = index

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        """`LLMClient.submit`: an instance answer comes from the batch holding its request."""
        if request.stage != STAGE:
            return self._others.submit(request)
        key = self._key(request)
        if key not in self._batch_of:
            # The first instance request, or the first of a top-up phase (`pipeline.run`):
            # plan the requests from here on, after those planned before.
            self._extend_plan(request)
        if key not in self._batch_of:
            raise RuntimeError("an instance request was not planned: the pipeline's "
                               "instance requests or budget accounting changed")
        self._submit_until(self._batch_of[key] + self._lookahead)
        future: concurrent.futures.Future[Completion] = concurrent.futures.Future()
        with self._lock:
            arrived = self._arrived.pop(key, None)
            if arrived is None:
                self._waiting[key] = future
                return future
        resolve(future, arrived[1])
        return future

    def _submit_until(self, end: int) -> None:
        while self._submitted < min(end, len(self._batches)):
            requests = self._batches[self._submitted]
            handle = self._send(self._endpoint, requests)
            self._collectors.append(self._pool.submit(self._collect, requests, handle))
            self._submitted += 1

    def _collect(self, requests: list[Request], handle: BatchHandle) -> None:
        try:
            outcomes: list[Completion | BaseException] = list(handle.result())
        except BaseException as exc:  # handed to whoever waits for these answers
            outcomes = [exc] * len(requests)
        for request, outcome in zip(requests, outcomes, strict=True):
            key = self._key(request)
            with self._lock:
                waiting = self._waiting.pop(key, None)
                if waiting is None:
                    self._arrived[key] = (request, outcome)
                    continue
            resolve(waiting, outcome)

    def close(self) -> None:
        """Wait for batches on their way, then journal answers the pipeline never took."""
        self._others.close()
        concurrent.futures.wait(self._collectors)
        self._pool.shutdown()
        for key, (request, outcome) in self._arrived.items():
            if isinstance(outcome, Completion):
                self._gen.journal.record_answer(key, request.stage, outcome)
        self._arrived.clear()


def route_requests(gen: Generator, send: SendBatch, workers: int) -> RemoteClient:
    """Answer the run's requests through `send` from now on; close it when done.

    Swaps `gen.client` (the facade's public client attribute), through which every stage of
    the recipe asks the model. Features with clients of their own (verifier models) keep them.
    """
    client = RemoteClient(gen, send, workers)
    gen.client = client
    return client
