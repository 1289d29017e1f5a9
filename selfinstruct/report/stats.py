"""The report's numbers, computed once from a version's files: what the charts and the page show.

Kept apart from drawing and layout so each renderer reads the same numbers and none of them
recomputes a statistic its own way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct import languages
from selfinstruct.dataset import REJECTED_FILE, TRAIN_FILE, iter_rows
from selfinstruct.report.verbs import leading_verbs
from selfinstruct.similarity import NoveltyIndex

TOP_PAIRS = 20
TOP_VERBS = 20
# Nearest neighbours cost one pass over all instructions per query; past this many
# instructions an evenly spaced sample of queries is scored (against all of them).
MAX_NEIGHBOUR_QUERIES = 5000

Verb = tuple[str | None, str | None]  # (verb, object) of one instruction


@dataclass
class Stats:
    """Everything the charts and the page show, computed once from a version's files."""

    manifest: dict[str, Any]
    language: str
    rows: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    instructions: list[str]  # distinct, in order of first appearance
    task_types: Counter[str]
    nearest: list[float]  # per queried instruction: ROUGE-L to its nearest other one
    at_acceptance: list[float]  # the same at acceptance time, vs seeds + pool (provenance)
    top_pairs: list[tuple[float, str, str]]
    verbs: list[Verb]  # per instruction
    judged: list[tuple[int, int]]  # (clarity, correctness) of each judged row

    @property
    def profile(self) -> languages.LanguageProfile:
        return languages.get(self.language)

    @property
    def unit(self) -> str:
        return self.profile.length_unit

    @property
    def unit_label(self) -> str:
        return self.profile.unit_label


def collect(folder: Path, manifest: dict[str, Any]) -> Stats:
    """Read a version's rows and compute the report's numbers."""
    rows = [_light(row) for row in iter_rows(folder / TRAIN_FILE)]
    rejected = list(iter_rows(folder / REJECTED_FILE))
    # A version whose manifest names no known language (or none) is read as the default's.
    language = manifest.get("language")
    if language not in languages.codes():
        language = languages.DEFAULT
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        tasks.setdefault(row["task_id"], row)
    instructions = list(dict.fromkeys(row["instruction"] for row in tasks.values()))
    types = Counter(task_type(row) for row in tasks.values())
    nearest, pairs = nearest_neighbours(instructions, language)
    at_acceptance = [row["provenance"]["nearest"] for row in tasks.values()
                     if row["provenance"]["nearest"] is not None]
    judged = [
        (row["provenance"]["judge_clarity"], row["provenance"]["judge_correctness"])
        for row in rows
        if row["provenance"]["judge_clarity"] is not None
        and row["provenance"]["judge_correctness"] is not None
    ]
    return Stats(manifest, language, rows, rejected, instructions, types, nearest,
                 at_acceptance, pairs, leading_verbs(instructions, language), judged)


def task_type(row: dict[str, Any]) -> str:
    """"classification", "generation", or "not labelled" (Alpaca-style rows carry no flag)."""
    flag = row.get("is_classification")
    if flag is None:
        return "not labelled"
    return "classification" if flag else "generation"


def _light(row: dict[str, Any]) -> dict[str, Any]:
    """Keep only the provenance the report reads: with every row's 10 neighbours, a
    52K-instruction version would take gigabytes in memory."""
    provenance = row.get("provenance") or {}
    near = provenance.get("most_similar") or []
    row["provenance"] = {"nearest": near[0]["score"] if near else None,
                         "judge_clarity": provenance.get("judge_clarity"),
                         "judge_correctness": provenance.get("judge_correctness")}
    return row


def nearest_neighbours(
    texts: Sequence[str], language: str
) -> tuple[list[float], list[tuple[float, str, str]]]:
    """Each text's ROUGE-L to its nearest other text, and the most similar pairs overall.

    The top pairs are exact: a pair among the `TOP_PAIRS` most similar is within the top
    `TOP_PAIRS` neighbours of both its texts, so collecting that many per text finds it.
    """
    if len(texts) < 2:
        return [], []
    index = NoveltyIndex.from_texts(texts, language=language)
    step = max(1, -(-len(texts) // MAX_NEIGHBOUR_QUERIES))
    nearest: list[float] = []
    pairs: dict[tuple[str, str], float] = {}
    for text in texts[::step]:
        others = [(o, s) for o, s in index.most_similar(text, TOP_PAIRS + 1) if o != text]
        nearest.append(others[0][1])
        for other, score in others:
            a, b = sorted((text, other))
            pairs[(a, b)] = score
    top = sorted(((s, a, b) for (a, b), s in pairs.items()), key=lambda p: (-p[0], p[1], p[2]))
    return nearest, top[:TOP_PAIRS]


def verb_table(
    verbs: Sequence[Verb], top: int = TOP_VERBS
) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """The most common verbs, each with its count and its objects by frequency."""
    counts = Counter(verb for verb, _ in verbs if verb)
    objects: dict[str, Counter[str]] = {}
    for verb, obj in verbs:
        if verb and obj:
            objects.setdefault(verb, Counter())[obj] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [(verb, n, sorted((objects.get(verb) or Counter()).items(),
                             key=lambda item: (-item[1], item[0])))
            for verb, n in ranked]
