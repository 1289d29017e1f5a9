"""`atomic_write`: all or nothing, the target's mode and links kept, devices written through."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from selfinstruct.fileio import atomic_write


def test_bytes_str_and_writer_replace_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old", encoding="utf-8")
    atomic_write(path, b"bytes")
    assert path.read_bytes() == b"bytes"
    atomic_write(path, "日本語\n")
    assert path.read_bytes() == "日本語\n".encode()

    def lines(handle: IO[Any]) -> int:
        handle.write("a\nb\n")
        return 2

    assert atomic_write(path, lines, text=True) == 2
    assert path.read_bytes() == b"a\nb\n"  # "\n" line ends whatever the platform
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"complete old file\n")

    def half(handle: IO[Any]) -> None:
        handle.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_bytes() == b"complete old file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_mode_is_kept_and_a_link_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink() and link.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_descriptor_path_is_written_through_not_replaced(tmp_path: Path) -> None:
    """/dev/fd/N names an open descriptor even when it resolves to a regular file: the write
    goes through it (like a shell redirection) and the file keeps its inode. (Not /dev/null:
    a broken helper run as root would replace the machine's /dev/null.)"""
    path = tmp_path / "opened.txt"
    with open(path, "wb") as handle:
        before = os.fstat(handle.fileno()).st_ino
        atomic_write(f"/dev/fd/{handle.fileno()}", b"through the descriptor")
    assert path.read_bytes() == b"through the descriptor"
    assert path.stat().st_ino == before
    assert [p.name for p in tmp_path.iterdir()] == ["opened.txt"]
