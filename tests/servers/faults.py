"""Fault kinds, the deterministic fault plan, and the OpenAI-shaped errors they send.

Why: a test must be able to predict every injected fault from the seed and the request
fingerprint alone, whatever the thread timing (see :class:`FaultPlan`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = (
    "429", "429_retry_after", "500", "502", "503", "reset", "hang", "empty_choices", "length",
    "truncated_body", "non_json", "garbage",
)
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503")


@dataclass(frozen=True)
class FaultPlan:
    """Deterministic fault selection.

    For the attempt of a request whose fingerprint (sha256 of the canonical JSON body) was
    already seen ``seen`` times since the last reset: if ``seen >= max_faults_per_request``
    the attempt is never faulted; otherwise ``h = sha256(f"{seed}:{fingerprint}:{seen}")``,
    the attempt is faulted when ``h[0:8] / 2**64 < rate``, and the kind is
    ``kinds[h[8:16] % len(kinds)]``. So a client retrying the identical request
    ``max_faults_per_request`` times is guaranteed to get an answer, and two runs with the
    same seed see exactly the same faults in the same places regardless of thread timing.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    seed: int = 0
    max_faults_per_request: int = 2

    def decide(self, fingerprint: str, seen: int) -> str | None:
        """The fault kind for this attempt, or None to answer normally."""
        if self.rate <= 0 or not self.kinds or seen >= self.max_faults_per_request:
            return None
        digest = hashlib.sha256(f"{self.seed}:{fingerprint}:{seen}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(digest[8:16], "big") % len(self.kinds)]


class APIError(Exception):
    """An OpenAI-shaped error response raised inside a handler."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error shape, so the real client maps it to its own exception classes."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


FAULT_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "429": (429, "Rate limit reached for requests (test server).", "requests",
            "rate_limit_exceeded"),
    "429_retry_after": (429, "Rate limit reached; retry after the indicated delay.", "requests",
                        "rate_limit_exceeded"),
    "500": (500, "The server had an error while processing your request.", "server_error",
            None),
    "502": (502, "Bad gateway.", "server_error", "bad_gateway"),
    "503": (503, "The engine is currently overloaded, please try again later.",
            "server_error", "service_unavailable"),
}


BATCH_ERROR_KINDS: tuple[str, ...] = ("400", "429", "500", "expired")
BATCH_LINE_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "400": (400, "Invalid request in batch line (test server).", "invalid_request_error",
            "invalid_request"),
    "429": FAULT_ERRORS["429"],
    "500": FAULT_ERRORS["500"],
}
