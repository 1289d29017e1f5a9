"""Read key/value metadata from a GGUF model file (llama.cpp's format), in pure Python.

Why: the embedded model is served by llama-cpp-python, whose server has no ``/props``
route, so magpie (selfinstruct.chat_template) reads the chat template and the end-of-sequence
token straight from the bundled GGUF file. Loading the model through llama_cpp only for this
would print C-level log lines and cost a second model load; the metadata block is a short,
documented header at the start of the file (https://github.com/ggml-org/ggml/blob/master/
docs/gguf.md), read here without touching the tensors.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

from selfinstruct._errors import InputError

_MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9
# Fixed-size value types: GGUF type id -> struct format (little-endian).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}


class _Reader:
    def __init__(self, stream: BinaryIO, path: Path) -> None:
        self.stream = stream
        self.path = path

    def take(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise InputError(f"{self.path}: truncated GGUF metadata")
        return data

    def scalar(self, kind: int) -> Any:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.scalar(10)).decode("utf-8", "replace")

    def value(self, kind: int, keep: bool) -> Any:
        """One value; with `keep` False it is skipped (None) as cheaply as possible."""
        if kind in _SCALARS:
            return self.scalar(kind)
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise InputError(f"{self.path}: unknown GGUF value type {kind}")
        item_kind, count = self.scalar(4), self.scalar(10)
        if item_kind in _SCALARS and not keep:
            self.stream.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
            return None
        items = [self.value(item_kind, keep) for _ in range(count)]
        return items if keep else None


def read_metadata(path: Path, keys: Collection[str]) -> dict[str, Any]:
    """The values of `keys` found in the GGUF file's metadata (absent keys are left out)."""
    try:
        with path.open("rb") as stream:
            reader = _Reader(stream, path)
            if reader.take(4) != _MAGIC:
                raise InputError(f"{path}: not a GGUF model file")
            version = reader.scalar(4)
            if version < 2:
                raise InputError(f"{path}: GGUF version {version} is too old to read")
            reader.scalar(10)  # tensor count
            found: dict[str, Any] = {}
            for _ in range(reader.scalar(10)):
                key = reader.string()
                value = reader.value(reader.scalar(4), keep=key in keys)
                if key in keys:
                    found[key] = value
            return found
    except OSError as exc:
        raise InputError(f"{path}: cannot read the model file: {exc.strerror}") from None
