"""Requests of any stage answered elsewhere, sent in small batches as the run issues them.

Instance requests can be planned ahead (`scale_out`); the others cannot: a bootstrap request
is built from the pool as it stands when it is issued. `MicroBatches` takes them as the
dispatcher issues them and sends them in batches of up to `max_batch`, or whatever gathered
within `wait` seconds of the first — one remote task per batch instead of one per request.
Which requests share a batch depends on timing; what each one is answered does not (an answer
is a function of its request), and the dispatcher uses answers in issue order, so the run's
output is the in-process one.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from selfinstruct.llm import Completion, Request


class BatchHandle(Protocol):
    """A batch on its way: `result()` blocks until its answers, in request order, arrive."""

    def result(self) -> Iterable[Completion]: ...


SendBatch = Callable[[dict[str, Any], list[Request]], BatchHandle]


def resolve(future: concurrent.futures.Future[Completion],
            outcome: Completion | BaseException) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class MicroBatches:
    """Gather submitted requests into batches for `send`; each request gets its own future."""

    def __init__(self, send: SendBatch, endpoint: dict[str, Any], *, max_batch: int,
                 wait: float = 0.02) -> None:
        self._send = send
        self._endpoint = endpoint
        self._max_batch = max(1, max_batch)
        self._wait = wait
        self._lock = threading.Lock()
        self._queue: list[tuple[Request, concurrent.futures.Future[Completion]]] = []
        self._timer: threading.Timer | None = None
        self._collectors: list[concurrent.futures.Future[None]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="selfinstruct-batches")

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        future: concurrent.futures.Future[Completion] = concurrent.futures.Future()
        with self._lock:
            self._queue.append((request, future))
            full = len(self._queue) >= self._max_batch
            if not full and self._timer is None:
                self._timer = threading.Timer(self._wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()
        return future

    def flush(self) -> None:
        """Send what has gathered (at most `max_batch` at a time)."""
        while True:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                taken = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
            if not taken:
                return
            requests = [request for request, _ in taken]
            try:
                handle = self._send(self._endpoint, requests)
            except BaseException as exc:  # the executor refused: every waiter learns why
                for _, future in taken:
                    future.set_exception(exc)
                continue
            self._collectors.append(self._pool.submit(self._collect, taken, handle))

    @staticmethod
    def _collect(taken: list[tuple[Request, concurrent.futures.Future[Completion]]],
                 handle: BatchHandle) -> None:
        try:
            outcomes: list[Completion | BaseException] = list(handle.result())
        except BaseException as exc:  # handed to whoever waits for these answers
            outcomes = [exc] * len(taken)
        for (_, future), outcome in zip(taken, outcomes, strict=True):
            resolve(future, outcome)

    def close(self) -> None:
        """Send what is left and wait for every batch on its way."""
        self.flush()
        concurrent.futures.wait(self._collectors)
        self._pool.shutdown()
