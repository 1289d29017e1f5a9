"""The server's options: everything that changes its behaviour, checked once.

Why a module of its own: ``start_server``, the CLI and the HTTP layer share one validated
record, so a bad option fails at start with one clear message, never mid-request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tests.servers.faults import BATCH_ERROR_KINDS, DEFAULT_FAULT_KINDS, FAULT_KINDS

MODEL_IDS: tuple[str, ...] = ("test-model",)
# Answer styles (tests/servers/styles.py): the prompt's own format, what real models write,
# and replayed real answers of the embedded model.
STYLES: tuple[str, ...] = ("clean", "messy", "recorded")


@dataclass(frozen=True)
class ServerOptions:
    """Everything that changes the server's behaviour; constructor kwargs and CLI flags."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    fault_seed: int = 0
    max_faults_per_request: int = 2
    hang_seconds: float = 30.0
    retry_after: float = 1.0
    batch_polls: int = 2
    batch_seconds: float | None = None
    batch_error_rate: float = 0.0
    batch_error_kinds: tuple[str, ...] = ("500",)
    verbose: bool = False
    style: str = "clean"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {', '.join(STYLES)}")
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"the test server only binds loopback addresses, not {self.host!r}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if self.latency_ms < 0 or self.hang_seconds < 0 or self.retry_after < 0:
            raise ValueError("latency_ms, hang_seconds and retry_after must be >= 0")
        if self.batch_polls < 1 or (self.batch_seconds is not None and self.batch_seconds < 0):
            raise ValueError("batch_polls must be >= 1 and batch_seconds >= 0")
        if not 0.0 <= self.batch_error_rate <= 1.0:
            raise ValueError("batch_error_rate must be within [0, 1]")
        unknown = set(self.batch_error_kinds) - set(BATCH_ERROR_KINDS)
        if unknown:
            raise ValueError(f"unknown batch error kinds {sorted(unknown)}; "
                             f"known: {BATCH_ERROR_KINDS}")
