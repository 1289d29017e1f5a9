"""Refuse input paths that are not regular files before anything opens them.

Opening a FIFO blocks until someone writes to it (a run that hangs forever), and reading a
device such as ``/dev/zero`` never ends (a MemoryError after minutes). `stat` answers without
blocking, so every input file is checked with it first. A missing path or a folder is left to
the reader, which says so in its own words ("seed file not found").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from selfinstruct._errors import InputError


def require_regular_file(path: Path, what: str) -> None:
    """Raise `InputError` if `path` exists and is a FIFO, socket or device (symlinks followed)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return  # missing, unreadable or an odd name: the reader reports it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{path}: not a regular file (a FIFO, socket or device); expected a "
                         f"{what}")
