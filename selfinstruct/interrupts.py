"""Ctrl-C during `generate`: stop for sure, say so once, exit 130.

Python turns SIGINT into a `KeyboardInterrupt` wherever the main thread happens to be. If
that is inside a ``__del__`` method, a weakref or garbage-collection callback (matplotlib
makes many while the report is drawn), the interpreter prints "Exception ignored" and carries
on, and the run used to finish and exit 0 as if nobody had pressed Ctrl-C. `Interrupts`
therefore also counts the signals, and the run checks the count between its steps, so a
swallowed interrupt still stops it at the next step. Only a version that was completely
written (its folder renamed into place) lets an interrupted run exit 0.

A second Ctrl-C abandons the answers still in flight. Their asyncio tasks then die with the
event loop, and asyncio would log "Task was destroyed but it is pending!" for each one at
exit: noise about work the user chose to abandon, so that logger is silenced then.

`pause_point` is a test hook: with ``SELFINSTRUCT_TEST_PAUSE=before:STEP:N`` (or
``after:STEP:N``) and ``SELFINSTRUCT_TEST_PAUSE_FIFO=PATH``, the N-th time the run reaches that
step it writes a line to the FIFO and waits for a signal. A test sends SIGINT exactly there
instead of guessing the moment with sleeps.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class Interrupts:
    """While entered, SIGINT raises `KeyboardInterrupt` and is counted."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 2:
            logging.getLogger("asyncio").disabled = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise `KeyboardInterrupt` if a Ctrl-C came and was swallowed on its way up."""
        if self.count:
            raise KeyboardInterrupt

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A `pipeline.run` step executor: checks for interrupts around every step."""
        self.check()
        pause_point("before", name)
        result = fn(*args)
        pause_point("after", name)
        self.check()
        return result


_reached: dict[str, int] = {}


def pause_point(when: str, step: str) -> None:
    """Block here if the test hook names this point (see the module docstring)."""
    spec = os.environ.get("SELFINSTRUCT_TEST_PAUSE")
    if not spec:
        return
    point = f"{when}:{step}"
    _reached[point] = _reached.get(point, 0) + 1
    wanted, _, nth = spec.rpartition(":")
    if wanted != point or int(nth) != _reached[point]:
        return
    with open(os.environ["SELFINSTRUCT_TEST_PAUSE_FIFO"], "w", encoding="utf-8") as fifo:
        fifo.write(f"paused {point}:{nth}\n")
    while True:
        signal.pause()  # the SIGINT handler raises out of here
