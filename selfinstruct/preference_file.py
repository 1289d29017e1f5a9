"""`preference.jsonl`: the optional preference-pair file of a version, and its one schema.

Why a module of its own: the schema of a preference row is needed where the file is written
(`store`, which checks each row), checked (`validate_preference`), published (the card's
`preference` config and its pinned features) and exported (`export_dpo`). One description
keeps the four from drifting apart, exactly like `schema.TRAIN_SCHEMA` does for train rows.
It sits outside `selfinstruct.dataset` and imports nothing of it because the card imports it
and the dataset package imports the card.

A row is one pair per instruction (see selfinstruct.preference for how it is picked): the
prompt (the user turn: instruction, then the input after a blank line), the chosen and the
rejected response, both ranking scores, the judge's rationale and which models wrote them.
"""

from __future__ import annotations

from typing import Any

PREFERENCE_FILE = "preference.jsonl"
# The card's config name: `datasets.load_dataset(repo, PREFERENCE_CONFIG)`.
PREFERENCE_CONFIG = "preference"

PREFERENCE_SCHEMA: dict[str, Any] = {
    "id": "string",
    "task_id": "string",
    "prompt": "string",
    "instruction": "string",
    "input": "string",
    "chosen": "string",
    "rejected": "string",
    # Ranking scores: comparisons won against the other responses (a tie counts half).
    "chosen_score": "float64",
    "rejected_score": "float64",
    "chosen_model": "string",
    "rejected_model": "string",
    "judge_model": "string",
    # The judge's rationale for chosen over rejected (their head-to-head comparison).
    "rationale": "string",
    "provenance": {
        "chosen_temperature": "float64",
        "rejected_temperature": "float64",
        # True when both responses come from one model at different temperatures: a weaker
        # contrast than two models (the label the issue asks for).
        "same_model": "bool",
        "responses": "int64",  # responses ranked for this prompt
        "comparisons": "int64",  # pairs of them with a verdict (a win either way, or a tie)
        "chosen_request_id": "string?",
        "rejected_request_id": "string?",
        "prompt_hash": "string",  # of the rendered response prompt (prompts/<lang>/respond.j2)
    },
}

# Rows are loaded with fixed Features from the card, so an unknown field is refused.
PREFERENCE_DATA_FILE: tuple[dict[str, Any], bool] = (PREFERENCE_SCHEMA, True)


def card_config(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The card's `configs` entry for preference.jsonl, or None when the version has no pair.

    A config pointing at an empty file would make `load_dataset(repo, "preference")` fail
    with an empty split, so a version whose run made no pair publishes no such config.
    """
    entry = (manifest.get("files") or {}).get(PREFERENCE_FILE)
    if not isinstance(entry, dict) or not entry.get("rows"):
        return None
    return {"config_name": PREFERENCE_CONFIG,
            "data_files": [{"split": "train", "path": PREFERENCE_FILE}]}
