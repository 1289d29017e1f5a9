"""The manifest's recipe and feature sections, and the card rows and report panels of them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from selfinstruct.card import _recipe_rows
from selfinstruct.config import GenerateConfig
from selfinstruct.manifest_sections import lineage_summary, recipe_parameters, turns_summary
from selfinstruct.report.panels import PANEL_BUILDERS
from selfinstruct.report.stats import Stats


def _row(task: str, **provenance: object) -> dict:
    return {"task_id": task, "provenance": provenance}


def test_lineage_counts_tasks_not_rows() -> None:
    rows = [_row("t1", generation=1, mutation="deepen"),
            _row("t1", generation=1, mutation="deepen"),  # a second instance of t1
            _row("t2", generation=2, mutation="breadth"),
            _row("t3", generation=2, mutation="deepen"),
            _row("t4")]  # no lineage (not an evolved row)
    summary = lineage_summary(rows)
    assert summary == {"by_generation": {"1": 1, "2": 2},
                       "by_mutation": {"deepen": 2, "breadth": 1}, "max_depth": 2}


def test_turns_counts_user_turns_and_turn_drops() -> None:
    two = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
           {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    rows = [{"messages": two}, {"messages": two}, {"messages": two[:2]}, {"input": "x"}]
    rejected = [{"stage": "turns", "reason": "refusal", "detail": "turn 2: refusal ..."},
                {"stage": "turns", "reason": "copied_prompt", "detail": "turn 2: copied"},
                {"stage": "turns", "reason": "truncated", "detail": "turn 3: cut off"},
                {"stage": "turns", "reason": "not_continued", "detail": "the task's ..."},
                {"stage": "filter", "reason": "refusal", "detail": "turn 2: not a turn row"}]
    assert turns_summary(rows, rejected) == {
        "by_user_turns": {"1": 1, "2": 2}, "conversations": 3,
        "dropped_by_turn": {"not_continued": 1, "turn 2": 2, "turn 3": 1}}


def test_recipe_parameters_name_only_what_was_used() -> None:
    plain = GenerateConfig(seeds=Path("s.jsonl"), dataset="d", num_instructions=5)
    assert recipe_parameters(plain) == {}
    evol = GenerateConfig(seeds=Path("s.jsonl"), dataset="d", num_instructions=5,
                          recipe="evol-instruct", generations=4, turns=3,
                          verify=[{"model": "m2"}], personas=Path("ja"))
    params = recipe_parameters(evol)
    assert params["generations"] == 4 and params["parents"] == "seeds"
    assert params["turns"] == 3 and params["verifiers"] == ["m2"]
    assert params["personas"] == "ja"


def _stats(manifest: dict) -> Stats:
    return Stats(manifest, "en", [], [], [], Counter(), [], [], [], [], [])


def test_panels_appear_only_for_sections_the_manifest_has() -> None:
    assert [b(_stats({})) for b in PANEL_BUILDERS] == [None] * len(PANEL_BUILDERS)
    manifest = {
        "lineage": {"by_generation": {"1": 3, "2": 1}, "by_mutation": {"deepen": 4},
                    "max_depth": 2},
        "personas": {"top": [["p1", 3], ["p2", 1]], "personas_used": 2, "instructions": 4,
                     "personas_available": 200, "max_share": 0.75},
        "turns": {"by_user_turns": {"3": 5}, "conversations": 5,
                  "dropped_by_turn": {"turn 2": 1}},
        "confidence": {"status": "available", "threshold": 0.3, "rows_scored": 4,
                       "dropped": 1, "median": 0.6,
                       "bins": [{"low": i / 10, "high": (i + 1) / 10, "kept": i, "dropped": 0}
                                for i in range(10)]},
        "agreement": {"verifiers": {"m2": {"kind": "model", "checked": 10, "agreed": 7,
                                           "rate": 0.7}}},
        "preference": {"prompts": 30, "pairs": 23, "ties": 7, "unjudged": 0, "responses": 2,
                       "slots": [{"model": "m", "temperature": 0.2},
                                 {"model": "m", "temperature": 1.0}], "judge_model": "j"},
    }
    charts = [chart for b in PANEL_BUILDERS if (chart := b(_stats(manifest))) is not None]
    assert [c.name for c in charts] == ["lineage.png", "personas.png", "turns.png",
                                        "confidence.png", "agreement.png", "preference.png"]
    assert "(m @ 0.2, m @ 1.0)" in charts[5].caption
    assert all(c.png.startswith(b"\x89PNG") for c in charts)
    assert "2 personas of 200 available" in charts[1].caption
    assert "turn 2 1" in charts[2].caption
    # An endpoint without log-probs has no confidence chart (nothing made up).
    unavailable = {**manifest, "confidence": {**manifest["confidence"], "status": "unavailable"}}
    assert "confidence.png" not in [c.name for b in PANEL_BUILDERS
                                    if (c := b(_stats(unavailable))) is not None]


def test_card_rows_show_the_sections() -> None:
    rows = dict((k, v) for k, v in _recipe_rows({
        "recipe_parameters": {"generations": 3, "verifiers": ["a", "b"]},
        "lineage": {"by_generation": {"1": 2}},
        "personas": {"personas_used": 7, "instructions": 9, "max_share": 0.25},
    }))
    assert rows["Recipe settings"] == "generations = 3; verifiers = a, b"
    assert rows["Lineage (evol-instruct)"] == "gen 1: 2"
    assert rows["Personas"] == "7 used for 9 instructions (most used: 25.0%)"
