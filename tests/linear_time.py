"""One check that a text function does linear work, shared by the filter and parser tests.

Adversarial inputs (long runs of one character) made backtracking patterns rescan from every
position; such a regression is quadratic. The check compares this process's CPU time (so other
processes' load does not count) on 8x the input against the input: linear work gives ~8x,
quadratic ~64x, and the limit of 24 sits a factor of ~3 from both. The floor keeps millisecond
noise out of the ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LIMIT = 24.0


def cpu_seconds(work: Callable[[str], object], text: str) -> float:
    """The best of 3 CPU times of `work(text)`."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        work(text)
        best = min(best, time.process_time() - start)
    return best


def growth(work: Callable[[str], object], unit: str, small: int, floor: float = 2e-3) -> float:
    """CPU time on `unit` repeated to 8 * `small` characters over that on `small`."""
    short, long = unit * (small // len(unit)), unit * (8 * small // len(unit))
    return cpu_seconds(work, long) / max(cpu_seconds(work, short), floor)
