"""--preference: preference pairs for DPO, written to the version's preference.jsonl.

A feature (selfinstruct.features): after the recipe's stages and the quality checks, every
usable instruction gets `--responses K` answers (from `--response-models`, else the generating
model at K temperatures), the pairwise judge compares every pair in both orders, and the best
and worst response by the judge's round robin make one (chosen, rejected) pair when the judge
decided between them. `preference_rank` holds the decisions (slots, scores, which pair),
`preference_stages` the requests and the ledger rows; this module is the feature's face: its
templates, its stages, and what the version gets (rows and the manifest's counts).
docs/quality/preference.md explains the method for users.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from selfinstruct import pairwise
from selfinstruct.preference_file import PREFERENCE_FILE
from selfinstruct.preference_rank import pairs
from selfinstruct.preference_rank import slots as response_slots
from selfinstruct.preference_stages import (
    RESPONSE_MAX_TOKENS,
    Preferences,
    PreferStage,
    RankStage,
    ResponseStage,
)

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine
    from selfinstruct.engine.stages import Stage
    from selfinstruct.llm import Client

TEMPLATES: dict[str, dict[str, Any]] = {
    "respond": {"instruction": "Sort the numbers in ascending order.", "input": "3, 1, 2"},
    **pairwise.TEMPLATES,
}


def enabled(config: GenerateConfig) -> bool:
    return config.preference


def stages(engine: Engine) -> list[Stage]:
    """Response stages, both orders of every pair's judgement, then the ranking."""
    cfg = engine.config
    slots = response_slots(cfg.responses, cfg.response_models, engine.client.model)
    # The generating model answers through the answer client where there is one (the
    # embedded model answers in chat); another model through a client of its own.
    own = engine.answer_client
    clients: dict[str, Client | None] = {engine.client.model: own}
    for slot in slots:
        if slot.model not in clients:
            clients[slot.model] = engine.make_client(slot.model)
    judge = engine.judge_client if cfg.filters.judge_model is not None else own
    judge_model = (judge or engine.client).model
    prefs = Preferences(engine, slots, judge_model)
    found: list[Stage] = []
    # Stages another model answers are priced at that model's price (Dispatcher.cost).
    priced_as = engine.dispatch.stage_models
    for k, slot in enumerate(slots):
        stage = ResponseStage(prefs, k, clients[slot.model])
        engine.dispatch.max_tokens.setdefault(stage.name, RESPONSE_MAX_TOKENS)
        if slot.model != engine.client.model:
            priced_as[stage.name] = slot.model
        found.append(stage)
    for i, j in pairs(len(slots)):
        for order in ("ab", "ba"):
            judging = PreferStage(prefs, i, j, order, judge)
            engine.dispatch.max_tokens.setdefault(judging.name, pairwise.PAIRWISE_MAX_TOKENS)
            if judge_model != engine.client.model:
                priced_as[judging.name] = judge_model
            found.append(judging)
    found.append(RankStage(prefs))
    return found


def _preferences(engine: Engine) -> Preferences | None:
    return next((s.prefs for s in engine.feature_stages if isinstance(s, RankStage)), None)


def data_files(engine: Engine) -> dict[str, Iterable[dict[str, Any]]]:
    """The version's preference.jsonl rows (`dataset.write_version(data_files=...)`); {} when
    --preference is off. Written even with no pair: 0 pairs is a result worth recording."""
    prefs = _preferences(engine)
    return {} if prefs is None else {PREFERENCE_FILE: list(prefs.rows)}


def manifest_field(engine: Engine) -> dict[str, Any] | None:
    """The manifest's `preference` entry: slots, judge, method and counts; None when off.

    `prompts` usable instructions were given responses; `judged` of them had at least one
    comparison with a verdict (a tie included); `pairs` + `ties` = `judged`; `unjudged` had
    fewer than two usable responses or no readable judgement.
    """
    prefs = _preferences(engine)
    if prefs is None:
        return None
    return {
        "responses": len(prefs.slots),
        "slots": [{"model": s.model, "temperature": s.temperature} for s in prefs.slots],
        "same_model": len({s.model for s in prefs.slots}) == 1,
        "judge_model": prefs.judge_model,
        "ranking": "round robin: every pair judged in both orders, wins + ties/2; best vs "
                   "worst with a decided head-to-head",
        **prefs.counts,
    }
