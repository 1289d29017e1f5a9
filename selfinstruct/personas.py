"""Personas that condition generation requests (``--personas FILE|NAME``).

Why: a few hundred seed tasks steer every generation request towards the same topics; asking
each request for the tasks one particular person would ask (PersonaHub, Nemotron-Personas)
spreads the instructions over many more jobs, ages, places and levels of expertise. Each
generation request gets one persona, picked by a hash of (run seed, nonce) — never from the
run's RNG, so a run without personas is byte-identical to one before this feature, and a
resumed run picks the same persona for the same request.

A persona file is JSON Lines, one object per line::

    {"id": "en-001", "description": "A night-shift nurse in Chicago ...", "language": "en"}

``id`` (a unique non-empty string) and ``description`` (non-empty, at most
`MAX_DESCRIPTION_CHARS` characters; runs of whitespace, newlines included, become one space so
the prompt layout stays intact) are required; ``language`` (a code of
`selfinstruct.languages`) is optional. The file is checked like a seed file, with the same
reader (`selfinstruct.seeds`): the first problem is one line naming file, line and field; an
unknown field, a duplicate id or description and an empty file are refused.

Language: a persona whose ``language`` differs from the run's is skipped, not refused, so one
file can hold personas in several languages and serve a run in each; a persona without
``language`` serves every run. A file with no persona for the run's language is refused (the
run would condition on nothing). ``--personas en`` / ``ja`` name the sets shipped in
``seeds/personas/`` (a wheel carries them as ``selfinstruct/_bundled/seeds/personas``).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct import languages
from selfinstruct._errors import InputError, located
from selfinstruct.input_files import require_regular_file
from selfinstruct.prompts import bundled_dir
from selfinstruct.seeds import check_fields, jsonl_rows, read_seed_file, require_str

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine
    from selfinstruct.engine.stages import Stage

PERSONA_FIELDS = ("id", "description", "language")
# A persona is one or two sentences; it is sent with every generation request, so a long
# one multiplies the cost of the whole run (and is most likely a wrong column).
MAX_DESCRIPTION_CHARS = 1000


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


# --personas is a feature (selfinstruct.features) with no stage of its own: its template, the
# persona sentence (prompts/<lang>/persona.j2), is loaded and checked before any request
# only when the run has personas, so a --prompts-dir without persona.j2 still serves others.
TEMPLATES: dict[str, dict[str, Any]] = {
    "persona": {"persona": {"id": "sample", "description": "A retired teacher who keeps bees."}},
}


def enabled(config: GenerateConfig) -> bool:
    return config.personas is not None


def stages(engine: Engine) -> list[Stage]:
    """None: the recipes condition their own generation requests (`conditioned`)."""
    return []


def conditioned(engine: Engine, prompt: str, nonce: str) -> str:
    """`prompt` (a rendered generation prompt) conditioned on the persona of request `nonce`:
    the persona sentence goes right after the prompt's first line; without --personas the
    prompt is returned unchanged.

    Spliced in here rather than written as a block inside bootstrap.j2 and alpaca.j2: an edit
    of those files changes their sha256 in every run.json, so runs started before it could no
    longer be resumed (selfinstruct.resume_rules), although their prompts would be the same.
    The first line stays first, so a prompt is still recognised as its template's.
    """
    persona = engine.persona_for(nonce)
    if persona is None:
        return prompt
    head, _, rest = prompt.partition("\n")
    return f"{head}\n{engine.prompts.render('persona', persona=persona)}\n{rest}"


def _bundled_folder() -> Path | None:
    try:
        return bundled_dir("seeds") / "personas"
    except InputError:
        return None


def bundled_persona_sets() -> list[str]:
    """Names of the persona sets shipped with selfinstruct, accepted by ``--personas NAME``."""
    folder = _bundled_folder()
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.jsonl") if p.is_file())


def resolve_persona_path(path: str | Path) -> Path:
    """The file `path` names: an existing path first, else a bundled set of that name.

    A bundled set may be named ``ja``, ``ja.jsonl`` or ``seeds/personas/ja.jsonl`` (the
    repository path, so documented commands work from any folder of an installed copy).
    Anything else is returned unchanged and fails to open with the path the user typed.
    """
    path = Path(path)
    if os.path.lexists(path):
        return path
    parts = path.parts
    plain = len(parts) == 1 and path.suffix in ("", ".jsonl")
    in_seeds = parts[:-1] == ("seeds", "personas") and path.suffix == ".jsonl"
    folder = _bundled_folder()
    if folder is not None and (plain or in_seeds) and path.stem in bundled_persona_sets():
        return folder / f"{path.stem}.jsonl"
    return path


def _read_bytes(path: Path) -> bytes:
    """The bytes of a persona file: the seed reader's checks (regular file, size), with
    persona wording for the mistakes a user makes with this flag (a wrong name, a folder)."""
    if not os.path.lexists(path):
        names = ", ".join(bundled_persona_sets()) or "none"
        raise InputError(f"{path}: persona file not found (bundled sets: {names})")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a persona file (.jsonl)")
    require_regular_file(path, "persona file (.jsonl)")
    return read_seed_file(path)


def persona_file_sha256(path: str | Path) -> str:
    """sha256 of a persona file's bytes (a path or a bundled name), for provenance."""
    return hashlib.sha256(_read_bytes(resolve_persona_path(path))).hexdigest()


def load_personas(path: str | Path, language: str) -> list[Persona]:
    """The personas of a file or bundled set that serve a run in `language`.

    Raises `InputError` (one line: file, line, field) on any fault in the file, including in
    personas of other languages, and when no persona is left for `language`.
    """
    path = resolve_persona_path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # BOM: written by some editors
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            located(path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line)) from None
    rows = jsonl_rows(path, text)
    if not rows:
        raise InputError(f"{path}: empty persona file (no personas)")
    personas: list[Persona] = []
    first_id: dict[str, int] = {}
    first_description: dict[str, int] = {}
    for line, row in rows:
        persona = _persona(path, line, row)
        if persona.id in first_id:
            raise InputError(located(path, f"duplicate id {persona.id!r} (first on line "
                                     f"{first_id[persona.id]})", line, "id"))
        if persona.description in first_description:
            raise InputError(located(path, f"duplicate description (same as line "
                                     f"{first_description[persona.description]})", line,
                                     "description"))
        first_id[persona.id] = first_description[persona.description] = line
        personas.append(persona)
    kept = [p for p in personas if p.language in (None, language)]
    if not kept:
        counts = Counter(p.language for p in personas)
        found = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
        raise InputError(f"{path}: no persona for language '{language}' (the file has {found}; "
                         f"a persona without 'language' serves every language)")
    return kept


def _persona(path: Path, line: int, row: Any) -> Persona:
    if not isinstance(row, dict):
        raise InputError(located(path, f"expected a JSON object, got {type(row).__name__}",
                                 line))
    check_fields(path, line, row, PERSONA_FIELDS)
    persona_id = require_str(path, line, row, "id").strip()
    description = " ".join(require_str(path, line, row, "description").split())
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InputError(located(path, f"{len(description)} characters; a persona is one or "
                                 f"two sentences (at most {MAX_DESCRIPTION_CHARS})", line,
                                 "description"))
    language = row.get("language")
    if language is not None and language not in languages.codes():
        raise InputError(located(path, f"unknown language {language!r} (known: "
                                 f"{', '.join(languages.codes())})", line, "language"))
    return Persona(id=persona_id, description=description, language=language)
