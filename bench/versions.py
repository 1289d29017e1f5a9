"""What two benchmark runs are compared by: a version's rows, minus what names the answer.

Runs of the same job against different endpoints or executors must write the same data; the
only field that may differ is the endpoint's request id.
"""

from __future__ import annotations

import json
from pathlib import Path


def rows_without_request_ids(version: str | Path) -> list[dict]:
    found = [json.loads(line) for line in (Path(version) / "train.jsonl").open()]
    for row in found:
        row["provenance"].pop("request_id")
    return found
