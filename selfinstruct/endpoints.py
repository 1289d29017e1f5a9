"""Several endpoints serving one model, driven as one client (`--base-url` given more than once).

Users who outgrow one vLLM or llama.cpp server run several. `EndpointPool` sends each request
to the live endpoint with the fewest requests outstanding (relative to its concurrency), and
moves a request whose endpoint cannot be reached to another one: a killed server costs
nothing but a retry. An endpoint that fails `BENCH_AFTER` times in a row is benched for a
cool-down (doubling up to `MAX_BENCH_SECONDS`) and then tried again, while the others carry
on; if every endpoint is benched, the one due back first is used anyway, so a run never waits
on the pool itself.

What an answer is does not depend on where it came from: the pool presents the run's model
and API, so journal keys (`Request.key`) are the same whichever endpoint answered, and a
resumed run may use another set of endpoints. The manifest records requests, errors and
latency per endpoint, by URL without credentials; keys are never recorded.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from selfinstruct.llm import Completion, LLMClient, Request
from selfinstruct.redact import strip_url_credentials

BENCH_AFTER = 3  # failures in a row that bench an endpoint
FIRST_BENCH_SECONDS = 5.0
MAX_BENCH_SECONDS = 300.0
# Failures that say the endpoint, not the request, is in trouble: worth another endpoint.
FAILOVER_KINDS = ("connection_error", "timeout", "http_5", "server_error", "rate_limited")


@dataclass
class Endpoint:
    """One member of the pool, with the numbers the manifest reports."""

    client: LLMClient
    outstanding: int = 0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    failures_in_a_row: int = 0
    benched_until: float = 0.0
    bench_seconds: float = FIRST_BENCH_SECONDS
    times_benched: int = 0
    latency_total: float = 0.0
    latency_max: float = 0.0
    answered: int = 0

    @property
    def url(self) -> str:
        return strip_url_credentials(self.client.base_url)

    def load(self) -> float:
        return self.outstanding / max(1, self.client.concurrency)

    def stats(self) -> dict[str, Any]:
        return {"base_url": self.url, "concurrency": self.client.concurrency,
                "requests": self.requests, "answered": self.answered,
                "errors": dict(sorted(self.errors.items())),
                "times_benched": self.times_benched,
                "mean_latency_s": round(self.latency_total / self.answered, 4)
                if self.answered else None,
                "max_latency_s": round(self.latency_max, 4)}


def _failover_worthy(error: str | None) -> bool:
    return error is not None and error.startswith(FAILOVER_KINDS)


class EndpointPool:
    """A `Client` over several `LLMClient`s of the same model and API."""

    def __init__(self, clients: list[LLMClient]) -> None:
        if not clients:
            raise ValueError("an endpoint pool needs at least one endpoint")
        first = clients[0]
        if any(c.model != first.model or c.api != first.api for c in clients):
            raise ValueError("every endpoint of a pool serves the same model and API")
        self.model = first.model
        self.api = first.api
        self.endpoints = [Endpoint(client) for client in clients]
        self.concurrency = sum(c.concurrency for c in clients)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What the manifest may record: URLs without credentials, never keys."""
        return {"model": self.model, "api": self.api, "concurrency": self.concurrency,
                "endpoints": [e.stats() for e in self.endpoints]}

    def stats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.stats() for e in self.endpoints]

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        result: concurrent.futures.Future[Completion] = concurrent.futures.Future()
        self._send(request, result, tried=set(), attempts=1)
        return result

    def _pick(self, tried: set[int]) -> int:
        """The live endpoint with the least load, not yet tried for this request if possible;
        if all are benched, the one due back first."""
        now = time.monotonic()
        order = range(len(self.endpoints))
        live = [i for i in order if self.endpoints[i].benched_until <= now]
        fresh = [i for i in live if i not in tried] or live
        if fresh:
            return min(fresh, key=lambda i: (self.endpoints[i].load(), i))
        return min(order, key=lambda i: self.endpoints[i].benched_until)

    def _send(self, request: Request, result: concurrent.futures.Future[Completion],
              tried: set[int], attempts: int) -> None:
        """Send on the best endpoint; on an endpoint failure, again elsewhere, at most
        `2 × endpoints` times in all (then the failure is the answer, as with one)."""
        with self._lock:
            index = self._pick(tried)
            endpoint = self.endpoints[index]
            endpoint.outstanding += 1
            endpoint.requests += 1
        tried = tried | {index}
        started = time.monotonic()
        try:
            sent = endpoint.client.submit(request)
        except Exception as exc:  # the client is closed: nothing else can send either
            with self._lock:
                endpoint.outstanding -= 1
            result.set_exception(exc)
            return

        def done(future: concurrent.futures.Future[Completion]) -> None:
            error = future.exception()
            completion = None if error is not None else future.result()
            retry = completion is not None and _failover_worthy(completion.error) \
                and attempts < 2 * len(self.endpoints)
            with self._lock:
                endpoint.outstanding -= 1
                self._account(endpoint, completion, time.monotonic() - started)
            if error is not None:
                result.set_exception(error)
            elif retry:
                self._send(request, result, tried, attempts + 1)
            else:
                assert completion is not None
                result.set_result(completion)

        sent.add_done_callback(done)

    def _account(self, endpoint: Endpoint, completion: Completion | None,
                 seconds: float) -> None:
        if completion is None:
            return
        if _failover_worthy(completion.error):
            kind = str(completion.error).split(":", 1)[0]
            endpoint.errors[kind] = endpoint.errors.get(kind, 0) + 1
            endpoint.failures_in_a_row += 1
            if endpoint.failures_in_a_row >= BENCH_AFTER:
                endpoint.benched_until = time.monotonic() + endpoint.bench_seconds
                endpoint.bench_seconds = min(MAX_BENCH_SECONDS, 2 * endpoint.bench_seconds)
                endpoint.times_benched += 1
                endpoint.failures_in_a_row = 0
            return
        endpoint.failures_in_a_row = 0
        endpoint.bench_seconds = FIRST_BENCH_SECONDS
        endpoint.answered += 1
        endpoint.latency_total += seconds
        endpoint.latency_max = max(endpoint.latency_max, seconds)

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.client.close()

    def __enter__(self) -> EndpointPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
