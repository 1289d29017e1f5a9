"""Thread-safe request accounting: the stats, the request log and the offered items.

Why: tests assert "nothing was answered twice" and account for every offered item, so every
outcome is recorded under one lock before its response is written.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    """Thread-safe request accounting; every mutation and snapshot holds one lock.

    An outcome is recorded before its response is written, so stats read by a client after it
    got an answer always include that answer. ``in_flight`` drops only after the write.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests_total: int = 0
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    fingerprints: Counter[str] = field(default_factory=Counter)
    successes_total: int = 0
    successes_by_endpoint: Counter[str] = field(default_factory=Counter)
    success_fingerprints: Counter[str] = field(default_factory=Counter)
    faults_total: int = 0
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    errors_by_status: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    files_created: int = 0
    batches_created: int = 0
    batch_requests_total: int = 0
    batch_successes_total: int = 0
    batch_errors_by_kind: Counter[str] = field(default_factory=Counter)
    batch_fingerprints: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    offers: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200_000))

    def begin(self, path: str) -> None:
        with self.lock:
            self.requests_total += 1
            self.requests_by_endpoint[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def see(self, fingerprint: str) -> int:
        """Record one attempt of ``fingerprint``; return how many times it was seen before."""
        with self.lock:
            seen = self.fingerprints[fingerprint]
            self.fingerprints[fingerprint] = seen + 1
            return seen

    def outcome(
        self,
        path: str,
        fingerprint: str | None,
        body: Any,
        *,
        fault: str | None = None,
        status: int = 200,
        usage: tuple[int, int] = (0, 0),
    ) -> None:
        with self.lock:
            if fault is not None:
                self.faults_total += 1
                self.faults_by_kind[fault] += 1
                result = f"fault:{fault}"
            elif status == 200:
                self.successes_total += 1
                self.successes_by_endpoint[path] += 1
                if fingerprint is not None:
                    self.success_fingerprints[fingerprint] += 1
                self.prompt_tokens += usage[0]
                self.completion_tokens += usage[1]
                result = "ok"
            else:
                self.errors_by_status[str(status)] += 1
                result = f"error:{status}"
            self.log.append(
                {"path": path, "fingerprint": fingerprint, "body": body, "outcome": result}
            )

    def created(self, kind: str) -> None:
        """Count one uploaded file (``"file"``) or created batch (``"batch"``)."""
        with self.lock:
            if kind == "file":
                self.files_created += 1
            else:
                self.batches_created += 1

    def see_batch_line(self, fingerprint: str) -> int:
        """Record one batch line of ``fingerprint``; return how many were seen before."""
        with self.lock:
            seen = self.batch_fingerprints[fingerprint]
            self.batch_fingerprints[fingerprint] = seen + 1
            self.batch_requests_total += 1
            return seen

    def batch_outcome(
        self, fingerprint: str, *, error: str | None = None, usage: tuple[int, int] = (0, 0)
    ) -> None:
        """An answered batch line counts like a direct answer of the same body."""
        with self.lock:
            if error is not None:
                self.batch_errors_by_kind[error] += 1
                return
            self.batch_successes_total += 1
            self.success_fingerprints[fingerprint] += 1
            self.prompt_tokens += usage[0]
            self.completion_tokens += usage[1]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests_total": self.requests_total,
                "requests_by_endpoint": dict(self.requests_by_endpoint),
                "fingerprints": dict(self.fingerprints),
                "max_fingerprint_count": max(self.fingerprints.values(), default=0),
                "successes_total": self.successes_total,
                "successes_by_endpoint": dict(self.successes_by_endpoint),
                "success_fingerprints": dict(self.success_fingerprints),
                "max_success_count": max(self.success_fingerprints.values(), default=0),
                "faults_total": self.faults_total,
                "faults_by_kind": dict(self.faults_by_kind),
                "errors_by_status": dict(self.errors_by_status),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "files_created": self.files_created,
                "batches_created": self.batches_created,
                "batch_requests_total": self.batch_requests_total,
                "batch_successes_total": self.batch_successes_total,
                "batch_errors_by_kind": dict(self.batch_errors_by_kind),
                "batch_fingerprints": dict(self.batch_fingerprints),
            }

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)

    def offer(self, request_id: str, response: dict[str, Any],
              accounts: list[dict[str, Any]]) -> None:
        """Record what an answered response offered, one entry per choice (see offered())."""
        with self.lock:
            for account in accounts:
                self.offers.append(
                    {"id": request_id, "response_id": response["id"], **account})

    def offered(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.offers)

    def reset(self) -> None:
        with self.lock:
            self.requests_total = self.successes_total = self.faults_total = 0
            self.prompt_tokens = self.completion_tokens = 0
            self.files_created = self.batches_created = 0
            self.batch_requests_total = self.batch_successes_total = 0
            self.max_in_flight = self.in_flight
            for counter in (
                self.requests_by_endpoint, self.fingerprints, self.successes_by_endpoint,
                self.success_fingerprints, self.faults_by_kind, self.errors_by_status,
                self.batch_errors_by_kind, self.batch_fingerprints,
            ):
                counter.clear()
            self.log.clear()
            self.offers.clear()
