"""Live progress and the end-of-run funnel summary, on stderr.

stdout is reserved for the result (the version folder's path, last line), so scripts can
capture it; everything for people goes to stderr. On a terminal the status line redraws in
place (rich); in a log (CI, Prefect, cron) it prints a plain line at most every few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from selfinstruct.pipeline import Generator
from selfinstruct.records import funnel_rows


def _fmt_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def status_line(gen: Generator, stage: str) -> str:
    usage = gen.usage
    cached = sum(s.cached for s in usage.stages.values())
    rejects = gen.funnel.top_drops(4)
    elapsed = time.time() - gen.started_at
    head = {
        "bootstrap": f"round {gen.round}: accepted {len(gen.tasks)}/{gen.target}",
        "classify": f"classify: {gen.funnel.stages.get('classify', {}).get('in', 0)}/"
                    f"{len(gen.tasks)} tasks",
        "instances": f"instances: {gen.usable} tasks with instances",
    }.get(stage, stage)
    cost = gen.dispatch.cost()
    return (f"{head} | rejects: {rejects} | requests {usage.total_requests}"
            f"{f' (+{cached} from journal)' if cached else ''} | "
            f"tokens {_fmt_tokens(usage.total_tokens)}"
            f"{f' | ${cost:.4f}' if cost else ''} | {elapsed:.0f}s")


class ProgressDisplay:
    """Attach to a Generator (`gen.on_progress = display.update`)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0,
                 enabled: bool = True) -> None:
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.interval = interval
        self.enabled = enabled
        self._live: Live | None = None
        self._last_print = 0.0
        self._last_stage = ""

    def __enter__(self) -> ProgressDisplay:
        if self.enabled and self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, gen: Generator, stage: str) -> None:
        if not self.enabled:
            return
        line = status_line(gen, stage)
        if self._live is not None:
            self._live.update(Text(line))
            return
        now = time.monotonic()
        if stage != self._last_stage or now - self._last_print >= self.interval:
            self.console.print(line, soft_wrap=True)
            self._last_print, self._last_stage = now, stage


def funnel_table(funnel: dict[str, Any], title: str) -> Table:
    """The end-of-run funnel, from the same rows as the card, the report and the flow."""
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("in", justify="right")
    table.add_column("kept", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("by reason")
    for row in funnel_rows(funnel):
        reasons = ", ".join(f"{reason} {n}" for reason, n in row.drops)
        table.add_row(row.label, str(row.seen), str(row.kept), str(row.dropped), reasons or "-")
    return table


def print_summary(gen: Generator, stream: TextIO | None = None) -> None:
    console = Console(file=stream or sys.stderr, highlight=False)
    console.print(funnel_table(gen.funnel.stages,
                               f"funnel: {gen.config.dataset} ({gen.config.recipe}, "
                               f"{gen.language}, {gen.client.model})"))
    rows = sum(len(t.instances) for t in gen.tasks)
    cost = gen.dispatch.cost()
    console.print(f"{gen.usable} of {gen.target} usable tasks ({gen.stop_reason}; "
                  f"{len(gen.tasks)} instructions accepted), {rows} instances, "
                  f"{len(gen.rejected)} rejected; {gen.usage.total_requests} requests, "
                  f"{_fmt_tokens(gen.usage.total_tokens)} tokens"
                  + (f", ${cost:.4f}" if cost is not None else ", cost n/a (no price)"))
