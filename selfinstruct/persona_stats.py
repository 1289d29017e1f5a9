"""How a dataset's instructions spread over the personas that conditioned them.

Why: personas are there for diversity, and diversity only happens if many personas end up
in the data. A run whose instructions all came from a handful of personas (a tiny file, or
one persona whose prompts the model answers far better than the others') looks diverse in
its config and is not; the manifest and the report show the spread so that is visible.

Counted per instruction (task), not per row: one task may have several instances (rows), and
the persona conditioned the instruction, not the number of instances the model wrote for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

TOP = 10  # personas listed by name in `top` (the report shows them)


def persona_spread(rows: Iterable[Mapping[str, Any]],
                   available: int | None = None) -> dict[str, Any]:
    """Instruction counts per persona of train rows (``task_id`` and ``provenance``).

    Returns ``counts`` (persona id -> instructions, most used first, ties by id),
    ``instructions`` (with a persona), ``without_persona`` (instructions without one),
    ``personas_used``, ``personas_available`` (`available`, the personas the run could pick
    from, or None when unknown), ``max_share`` (the most used persona's share of the
    instructions with a persona; 0.0 without any) and ``top`` (the `TOP` most used, as
    ``[id, count]`` pairs).
    """
    persona_of_task: dict[str, str | None] = {}
    for row in rows:
        provenance = row.get("provenance") or {}
        persona_of_task.setdefault(str(row["task_id"]), provenance.get("persona_id"))
    counts = Counter(p for p in persona_of_task.values() if p is not None)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    with_persona = sum(counts.values())
    return {
        "counts": dict(ordered),
        "instructions": with_persona,
        "without_persona": len(persona_of_task) - with_persona,
        "personas_used": len(counts),
        "personas_available": available,
        "max_share": ordered[0][1] / with_persona if ordered else 0.0,
        "top": [[persona, n] for persona, n in ordered[:TOP]],
    }
