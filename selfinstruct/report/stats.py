"""The report's numbers, computed once from a version's files: what the charts and the page show.

Kept apart from drawing and layout so each renderer reads the same numbers and none of them
recomputes a statistic its own way.

The rows are streamed, never held: a 52K-instruction version has ~130K train rows, and
holding them (even trimmed) cost the run's final step hundreds of MB. `Stats` keeps only
what is shown — counts, one length per row, the distinct instructions, a fixed-size sample
of rows and the first rejected rows of each reason — so its size grows with the number of
rows by a few numbers each, not by the rows' text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct import languages
from selfinstruct.dataset import REJECTED_FILE, TRAIN_FILE, iter_rows
from selfinstruct.filters import text_length
from selfinstruct.report.verbs import leading_verbs
from selfinstruct.similarity import NoveltyIndex

TOP_PAIRS = 20
TOP_VERBS = 20
SAMPLE_ROWS = 200  # rows in the page's searchable sample
REJECTION_EXAMPLES = 2  # rejected rows shown per (stage, reason)
MASK_TOKENS = ("[EMAIL]", "[PHONE]", "[CARD]")
# Nearest neighbours cost one pass over all instructions per query; past this many
# instructions an evenly spaced sample of queries is scored (against all of them).
MAX_NEIGHBOUR_QUERIES = 5000

Verb = tuple[str | None, str | None]  # (verb, object) of one instruction


@dataclass
class RejectionGroup:
    """The rejected rows of one (stage, reason): how many, and the first few as examples."""

    stage: str
    reason: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Lengths:
    """Per-row lengths in the language's unit, in row order: inputs only when present."""

    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    empty_inputs: int = 0


@dataclass
class Stats:
    """Everything the charts and the page show, computed once from a version's files."""

    manifest: dict[str, Any]
    language: str
    sample: list[dict[str, Any]]  # evenly spaced train rows, provenance trimmed (`_light`)
    rejections: list[RejectionGroup]  # most frequent first, ties by (stage, reason)
    instructions: list[str]  # distinct, in order of first appearance
    task_types: Counter[str]
    nearest: list[float]  # per queried instruction: ROUGE-L to its nearest other one
    at_acceptance: list[float]  # the same at acceptance time, vs seeds + pool (provenance)
    top_pairs: list[tuple[float, str, str]]
    verbs: list[Verb]  # per instruction
    judged: list[tuple[int, int]]  # (clarity, correctness) of each judged row
    row_count: int = 0
    rejected_count: int = 0
    lengths: Lengths = field(default_factory=Lengths)
    masked: int = 0  # rows whose text holds a PII mask token

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
    """Read a version's rows, one at a time, and compute the report's numbers."""
    # A version whose manifest names no known language (or none) is read as the default's.
    language = manifest.get("language")
    if language not in languages.codes():
        language = languages.DEFAULT
    stats = Stats(manifest, language, [], [], [], Counter(), [], [], [], [], [])
    _read_train(folder / TRAIN_FILE, stats)
    stats.nearest, stats.top_pairs = nearest_neighbours(stats.instructions, language)
    stats.verbs = leading_verbs(stats.instructions, language)
    stats.rejections, stats.rejected_count = rejection_groups(iter_rows(folder / REJECTED_FILE))
    return stats


def _read_train(path: Path, stats: Stats) -> None:
    """One pass over train.jsonl: per-task numbers from each task's first row, per-row
    lengths, judge scores and mask counts, and the rows of the sample."""
    picks = set(sample_positions(_count_lines(path)))
    unit = stats.unit
    tasks: set[str] = set()
    instructions: dict[str, None] = {}  # distinct, ordered
    for position, row in enumerate(iter_rows(path)):
        row = _light(row)
        provenance = row["provenance"]
        if row["task_id"] not in tasks:
            tasks.add(row["task_id"])
            instructions.setdefault(row["instruction"], None)
            stats.task_types[task_type(row)] += 1
            if provenance["nearest"] is not None:
                stats.at_acceptance.append(provenance["nearest"])
        if provenance["judge_clarity"] is not None \
                and provenance["judge_correctness"] is not None:
            stats.judged.append((provenance["judge_clarity"], provenance["judge_correctness"]))
        if row["input"].strip():
            stats.lengths.inputs.append(text_length(row["input"], unit))
        else:
            stats.lengths.empty_inputs += 1
        stats.lengths.outputs.append(text_length(row["output"], unit))
        if any(tok in f"{row['instruction']} {row['input']} {row['output']}"
               for tok in MASK_TOKENS):
            stats.masked += 1
        if position in picks:
            stats.sample.append(row)
        stats.row_count += 1
    stats.instructions = list(instructions)


def _count_lines(path: Path) -> int:
    """The number of rows of a JSONL file (one per line), without parsing them: the sample
    positions depend on it and are known before the one parsing pass."""
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def sample_positions(total: int, size: int = SAMPLE_ROWS) -> list[int]:
    """Evenly spaced row positions: early and late rounds both show, and the pick is
    deterministic."""
    step = max(1, total / size)
    return [int(i * step) for i in range(min(size, total))]


def rejection_groups(rows: Iterable[dict[str, Any]],
                     examples: int = REJECTION_EXAMPLES) -> tuple[list[RejectionGroup], int]:
    """Rejected rows grouped by (stage, reason), most frequent first, with the first
    `examples` rows of each; and the number of rows."""
    groups: dict[tuple[str, str], RejectionGroup] = {}
    total = 0
    for row in rows:
        key = (row.get("stage", "?"), row.get("reason", "?"))
        group = groups.setdefault(key, RejectionGroup(*key))
        group.count += 1
        if len(group.examples) < examples:
            group.examples.append({"instruction": row.get("instruction"),
                                   "output": row.get("output"), "detail": row.get("detail")})
        total += 1
    ranked = sorted(groups.items(), key=lambda item: (-item[1].count, item[0]))
    return [group for _, group in ranked], total


def task_type(row: dict[str, Any]) -> str:
    """"classification", "generation", or "not labelled" (Alpaca-style rows carry no flag)."""
    flag = row.get("is_classification")
    if flag is None:
        return "not labelled"
    return "classification" if flag else "generation"


def _light(row: dict[str, Any]) -> dict[str, Any]:
    """Keep only the provenance the report reads (the nearest score at acceptance and the
    judge's scores): a sampled row is kept for the page, its 10 neighbours are not."""
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
        if len(pairs) > 4 * TOP_PAIRS:
            pairs = dict(_top_pairs(pairs))
    return nearest, [(s, a, b) for (a, b), s in _top_pairs(pairs)]


def _top_pairs(pairs: dict[tuple[str, str], float]) -> list[tuple[tuple[str, str], float]]:
    """The `TOP_PAIRS` most similar pairs, ties by text. Pruning to these as pairs come in
    is exact (a pair once ranked below `TOP_PAIRS` others stays below them) and keeps the
    pairs of 5,000 queries from taking tens of MB."""
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:TOP_PAIRS]


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
