"""`atomic_write`: the one way a file is replaced, so a reader never sees half of it.

A training run, a resume or a release may read a file at any moment, and a crash or a full
disk must not leave a truncated export, archive, index or run.json behind. Every writer of a
whole file goes through here: the data goes to a temporary sibling (same folder, so the
rename stays on one file system), is fsynced, and is renamed over the target; the folder is
fsynced so the rename itself survives a power cut.

What the target is decides the rest, as a shell redirection would:
- a symlink is followed and its target replaced, so the link stays;
- an existing file keeps its permissions (the temporary file takes its mode);
- anything else that exists — a device such as /dev/null, a FIFO, a /dev/fd or /proc path
  naming an open descriptor — is written through in place: replacing it would destroy it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar, overload

R = TypeVar("R")

# Paths here name devices and open descriptors (/dev/fd/3, /proc/self/fd/1), even when they
# resolve to a regular file: writing through them is what the user asked for.
_DESCRIPTOR_DIRS = ("/dev/", "/proc/")


@overload
def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = True,
                 text: bool = False) -> None: ...
@overload
def atomic_write(path: str | os.PathLike[str], data: Callable[[IO[Any]], R], *,
                 fsync: bool = True, text: bool = False) -> R: ...
def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[IO[Any]], R], *,
                 fsync: bool = True, text: bool = False) -> R | None:
    """Replace `path` with `data`, all or nothing; return what a writer returned.

    `data` is bytes, a str (written as UTF-8), or a writer called with the open handle —
    binary, or with `text` a UTF-8 text handle writing "\\n" line ends — for output streamed
    from an iterator. The parent folder must exist. On any error (including KeyboardInterrupt)
    the temporary file is removed and the target is untouched.
    """
    write: Callable[[IO[Any]], Any]
    if callable(data):
        write = data
    else:
        write, text = _writer(data.encode("utf-8") if isinstance(data, str) else data), False
    if write_in_place(Path(path)):
        with _open(Path(path), "w", text) as handle:
            return write(handle)
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with _open(tmp, "x", text) as handle:
            result = write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(target.parent)
    return result


def write_in_place(path: Path) -> bool:
    """Whether `path` exists as something other than a regular file that may be replaced."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: the target decides
    except FileNotFoundError:
        return False  # a new file (or a dangling link's new target)
    return not stat.S_ISREG(mode) or os.path.abspath(path).startswith(_DESCRIPTOR_DIRS)


def fsync_dir(path: Path) -> None:
    """Make the entries of a folder (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writer(payload: bytes) -> Callable[[IO[Any]], None]:
    def write(handle: IO[Any]) -> None:
        handle.write(payload)
    return write


def _open(path: Path, mode: str, text: bool) -> IO[Any]:
    if text:
        return open(path, mode, encoding="utf-8", newline="\n")
    return open(path, mode + "b")
