"""One way a setting is checked: a table of `Rule`s, for the run config and ``[filters]`` alike.

A value can come from a flag, a TOML file, the environment or a stored run.json; whichever it
is, the same rule decides, and a bad value is one line naming where it came from
(``--concurrency: must be an integer from 1 to 1024 (got 0)`` or ``run.toml: [filters]:
field 'pii': must be one of drop, mask, off (got 'hide')``), before anything is written.

The type is checked strictly — TOML and argparse both give real types, so a string number
or a bool standing in for an integer is a mistake upstream, not something to convert — and
numbers must be finite: inf and nan pass comparisons like ``v > 0`` and then break the
arithmetic mid-run.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError


def _anything(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """What one setting must be: its type, a check of its value, and the error's words.

    `message` completes the error line ("must be a positive integer"). `kind` float accepts
    integers (stored as floats); Path accepts strings. `optional` lets None through (a stored
    "not set", such as no judge model). `show` renders the bad value in the error line, so a
    URL with a password can be shown redacted.
    """

    kind: type
    check: Callable[[Any], bool] = _anything
    message: str = "has the wrong type"
    optional: bool = False
    show: Callable[[Any], str] = repr

    def coerce(self, value: Any, where: str) -> Any:
        """The value as the config stores it, or a one-line InputError naming `where`."""
        if value is None and self.optional:
            return None
        failure = InputError(f"{where}: {self.message} (got {self.show(value)})")
        if isinstance(value, bool) != (self.kind is bool):
            raise failure
        if self.kind is float:
            if not isinstance(value, int | float):
                raise failure
            value = float(value)
            if not math.isfinite(value):
                raise InputError(f"{where}: must be a finite number (got {self.show(value)})")
        elif self.kind is Path:
            if not isinstance(value, str | Path):
                raise failure
            value = Path(value)
        elif not isinstance(value, self.kind):
            raise failure
        if not self.check(value):
            raise failure
        return value


def integer(low: int, high: int, message: str | None = None) -> Rule:
    """An integer from `low` to `high` (inclusive)."""
    return Rule(int, lambda v: low <= v <= high,
                message or f"must be an integer from {low} to {high}")


def one_of(choices: Iterable[str]) -> Rule:
    """One of a fixed set of names."""
    names = tuple(choices)
    return Rule(str, lambda v: v in names, f"must be one of {', '.join(names)}")


BOOLEAN = Rule(bool, message="must be true or false")


def refuse_unknown(keys: Iterable[str], known: Iterable[str], where: str, noun: str) -> None:
    """A key no rule knows is a typo: name it and the closest known key."""
    names = list(known)
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise InputError(f"{where}: field '{key}': unknown {noun}{hint}")
