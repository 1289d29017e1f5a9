"""Rate limits and server-requested waits, each capped so an endpoint cannot stall a run.

Why capped: a wait an endpoint asks for is advice, and hostile or buggy endpoints ask for
absurd ones (``Retry-After: 999999999`` or ``inf``, ``x-ratelimit-reset-requests: 99999h``,
``x-ratelimit-limit-requests: 0``, which once divided by zero). The caps:

* ``Retry-After`` (delta-seconds or an HTTP date) and ``x-ratelimit-reset-*``: at most
  `MAX_WAIT` (60 s), never negative; unreadable values (garbage, NaN) are None, and the
  client falls back to its own backoff. After a capped wait the endpoint can say again.
* a learnt ``x-ratelimit-limit-*`` is used only if it is a finite number of at least one per
  minute, so the longest wait it can cause is a minute; otherwise it is ignored;
* explicit ``--rpm``/``--tpm`` limits are the user's choice and obeyed as given (a limit that
  is 0, negative or not finite means no limit rather than a crash).
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import re
import time
from typing import Any

MAX_WAIT = 60.0  # seconds: the longest wait an endpoint's header can impose on a request


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped at
    `MAX_WAIT`; None when absent or unreadable (the caller backs off on its own)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when.timestamp() - time.time()
    return _capped(seconds)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_reset(value: str | None) -> float | None:
    """Seconds from an ``x-ratelimit-reset-*`` value such as ``1s``, ``6m0s`` or ``120ms``,
    capped at `MAX_WAIT`."""
    if not value:
        return None
    parts = _DURATION.findall(value)
    if not parts:
        return parse_retry_after(value)
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return _capped(sum(float(number) * scale[unit] for number, unit in parts))


def _capped(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(MAX_WAIT, max(0.0, seconds))


class TokenBucket:
    """A per-minute limit as a bucket that refills continuously (burst: one second's worth).

    Requests wait for capacity instead of being sent and refused, so a run stays just under
    the endpoint's limit rather than oscillating between 429s and silence.
    """

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()

    def delay_for(self, amount: float) -> float:
        """Take `amount` now (going into debt if needed); return how long to wait for it."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level -= min(amount, self.capacity)
        return 0.0 if self.level >= 0 else -self.level / self.rate


def _bucket(per_minute: float | None, minimum: float = 0.0) -> TokenBucket | None:
    """A bucket for a limit that makes sense (finite, above `minimum`), else no limit."""
    if (per_minute is None or not math.isfinite(per_minute) or per_minute <= 0
            or per_minute < minimum):
        return None
    return TokenBucket(per_minute)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits shared by all requests of a client.

    Limits come from --rpm/--tpm, or are learnt from the ``x-ratelimit-limit-*`` headers that
    OpenAI and several compatible servers send; ``x-ratelimit-remaining-* == 0`` pauses every
    request until the matching reset (at most `MAX_WAIT`). A learnt limit below one per
    minute, or one that is not a finite number, is ignored, so a learnt limit never makes a
    request wait more than a minute.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = _bucket(rpm)
        self.tokens = _bucket(tpm)
        self._explicit = (rpm is not None, tpm is not None)
        self.paused_until = 0.0

    def delay_for(self, tokens: int) -> float:
        delay = max(0.0, self.paused_until - time.monotonic())
        if self.requests is not None:
            delay = max(delay, self.requests.delay_for(1))
        if self.tokens is not None:
            delay = max(delay, self.tokens.delay_for(tokens))
        return delay

    def learn(self, headers: Any) -> None:
        """Adopt limits and pauses announced by the endpoint (explicit flags win)."""
        for kind, explicit in zip(("requests", "tokens"), self._explicit, strict=True):
            limit = headers.get(f"x-ratelimit-limit-{kind}")
            if limit and not explicit and getattr(self, kind) is None:
                # Below one per minute a learnt limit is nonsense (0 divided by zero once).
                with contextlib.suppress(ValueError):
                    setattr(self, kind, _bucket(float(limit), minimum=1.0))
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and reset and remaining.strip() in ("0", "0.0"):
                self.paused_until = max(self.paused_until, time.monotonic() + reset)
