"""The report of a dataset version: the numbers, charts and one HTML page a person can read.

People choose a generator by what comes out of it, and should look at a dataset before they
train on it. The report answers the questions the Self-Instruct paper asked of its own data,
for any version: what each filter dropped and why (the funnel, rejection reasons with
examples), how diverse the instructions are (ROUGE-L to the nearest other instruction; leading
verbs and their objects), what the rows look like (length distributions, the task-type mix, the
20 most similar pairs, a searchable sample), and the judge's scores when the run had a judge.

Outputs: ``report.html`` — self-contained (CSS, a few lines of JS and the charts as data URIs),
so it opens offline and can be mailed around — and each chart as a PNG. Inside a version folder
they live in ``report/`` and are written before the folder's atomic rename
(`write_into_version`, the `dataset.write_version` hook), so the manifest lists them and the
card shows the PNGs. `build_report` writes a fresh report for an existing version next to it,
never into it: versions are immutable.

Language analysis:

* English leading verbs use a documented heuristic over lemminflect's lexicon (it ships its
  data in the wheel; spaCy or NLTK models are separate downloads): the verb is the first word
  of an imperative — after "Please", "Can you" or a leading clause that ends in a comma — and
  its object is the head (last noun) of the noun phrase after it, skipping an indirect object
  pronoun ("Tell me a joke" → tell/joke). Questions and statements have no leading verb and
  are counted as such, as the paper's verb-noun figure leaves them out too.
* Japanese uses SudachiPy with the packaged core dictionary: the predicate is the last content
  verb of the first sentence (auxiliaries after て/で such as ください are skipped; a サ変 noun
  plus する counts as one verb, 説明する), and its object is the compound noun before the
  nearest preceding を.

Charts are drawn with matplotlib's object API (no pyplot state, no GUI backend), imported only
when a report is built. Japanese glyphs come from IPAexGothic, shipped by the
``matplotlib-fontja`` wheel, as a fallback after DejaVu Sans, so nothing depends on system
fonts.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import mean, median
from typing import Any

import jinja2

from selfinstruct import __version__
from selfinstruct._errors import InputError
from selfinstruct.dataset import (
    REJECTED_FILE,
    TRAIN_FILE,
    iter_rows,
    read_manifest,
    resolve_version,
)
from selfinstruct.filters import text_length
from selfinstruct.similarity import NoveltyIndex

REPORT_DIR = "report"  # inside a version folder
HTML_FILE = "report.html"
SAMPLE_ROWS = 200
TOP_PAIRS = 20
TOP_VERBS = 20
# Nearest neighbours cost one pass over all instructions per query; past this many
# instructions an evenly spaced sample of queries is scored (against all of them).
MAX_NEIGHBOUR_QUERIES = 5000
# Stage order of the funnel chart and what each stage counts; unknown stages follow.
FUNNEL_STAGES = {
    "request": "requests", "parse": "instructions", "filter": "instructions",
    "target": "instructions", "novelty": "instructions", "classify": "tasks",
    "instance_filter": "instances", "instances": "tasks", "consistency": "instances",
    "judge": "instances",
}
MASK_TOKENS = ("[EMAIL]", "[PHONE]", "[CARD]")

_KEPT, _DROPPED = "#2a9d8f", "#e76f51"
_SHADES = ("#264653", "#2a9d8f", "#8ab17d", "#e9c46a", "#d0d0d0")
_DPI = 100


# --------------------------------------------------------------------------- numbers


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
    verbs: list[tuple[str | None, str | None]]  # per instruction: (verb, object)
    judged: list[tuple[int, int]]  # (clarity, correctness) of each judged row

    @property
    def unit(self) -> str:
        return "chars" if self.language == "ja" else "words"

    @property
    def unit_label(self) -> str:
        return "characters" if self.language == "ja" else "words"


def collect(folder: Path, manifest: dict[str, Any]) -> Stats:
    """Read a version's rows and compute the report's numbers."""
    rows = [_light(row) for row in iter_rows(folder / TRAIN_FILE)]
    rejected = list(iter_rows(folder / REJECTED_FILE))
    language = "ja" if manifest.get("language") == "ja" else "en"
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        tasks.setdefault(row["task_id"], row)
    instructions = list(dict.fromkeys(row["instruction"] for row in tasks.values()))
    types = Counter(
        {True: "classification", False: "generation"}.get(row.get("is_classification"),
                                                          "not labelled")
        for row in tasks.values()
    )
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
    index = NoveltyIndex.from_texts(texts, language="ja" if language == "ja" else "en")
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


# --------------------------------------------------------------------------- leading verbs

# "Given a list, sort it": a leading clause opened by one of these ends at the first comma.
_EN_OPENERS = frozenset({"given", "using", "based", "in", "for", "after", "before", "with",
                         "without", "from", "as", "if", "when", "once", "considering",
                         "assuming", "according", "under", "on", "at", "by", "within"})
_EN_POLITE = frozenset({"please", "kindly", "now", "then", "also", "briefly", "quickly",
                        "carefully", "just", "simply", "first", "next", "finally"})
_EN_ASKING = frozenset({"can", "could", "would", "will"})  # "Can you explain …"
_EN_QUESTION = frozenset({"what", "how", "why", "when", "where", "which", "who", "whom",
                          "whose", "is", "are", "was", "were", "do", "does", "did", "can",
                          "could", "would", "will", "should", "shall", "may", "might", "has",
                          "have", "had", "if", "am"})
# Phrasal verbs common in instructions: "Come up with a slogan" is come up with/slogan.
_EN_PHRASAL = (("come", "up", "with"), ("point", "out"), ("figure", "out"), ("find", "out"),
               ("sum", "up"), ("break", "down"), ("write", "down"), ("think", "of"),
               ("look", "up"), ("fill", "in"), ("set", "up"), ("carry", "out"),
               ("make", "up"), ("list", "out"), ("rule", "out"), ("work", "out"))
_EN_INDIRECT = frozenset({"me", "us", "him", "her", "them", "you", "someone", "somebody"})
# A noun phrase ends at a preposition, conjunction, relative or question word.
_EN_NP_END = frozenset({
    "about", "above", "across", "after", "against", "along", "among", "around", "as", "at",
    "based", "before", "behind", "below", "between", "beyond", "by", "during", "except", "for",
    "from", "in", "including", "inside", "into", "like", "near", "of", "off", "on", "onto",
    "out", "over", "per", "since", "than", "through", "throughout", "to", "toward", "towards",
    "under", "until", "upon", "using", "via", "with", "within", "without", "that", "which",
    "who", "whom", "whose", "where", "when", "why", "how", "what", "whether", "if", "and",
    "or", "but", "so", "because", "while", "is", "are", "was", "were", "be",
})
_EN_NOT_HEAD = frozenset({"a", "an", "the", "this", "that", "these", "those", "my", "your",
                          "his", "her", "its", "our", "their", "some", "any", "each", "every",
                          "all", "both", "few", "several", "many", "more", "most", "other",
                          "another", "such", "one", "two", "three", "four", "five"})


def leading_verbs(texts: Iterable[str], language: str) -> list[tuple[str | None, str | None]]:
    """(verb, object) per instruction, in dictionary form; None where there is none."""
    analyse = _japanese_predicate if language == "ja" else _english_verb
    return [analyse(text) for text in texts]


@cache
def _lemminflect() -> Any:
    import lemminflect  # loads its lexicon (~0.7 s): only when a report is built

    return lemminflect


def _english_verb(text: str) -> tuple[str | None, str | None]:
    lex = _lemminflect()
    first = re.split(r"[.?!:;\n]", text, maxsplit=1)[0]
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", first)
    if words and words[0].lower() in _EN_OPENERS and "," in first:
        words = re.findall(r"[A-Za-z][A-Za-z'-]*", first.partition(",")[2])
    while words and words[0].lower() in _EN_POLITE:
        words = words[1:]
    if len(words) >= 2 and words[0].lower() in _EN_ASKING and words[1].lower() == "you":
        words = words[2:]
        while words and words[0].lower() in _EN_POLITE:
            words = words[1:]
    if not words or words[0].lower() in _EN_QUESTION or not _is_verb(words[0]):
        return None, None
    verb = lex.getLemma(words[0].lower(), upos="VERB")[0].lower()
    rest = words[1:]
    for phrase in _EN_PHRASAL:
        if (verb, *(w.lower() for w in rest[:len(phrase) - 1])) == phrase:
            verb, rest = " ".join(phrase), rest[len(phrase) - 1:]
            break
    if rest and rest[0].lower() in _EN_INDIRECT and len(rest) > 1:
        rest = rest[1:]  # "Give me three ideas": the object is what is given
    head = None
    for word in rest:
        low = word.lower()
        lemmas = lex.getAllLemmas(low)
        if low in _EN_NP_END or (head and set(lemmas) == {"VERB"}):
            break  # a verb-only word ("asking") after a noun starts a new clause
        # A word the lexicon lacks is most likely a new noun ("podcasts"); its rules lemmatise it.
        if ("NOUN" in lemmas or not lemmas) and low not in _EN_NOT_HEAD:
            head = lex.getLemma(low, upos="NOUN")[0].lower()
    return verb, head


def _is_verb(word: str) -> bool:
    return "VERB" in _lemminflect().getAllLemmas(word.lower())


@cache
def _sudachi() -> Any:
    from sudachipy import Dictionary, SplitMode

    return Dictionary(dict="core").tokenizer(mode=SplitMode.C)


# Verbs that only carry a request or "do": the action is the verb before よう or the サ変
# noun they take as object ("要約をお願いします", "比較するよう依頼します").
_JA_LIGHT = frozenset({"する", "行う", "願う", "お願いする", "依頼する", "頼む", "希望する",
                       "求める", "要望する"})
_JA_NOMINALISERS = frozenset({"こと", "もの"})
_Unit = tuple[int, str]  # a verb: index of its first token, dictionary form


def _japanese_predicate(text: str) -> tuple[str | None, str | None]:
    first = re.split(r"[。？！?!\n]", text, maxsplit=1)[0]
    morphemes = list(_sudachi().tokenize(first))
    surfaces = [m.surface() for m in morphemes]
    tags = [m.part_of_speech() for m in morphemes]
    units = _ja_verb_units(morphemes, tags)
    if not units:
        return None, None
    start, verb = units[-1]  # the last one: Japanese puts the predicate last
    if verb in _JA_LIGHT:
        you = next((i for i in range(start - 1, max(start - 3, -1), -1)
                    if tags[i][1] == "助動詞語幹"), None)  # "…するよう(に)願います"
        inner = [unit for unit in units if you is not None and unit[0] < you]
        particle = _particle_before(surfaces, tags, start)
        if inner:
            start, verb = inner[-1]
        elif particle and "サ変可能" in tags[particle - 1]:
            action = particle - 1  # "成功事例の列挙をお願い": 列挙する, of 成功事例
            begin = _compound_start(tags, action)
            if begin == action and begin > 0 and surfaces[begin - 1] == "の":
                return surfaces[action] + "する", "".join(
                    surfaces[_compound_start(tags, begin - 1):begin - 1]) or None
            return surfaces[action] + "する", "".join(surfaces[begin:action]) or None
    particle = _particle_before(surfaces, tags, start)
    if particle is None:
        return verb, None
    return verb, "".join(surfaces[_compound_start(tags, particle):particle]) or None


def _ja_verb_units(morphemes: Sequence[Any], tags: Sequence[Sequence[str]]) -> list[_Unit]:
    """(first token, dictionary form) of each content verb, in order.

    Skipped: auxiliaries (after て/で, or right after another verb: しなさい, お願いします) and
    verbs that modify the next noun (山火事をめぐる課題). A noun followed by する is one verb
    (説明する); a sentence ending in a サ変 noun (要約をお願い) ends with that verb.
    """
    units = []
    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i else None
        if tag[0] != "動詞":
            continue
        if prev is not None and (prev[0] == "動詞" or (
                prev[1] == "接続助詞" and morphemes[i - 1].surface() in ("て", "で"))):
            continue
        if (i + 1 < len(tags) and tags[i + 1][0] == "名詞"
                and morphemes[i + 1].surface() not in _JA_NOMINALISERS):
            continue
        form = morphemes[i].dictionary_form()
        if form == "する" and prev is not None and prev[0] == "名詞":
            units.append((i - 1, morphemes[i - 1].surface() + "する"))
        else:
            units.append((i, form))
    last = max((i for i, tag in enumerate(tags) if tag[0] not in ("補助記号", "助詞", "助動詞")),
               default=None)
    if last is not None and "サ変可能" in tags[last] and (not units or units[-1][0] < last):
        units.append((last, morphemes[last].surface() + "する"))
    return units


def _particle_before(surfaces: Sequence[str], tags: Sequence[Sequence[str]],
                     end: int) -> int | None:
    """Index of the nearest object marker を before `end`, if a noun precedes it."""
    for i in range(end - 1, 0, -1):
        if surfaces[i] == "を" and tags[i][0] == "助詞":
            return i if tags[i - 1][0] in ("名詞", "接尾辞") else None
    return None


def _compound_start(tags: Sequence[Sequence[str]], end: int) -> int:
    """Where the compound noun ending just before `end` starts (numbers are not part of it)."""
    begin = end
    while begin > 0 and tags[begin - 1][0] in ("名詞", "接頭辞", "接尾辞") and \
            tags[begin - 1][1] != "数詞":
        begin -= 1
    return begin


# --------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class Chart:
    """One PNG of the report: file name, heading, one-line reading aid, and the bytes.

    `wide` charts take the page's full width; the others pair up side by side.
    """

    name: str
    title: str
    caption: str
    png: bytes
    wide: bool = False


@cache
def _font_families() -> tuple[str, ...]:
    """DejaVu Sans for Latin text, then IPAexGothic (from the matplotlib-fontja wheel) for
    the Japanese glyphs DejaVu lacks; matplotlib falls back per glyph along the list."""
    from matplotlib import font_manager

    spec = importlib.util.find_spec("matplotlib_fontja")  # the path, without its import hook
    if spec is None or not spec.submodule_search_locations:
        return ("DejaVu Sans",)
    font = Path(spec.submodule_search_locations[0]) / "fonts" / "ipaexg.ttf"
    font_manager.fontManager.addfont(str(font))
    return ("DejaVu Sans", font_manager.FontProperties(fname=str(font)).get_name())


def _render(width: float, height: float, draw: Callable[[Any], None]) -> bytes:
    """Draw on a new figure and return it as PNG bytes (no pyplot, no global backend)."""
    import matplotlib
    from matplotlib.figure import Figure

    style = {"font.family": list(_font_families()), "font.size": 10, "axes.spines.top": False,
             "axes.spines.right": False, "axes.titlesize": 12}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _funnel_rows(funnel: dict[str, Any]) -> list[tuple[str, str, int, int, dict[str, int]]]:
    names = [n for n in FUNNEL_STAGES if n in funnel] + [n for n in funnel
                                                        if n not in FUNNEL_STAGES]
    return [(n, FUNNEL_STAGES.get(n, "items"), int(funnel[n].get("in", 0)),
             int(funnel[n].get("kept", 0)), dict(funnel[n].get("drops") or {})) for n in names]


def _funnel_chart(stats: Stats) -> Chart | None:
    rows = _funnel_rows(stats.manifest.get("funnel") or {})
    if not rows:
        return None

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        y = list(range(len(rows)))[::-1]
        largest = max(r[2] for r in rows) or 1
        ax.barh(y, [r[2] for r in rows], color=_DROPPED, height=0.6, label="dropped")
        ax.barh(y, [r[3] for r in rows], color=_KEPT, height=0.6, label="kept")
        for pos, (_, _, seen, kept, drops) in zip(y, rows, strict=True):
            top = sorted(drops.items(), key=lambda d: (-d[1], d[0]))[:2]
            why = "; ".join(f"{reason} {count:,}" for reason, count in top)
            ax.text(seen + largest * 0.02, pos, f"{kept:,}/{seen:,} kept" + (f" — {why}" if why
                    else ""), va="center", fontsize=8.5)
        ax.set_yticks(y, [f"{name} ({unit})" for name, unit, *_ in rows])
        ax.set_xlim(0, largest * 2.1)
        ax.set_xlabel("count")
        ax.legend(loc="lower right", frameon=False)
        ax.set_title("What each stage kept, in pipeline order")

    return Chart("funnel.png", "Funnel", "Each bar is one stage: green kept, red dropped, with "
                 "the top drop reasons. Units differ by stage (instructions, tasks, instances).",
                 _render(9, 0.45 * len(rows) + 1.4, draw), wide=True)


def _similarity_chart(stats: Stats) -> Chart | None:
    if not stats.nearest:
        return None
    threshold = (stats.manifest.get("config") or {}).get("similarity_threshold")

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        bins = [i / 20 for i in range(21)]
        counts, _, _ = ax.hist(stats.nearest, bins=bins, color=_SHADES[0], alpha=0.85,
                               label="vs other kept")
        tallest = max(counts)
        if stats.at_acceptance:
            at, _, _ = ax.hist(stats.at_acceptance, bins=bins, histtype="step", linewidth=2,
                               color=_SHADES[3], label="at acceptance")
            tallest = max(tallest, max(at))
        if isinstance(threshold, int | float):
            ax.axvline(threshold, color=_DROPPED, linestyle="--",
                       label=f"threshold {threshold:g}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, tallest * 1.45)  # room for the legend above the bars
        ax.set_xlabel("ROUGE-L F to the most similar instruction")
        ax.set_ylabel("instructions")
        ax.legend(frameon=False, fontsize=8.5, loc="upper right", ncols=3,
                  columnspacing=1, handlelength=1.5)
        ax.set_title(f"Similarity to the nearest neighbour (median {median(stats.nearest):.2f})")

    return Chart("similarity.png", "Diversity: ROUGE-L to the nearest neighbour",
                 "As in the Self-Instruct paper. Filled: each kept instruction against the "
                 "others; outline: at acceptance, against the seeds and the pool so far. Mass "
                 "on the left means varied instructions; a pile-up at the threshold means "
                 "near-duplicates were only just kept.",
                 _render(6, 3.6, draw))


def _lengths_chart(stats: Stats) -> Chart | None:
    if not stats.rows:
        return None
    unit = stats.unit
    inputs = [row["input"] for row in stats.rows]
    series = [
        ("instruction", [text_length(t, unit) for t in stats.instructions]),
        ("input", [text_length(t, unit) for t in inputs if t.strip()]),
        ("output", [text_length(row["output"], unit) for row in stats.rows]),
    ]
    empty = sum(1 for t in inputs if not t.strip()) / len(inputs)

    def draw(figure: Any) -> None:
        axes = figure.subplots(1, 3)
        for ax, (name, values), colour in zip(axes, series, _SHADES, strict=False):
            title = name + (f" ({empty:.0%} empty)" if name == "input" else "")
            ax.set_title(title)
            ax.set_xlabel(stats.unit_label)
            if not values:
                ax.text(0.5, 0.5, "none", ha="center", transform=ax.transAxes)
                continue
            ax.hist(values, bins=min(30, max(5, len(set(values)))), color=colour)
            middle = median(values)
            ax.axvline(middle, color="black", linestyle=":", linewidth=1)
            ax.text(0.97, 0.93, f"median {middle:g}", ha="right", transform=ax.transAxes,
                    fontsize=8.5)
        axes[0].set_ylabel("count")

    return Chart("lengths.png", "Lengths",
                 f"In {stats.unit_label}: instructions counted once per task, inputs only "
                 "when present, outputs per row.", _render(10, 3.1, draw), wide=True)


def _task_types_chart(stats: Stats) -> Chart | None:
    if not stats.task_types:
        return None
    order = [k for k in ("classification", "generation", "not labelled") if stats.task_types[k]]
    colours = {"classification": _SHADES[3], "generation": _SHADES[0],
               "not labelled": _SHADES[4]}

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        total = sum(stats.task_types.values())
        ax.pie([stats.task_types[k] for k in order], colors=[colours[k] for k in order],
               labels=[f"{k}\n{stats.task_types[k]:,} ({stats.task_types[k] / total:.0%})"
                       for k in order], startangle=90, counterclock=False,
               wedgeprops={"width": 0.42, "edgecolor": "white"})
        ax.set_title("Task types")
        ax.set_aspect("equal")

    return Chart("task_types.png", "Classification share",
                 "Tasks (not rows) by type. Self-Instruct's seeds are ~15% classification; "
                 "Alpaca-style runs do not label tasks.", _render(4.6, 3.4, draw))


def _verbs_chart(stats: Stats) -> Chart | None:
    table = verb_table(stats.verbs)
    if not table:
        return None

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        y = list(range(len(table)))[::-1]
        for pos, (_, count, objects) in zip(y, table, strict=True):
            left = 0
            for rank, (obj, n) in enumerate(objects[:4]):
                ax.barh(pos, n, left=left, color=_SHADES[rank], height=0.7,
                        edgecolor="white")
                if n / table[0][1] > 0.06:
                    ax.text(left + n / 2, pos, obj, ha="center", va="center", fontsize=7.5,
                            color="white" if rank < 2 else "black", clip_on=True)
                left += n
            ax.barh(pos, count - left, left=left, color=_SHADES[4], height=0.7,
                    edgecolor="white")
        ax.set_yticks(y, [verb for verb, _, _ in table])
        ax.set_xlabel("instructions (segments: the verb's most common objects; grey: others)")
        ax.set_title(f"Top {len(table)} leading verbs and their objects")

    covered = sum(1 for verb, _ in stats.verbs if verb)
    return Chart("verbs.png", "Leading verbs and objects",
                 f"{covered:,} of {len(stats.verbs):,} instructions start with a verb "
                 f"({len({v for v, _ in stats.verbs if v}):,} distinct verbs); the rest are "
                 "questions or statements.", _render(9, 0.32 * len(table) + 1.3, draw),
                 wide=True)


def verb_table(
    verbs: Sequence[tuple[str | None, str | None]], top: int = TOP_VERBS
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


def _judge_chart(stats: Stats) -> Chart | None:
    if not stats.judged:
        return None

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        scores = range(1, 6)
        for offset, (label, values, colour) in enumerate((
            ("clarity", [c for c, _ in stats.judged], _SHADES[0]),
            ("correctness", [c for _, c in stats.judged], _SHADES[3]),
        )):
            counts = Counter(values)
            ax.bar([s + (offset - 0.5) * 0.38 for s in scores], [counts[s] for s in scores],
                   width=0.38, color=colour, label=f"{label} (mean {mean(values):.2f})")
        ax.set_xticks(list(scores))
        ax.set_xlabel("score (1 poor – 5 excellent)")
        ax.set_ylabel("rows")
        ax.legend(frameon=False)
        ax.set_title("LLM judge scores of the kept rows")

    return Chart("judge.png", "Judge scores", "Rows below the threshold were dropped (see the "
                 "funnel); these are the scores of the rows that were kept.",
                 _render(6, 3.2, draw))


# Page order: the two half-width charts sit side by side between the wide ones.
CHART_BUILDERS: tuple[Callable[[Stats], Chart | None], ...] = (
    _funnel_chart, _similarity_chart, _task_types_chart, _lengths_chart, _verbs_chart,
    _judge_chart,
)


# --------------------------------------------------------------------------- the page


def _snippet(text: str | None, limit: int = 220) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rejections(rejected: Sequence[dict[str, Any]], examples: int = 2) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rejected:
        groups.setdefault((row.get("stage", "?"), row.get("reason", "?")), []).append(row)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    total = len(rejected) or 1
    return [{"stage": stage, "reason": reason, "count": len(rows), "share": len(rows) / total,
             "examples": [{"instruction": _snippet(r.get("instruction")),
                           "output": _snippet(r.get("output"), 140),
                           "detail": _snippet(r.get("detail"), 160)} for r in rows[:examples]]}
            for (stage, reason), rows in ranked]


def _sample(rows: Sequence[dict[str, Any]], size: int = SAMPLE_ROWS) -> list[dict[str, Any]]:
    """Evenly spaced rows: early and late rounds both show, and the pick is deterministic."""
    step = max(1, len(rows) / size)
    picked = [rows[int(i * step)] for i in range(min(size, len(rows)))]
    return [{"id": r["id"], "instruction": r["instruction"], "input": r["input"],
             "output": r["output"],
             "type": {True: "cls", False: "gen"}.get(r.get("is_classification"), "—"),
             "judge": _judge_cell(r.get("provenance") or {})} for r in picked]


def _judge_cell(provenance: dict[str, Any]) -> str:
    clarity, correctness = provenance.get("judge_clarity"), provenance.get("judge_correctness")
    return "—" if clarity is None or correctness is None else f"{clarity}/{correctness}"


def _kpis(stats: Stats) -> list[tuple[str, str]]:
    m = stats.manifest
    counts = m.get("counts") or {}
    funnel = m.get("funnel") or {}
    candidates = (funnel.get("parse") or {}).get("in")
    tiles = [
        ("train rows", f"{len(stats.rows):,}"),
        ("tasks", f"{len(stats.instructions):,}"),
        ("rejected candidates", f"{counts.get('rejected', len(stats.rejected)):,}"),
    ]
    if candidates:
        tiles.append(("of candidate instructions became tasks",
                      f"{len(stats.instructions) / candidates:.0%} of {candidates:,}"))
    if stats.nearest:
        tiles.append(("median nearest ROUGE-L", f"{median(stats.nearest):.2f}"))
    verbs = {v for v, _ in stats.verbs if v}
    tiles.append(("distinct leading verbs", f"{len(verbs):,}"))
    masked = sum(1 for r in stats.rows
                 if any(tok in f"{r['instruction']} {r['input']} {r['output']}"
                        for tok in MASK_TOKENS))
    if masked:
        tiles.append(("rows with masked personal data", f"{masked:,}"))
    if stats.judged:
        tiles.append(("judge clarity / correctness",
                      f"{mean(c for c, _ in stats.judged):.1f} / "
                      f"{mean(c for _, c in stats.judged):.1f}"))
    return tiles


_PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """<!DOCTYPE html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ m.name }} {{ m.version }} — dataset report</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK JP",sans-serif;
margin:0;color:#1d2731;background:#f6f7f8}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{margin:36px 0 10px;font-size:20px}
.sub{color:#5b6670;margin-bottom:18px}.demo{background:#fff3cd;border:1px solid #e9c46a;
padding:10px 14px;border-radius:6px;margin:12px 0}
nav a{margin-right:14px;color:#264653}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
.tile b{display:block;font-size:22px;color:#264653}.tile span{color:#5b6670;font-size:13px}
figure{background:#fff;border-radius:8px;padding:12px;margin:12px 0;box-shadow:0 1px 2px #0002}
figure img{max-width:100%;height:auto;display:block}figcaption{color:#5b6670;font-size:13px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}.charts figure{margin:0}
.charts figure.wide{grid-column:1/-1}@media(max-width:900px){.charts{display:block}}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13.5px}
th,td{border-bottom:1px solid #e4e4e4;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f3;position:sticky;top:0}td.n{text-align:right;white-space:nowrap}
td pre{white-space:pre-wrap;margin:0;font:inherit}.muted{color:#5b6670}
input[type=search]{width:100%;max-width:520px;padding:8px 10px;font-size:15px;
border:1px solid #bbb;border-radius:6px;margin-bottom:8px}
.scroll{max-height:720px;overflow:auto;border-radius:8px;box-shadow:0 1px 2px #0002}
</style>
</head>
<body>
<main>
<h1>{{ m.name }} {{ m.version }}</h1>
<div class="sub">{{ m.recipe }} recipe · {{ language_name }} · model {{ m.model }} ·
created {{ m.created_at }} · selfinstruct {{ m.package_version }}</div>
{% if m.demo_quality %}
<div class="demo"><b>Demo quality.</b> Generated by the embedded 135M-parameter demo model:
it exercises the pipeline, it is not fit for training.</div>
{% endif %}
<nav><a href="#charts">Charts</a><a href="#verbs">Verbs</a><a href="#pairs">Similar pairs</a>
<a href="#rejections">Rejections</a><a href="#rows">Rows</a></nav>
<h2>At a glance</h2>
<div class="tiles">
{% for label, value in kpis %}
<div class="tile"><b>{{ value }}</b><span>{{ label }}</span></div>
{% endfor %}
</div>
<h2 id="charts">Charts</h2>
<div class="charts">
{% for chart in charts %}
<figure class="{{ 'wide' if chart.wide else 'half' }}">
<img src="data:image/png;base64,{{ chart.data }}" alt="{{ chart.title }}"
width="{{ chart.width }}" height="{{ chart.height }}">
<figcaption><b>{{ chart.title }}.</b> {{ chart.caption }}</figcaption></figure>
{% endfor %}
</div>
<h2 id="verbs">Leading verbs and their objects</h2>
{% if verbs %}
<table><thead><tr><th>verb</th><th>instructions</th><th>most common objects</th></tr></thead>
<tbody>
{% for verb, count, objects in verbs %}
<tr><td>{{ verb }}</td><td class="n">{{ count }}</td>
<td>{% for obj, n in objects[:6] %}{{ obj }} ({{ n }}){{ ", " if not loop.last }}{% endfor %}
</td></tr>
{% endfor %}
</tbody></table>
{% else %}<p class="muted">No instruction starts with a verb.</p>{% endif %}
<h2 id="pairs">The {{ pairs|length }} most similar accepted pairs</h2>
<p class="muted">ROUGE-L F between kept instructions: pairs near the novelty threshold are
near-duplicates the filter let through.</p>
<table><thead><tr><th>ROUGE-L</th><th>instruction</th><th>instruction</th></tr></thead><tbody>
{% for score, a, b in pairs %}
<tr><td class="n">{{ "%.3f"|format(score) }}</td><td>{{ a }}</td><td>{{ b }}</td></tr>
{% endfor %}
</tbody></table>
<h2 id="rejections">Why candidates were dropped</h2>
<table><thead><tr><th>stage</th><th>reason</th><th>count</th><th>share</th><th>examples</th>
</tr></thead><tbody>
{% for r in rejections %}
<tr><td>{{ r.stage }}</td><td><b>{{ r.reason }}</b></td><td class="n">{{ r.count }}</td>
<td class="n">{{ "%.0f"|format(r.share * 100) }}%</td><td>
{% for e in r.examples %}
<div>{{ e.instruction or "(no instruction)" }}{% if e.output %}
<span class="muted"> → {{ e.output }}</span>{% endif %}{% if e.detail %}
<span class="muted"> [{{ e.detail }}]</span>{% endif %}</div>
{% endfor %}
</td></tr>
{% endfor %}
</tbody></table>
<h2 id="rows">Rows: a sample of {{ sample|length }} of {{ total_rows }}</h2>
<input type="search" id="search" placeholder="Filter rows: type any word (or open ?q=word)"
aria-label="Filter rows"> <span class="muted"><span id="shown">{{ sample|length }}</span>
shown</span>
<div class="scroll"><table id="sample"><thead><tr><th>id</th><th>type</th>
<th>judge</th><th>instruction</th><th>input</th><th>output</th></tr></thead><tbody>
{% for r in sample %}
<tr><td class="n">{{ r.id }}</td><td>{{ r.type }}</td><td>{{ r.judge }}</td>
<td><pre>{{ r.instruction }}</pre></td><td><pre>{{ r.input }}</pre></td>
<td><pre>{{ r.output }}</pre></td></tr>
{% endfor %}
</tbody></table></div>
<p class="muted">Made by selfinstruct {{ generator_version }} from train.jsonl, rejected.jsonl
and manifest.json of this version.</p>
</main>
<script>
(function () {
  var box = document.getElementById("search");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#sample tbody tr"));
  function filter() {
    var q = box.value.trim().toLowerCase(), shown = 0;
    rows.forEach(function (tr) {
      var hit = !q || tr.textContent.toLowerCase().indexOf(q) >= 0;
      tr.hidden = !hit;
      if (hit) { shown += 1; }
    });
    document.getElementById("shown").textContent = shown;
  }
  box.addEventListener("input", filter);
  // report.html?q=word opens already filtered: a link can point at the rows it means.
  var asked = new URLSearchParams(window.location.search).get("q");
  if (asked) { box.value = asked; filter(); }
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var drawn = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
    document.body.setAttribute("data-images", drawn.length + "/" + images.length);
  });
})();
</script>
</body>
</html>
"""
)


def render_html(stats: Stats, charts: Sequence[Chart]) -> str:
    """The self-contained page: charts inlined as data URIs, all text escaped."""
    inline = []
    for chart in charts:
        width, height = struct.unpack(">II", chart.png[16:24])  # the PNG's IHDR chunk
        inline.append({"title": chart.title, "caption": chart.caption, "wide": chart.wide,
                       "width": width,
                       "height": height, "data": base64.b64encode(chart.png).decode("ascii")})
    m = stats.manifest
    return _PAGE.render(
        m=m, language=stats.language,
        language_name={"ja": "Japanese", "en": "English"}[stats.language],
        kpis=_kpis(stats), charts=inline, verbs=verb_table(stats.verbs),
        pairs=stats.top_pairs, rejections=_rejections(stats.rejected),
        sample=_sample(stats.rows), total_rows=f"{len(stats.rows):,}",
        generator_version=__version__,
    )


# --------------------------------------------------------------------------- writing


def write_report(folder: Path, manifest: dict[str, Any], target: Path) -> list[Path]:
    """Build the report of the version in `folder` into `target`; return the files, page
    first. Charts with nothing to show (no judge, no rows) are left out."""
    stats = collect(folder, manifest)
    charts = [chart for build in CHART_BUILDERS if (chart := build(stats)) is not None]
    target.mkdir(parents=True, exist_ok=True)
    page = target / HTML_FILE
    page.write_text(render_html(stats, charts), encoding="utf-8")
    written = [page]
    for chart in charts:
        (target / chart.name).write_bytes(chart.png)
        written.append(target / chart.name)
    return written


def write_into_version(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """`dataset.write_version`'s ``extra_files`` hook: the report inside the new version.

    Returns the files as folder-relative paths for the manifest. A report that fails must not
    cost the user the dataset their requests paid for: the version is then written without
    it, with a warning naming the command that builds it later.
    """
    target = folder / REPORT_DIR
    try:
        return [path.relative_to(folder).as_posix()
                for path in write_report(folder, manifest, target)]
    except Exception as exc:  # any bug in a chart; the rows are already safe
        shutil.rmtree(target, ignore_errors=True)
        print(f"selfinstruct: warning: no report in this version ({type(exc).__name__}: "
              f"{exc}); build one with `selfinstruct report PATH`", file=sys.stderr)
        return []


def default_output(version_folder: Path) -> Path:
    """``data/<name>/reports/<version>/``: beside the versions, never inside one."""
    return version_folder.parent / "reports" / version_folder.name


def build_report(path: str | Path, output: str | Path | None = None) -> Path:
    """Write a fresh report of an existing version; return the page's path.

    `path` is anything `resolve_version` accepts (``data/<name>/latest``). The version
    folder itself is never written to.
    """
    folder = resolve_version(path)
    manifest = read_manifest(folder)
    target = Path(output) if output is not None else default_output(folder)
    if target.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"--output {target}: inside the version folder {folder}; versions "
                         "are immutable, choose another folder")
    try:
        return write_report(folder, manifest, target)[0]
    except OSError as exc:
        raise InputError(f"{target}: cannot write the report: {exc.strerror or exc}") from None

