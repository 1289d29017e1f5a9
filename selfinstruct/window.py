"""An ordered look-ahead window of requests: the endpoint stays busy, results stay in order.

Throughput needs many requests in flight; determinism needs results used in a fixed order.
A `Lookahead` gives both: requests are pushed (and start at once, up to the client's
concurrency), and `pop` hands back the oldest one's answer, waiting for it if necessary. What
a request asks can depend on state only up to the moment it is pushed, and that moment is
defined by how many results were popped before — never by timing — so a run is a pure
function of its seed and its answers however fast the endpoint replies.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from selfinstruct.llm import Completion, Request


@dataclass
class InFlight:
    request: Request
    context: Any
    future: Future[Completion]
    cached: bool  # answered from the journal, not sent
    nothing_asked: bool = False  # a placeholder for an item this stage has no request for


class Lookahead:
    """FIFO of in-flight requests with a depth limit (how far ahead requests are issued)."""

    def __init__(self, depth: int) -> None:
        self.depth = max(1, depth)
        self._pending: deque[InFlight] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.depth

    def push(self, item: InFlight) -> None:
        self._pending.append(item)

    def pop(self) -> tuple[InFlight, Completion]:
        """The oldest request and its answer (blocks until it has arrived)."""
        item = self._pending.popleft()
        return item, item.future.result()

    def settle(self, timeout: float | None = None) -> None:
        """Wait (up to `timeout` seconds in all) for every request in flight, so each answer
        reaches the journal instead of being paid for again on resume."""
        futures = [item.future for item in self._pending]
        concurrent.futures.wait(futures, timeout=timeout)
