"""Personas that condition generation requests (--personas); loading is added by its owner."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from selfinstruct._errors import InputError


@dataclass(frozen=True)
class Persona:
    id: str
    description: str
    language: str | None = None


def pick(personas: list[Persona], seed: int, nonce: str) -> Persona:
    """The persona of one request: a hash of (run seed, nonce), so it never draws from the
    run's RNG (runs without personas stay byte-identical) and a resume picks the same one."""
    digest = hashlib.sha256(f"{seed}:persona:{nonce}".encode()).hexdigest()
    return personas[int(digest[:12], 16) % len(personas)]


def load_personas(path: Path, language: str) -> list[Persona]:
    """The personas of a JSONL file (`id`, `description`, optional `language`).

    Minimal: the personas module's owner replaces it with the full validation (bundled sets,
    one error line per file/line/field, language checks).
    """
    personas = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not row.get("id") or not row.get("description"):
            raise InputError(f"{path}:{number}: a persona needs 'id' and 'description'")
        personas.append(Persona(str(row["id"]), str(row["description"]),
                                row.get("language") or language))
    if not personas:
        raise InputError(f"{path}: no personas")
    return personas
