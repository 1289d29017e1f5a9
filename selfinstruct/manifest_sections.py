"""The manifest's sections for recipes and features: what the card and the report show of them.

Each section is computed from the finished run's rows (one streaming pass each, only when
its recipe or feature was used), so a version's manifest says what it holds: how deep
evol-instruct's lineage went, how the instructions spread over personas, how many turns the
conversations have, how confident the answers were. A version without them has no such keys.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine

Rows = Callable[[], Iterator[dict[str, Any]]]


def recipe_parameters(config: GenerateConfig) -> dict[str, Any]:
    """The settings that shape this recipe's and these features' data (for the card)."""
    params: dict[str, Any] = {}
    if config.recipe == "evol-instruct":
        params["generations"] = config.generations
        params["parents"] = str(config.from_version) if config.from_version else "seeds"
    if config.recipe == "magpie":
        params["chat_template"] = (str(config.chat_template) if config.chat_template
                                   else "the endpoint's /props")
    if config.personas is not None:
        params["personas"] = str(config.personas)
    if config.turns >= 2:
        params["turns"] = config.turns
    if config.confidence:
        params["min_confidence"] = config.filters.min_confidence
    if config.verify:
        params["verifiers"] = [v["model"] for v in config.verify]
        params["min_agreement"] = config.filters.min_agreement
    if config.preference:
        params["responses"] = config.responses
        params["response_models"] = config.response_models or "the generating model"
    return params


def lineage_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Evol-instruct: instructions per generation (lineage depth) and per mutation kind."""
    by_task: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        by_task.setdefault(str(row["task_id"]), row.get("provenance") or {})
    depths = Counter(int(p["generation"]) for p in by_task.values()
                     if isinstance(p.get("generation"), int))
    mutations = Counter(str(p["mutation"]) for p in by_task.values() if p.get("mutation"))
    return {
        "by_generation": {str(depth): n for depth, n in sorted(depths.items())},
        "by_mutation": dict(sorted(mutations.items(), key=lambda kv: (-kv[1], kv[0]))),
        "max_depth": max(depths) if depths else 0,
    }


_TURN = re.compile(r"turn (\d+): ")


def turns_summary(rows: Iterable[Mapping[str, Any]],
                  rejected: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Multi-turn rows: conversations by their number of user turns, and the drops by turn.

    The turns feature's rejected rows (stage "turns") name the turn that dropped the
    conversation at the start of their detail ("turn 2: ..."); the rest are a task's other
    answers, dropped when its first one was continued (`not_continued`).
    """
    turns = Counter(sum(1 for m in row["messages"] if m.get("role") == "user")
                    for row in rows if isinstance(row.get("messages"), list))
    dropped: Counter[str] = Counter()
    for row in rejected:
        if row.get("stage") == "turns":
            found = _TURN.match(str(row.get("detail") or ""))
            dropped[f"turn {found.group(1)}" if found else str(row.get("reason"))] += 1
    return {"by_user_turns": {str(n): c for n, c in sorted(turns.items())},
            "conversations": sum(turns.values()),
            "dropped_by_turn": dict(sorted(dropped.items()))}


def sections(engine: Engine, rows: Rows) -> dict[str, Any]:
    """The manifest keys of the recipe and the features this run used."""
    config = engine.config
    out: dict[str, Any] = {}
    params = recipe_parameters(config)
    if params:
        out["recipe_parameters"] = params
    if config.recipe == "evol-instruct":
        out["lineage"] = lineage_summary(rows())
    if engine.chat_template is not None:  # magpie: which template the requests came from
        template = engine.chat_template
        out["chat_template"] = {"origin": template.origin, "sha256": template.sha256}
    if engine.personas:
        from selfinstruct.persona_stats import persona_spread

        out["personas"] = persona_spread(rows(), len(engine.personas))
    if config.turns >= 2:
        out["turns"] = turns_summary(rows(), engine.rejected)
    if config.confidence:
        from selfinstruct.confidence import confidence_summary

        out["confidence"] = confidence_summary(rows(), engine.rejected,
                                               config.filters.min_confidence)
    if config.verify:
        from selfinstruct.verify import run_summary

        # Every checked answer, kept or dropped by min_agreement: the kept rows alone
        # would overstate agreement.
        out["agreement"] = run_summary(engine)
    if config.preference:
        from selfinstruct.preference import manifest_field

        out["preference"] = manifest_field(engine)
    return out
