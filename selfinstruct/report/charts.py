"""The report's charts: one PNG each, drawn from `Stats`.

Drawn with matplotlib's object API (no pyplot state, no GUI backend), imported only when a
report is built. Japanese glyphs come from the bundled IPAexGothic (`fonts`), as a fallback
after DejaVu Sans, so nothing depends on system fonts.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from statistics import mean, median
from typing import Any

from selfinstruct.filters import text_length
from selfinstruct.records import funnel_rows
from selfinstruct.report.fonts import bundled_cjk_font
from selfinstruct.report.stats import Stats, verb_table

KEPT, DROPPED = "#2a9d8f", "#e76f51"
SHADES = ("#264653", "#2a9d8f", "#8ab17d", "#e9c46a", "#d0d0d0")
_DPI = 100


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
    """DejaVu Sans for Latin text, then IPAexGothic for the Japanese glyphs DejaVu lacks;
    matplotlib falls back per glyph along the list."""
    from matplotlib import font_manager

    font = bundled_cjk_font()
    if font is None:
        return ("DejaVu Sans",)
    font_manager.fontManager.addfont(str(font))
    return ("DejaVu Sans", font_manager.FontProperties(fname=str(font)).get_name())


def render(width: float, height: float, draw: Callable[[Any], None]) -> bytes:
    """Draw on a new figure and return it as PNG bytes (no pyplot, no global backend)."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.family": list(_font_families()), "font.size": 10,
                                "axes.spines.top": False, "axes.spines.right": False,
                                "axes.titlesize": 12}):
        figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _funnel_chart(stats: Stats) -> Chart | None:
    rows = funnel_rows(stats.manifest.get("funnel") or {})
    if not rows:
        return None

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        y = list(range(len(rows)))[::-1]
        largest = max(row.seen for row in rows) or 1
        ax.barh(y, [row.seen for row in rows], color=DROPPED, height=0.6, label="dropped")
        ax.barh(y, [row.kept for row in rows], color=KEPT, height=0.6, label="kept")
        for pos, row in zip(y, rows, strict=True):
            why = "; ".join(f"{reason} {count:,}" for reason, count in row.drops[:2])
            ax.text(row.seen + largest * 0.02, pos, f"{row.kept:,}/{row.seen:,} kept"
                    + (f" — {why}" if why else ""), va="center", fontsize=8.5)
        ax.set_yticks(y, [row.label for row in rows])
        ax.set_xlim(0, largest * 2.1)
        ax.set_xlabel("count")
        ax.legend(loc="lower right", frameon=False)
        ax.set_title("What each stage kept, in pipeline order")

    return Chart("funnel.png", "Funnel", "Each bar is one stage: green kept, red dropped, with "
                 "the top drop reasons. Units differ by stage (instructions, tasks, instances).",
                 render(9, 0.45 * len(rows) + 1.4, draw), wide=True)


def _similarity_chart(stats: Stats) -> Chart | None:
    if not stats.nearest:
        return None
    threshold = (stats.manifest.get("config") or {}).get("similarity_threshold")

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        bins = [i / 20 for i in range(21)]
        counts, _, _ = ax.hist(stats.nearest, bins=bins, color=SHADES[0], alpha=0.85,
                               label="vs other kept")
        tallest = max(counts)
        if stats.at_acceptance:
            at, _, _ = ax.hist(stats.at_acceptance, bins=bins, histtype="step", linewidth=2,
                               color=SHADES[3], label="at acceptance")
            tallest = max(tallest, max(at))
        if isinstance(threshold, int | float):
            ax.axvline(threshold, color=DROPPED, linestyle="--",
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
                 render(6, 3.6, draw))


def _lengths_chart(stats: Stats) -> Chart | None:
    if not stats.row_count:
        return None
    lengths = stats.lengths
    series = [
        ("instruction", [text_length(t, stats.unit) for t in stats.instructions]),
        ("input", lengths.inputs),
        ("output", lengths.outputs),
    ]
    empty = lengths.empty_inputs / stats.row_count

    def draw(figure: Any) -> None:
        axes = figure.subplots(1, 3)
        for ax, (name, values), colour in zip(axes, series, SHADES, strict=False):
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
                 "when present, outputs per row.", render(10, 3.1, draw), wide=True)


def _task_types_chart(stats: Stats) -> Chart | None:
    if not stats.task_types:
        return None
    order = [k for k in ("classification", "generation", "not labelled") if stats.task_types[k]]
    colours = {"classification": SHADES[3], "generation": SHADES[0],
               "not labelled": SHADES[4]}

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
                 "Alpaca-style runs do not label tasks.", render(4.6, 3.4, draw))


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
                ax.barh(pos, n, left=left, color=SHADES[rank], height=0.7,
                        edgecolor="white")
                if n / table[0][1] > 0.06:
                    ax.text(left + n / 2, pos, obj, ha="center", va="center", fontsize=7.5,
                            color="white" if rank < 2 else "black", clip_on=True)
                left += n
            ax.barh(pos, count - left, left=left, color=SHADES[4], height=0.7,
                    edgecolor="white")
        ax.set_yticks(y, [verb for verb, _, _ in table])
        ax.set_xlabel("instructions (segments: the verb's most common objects; grey: others)")
        ax.set_title(f"Top {len(table)} leading verbs and their objects")

    covered = sum(1 for verb, _ in stats.verbs if verb)
    return Chart("verbs.png", "Leading verbs and objects",
                 f"{covered:,} of {len(stats.verbs):,} instructions start with a verb "
                 f"({len({v for v, _ in stats.verbs if v}):,} distinct verbs); the rest are "
                 "questions or statements.", render(9, 0.32 * len(table) + 1.3, draw),
                 wide=True)


def _judge_chart(stats: Stats) -> Chart | None:
    if not stats.judged:
        return None

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        scores = range(1, 6)
        for offset, (label, values, colour) in enumerate((
            ("clarity", [c for c, _ in stats.judged], SHADES[0]),
            ("correctness", [c for _, c in stats.judged], SHADES[3]),
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
                 render(6, 3.2, draw))


# Page order: the two half-width charts sit side by side between the wide ones.
CHART_BUILDERS: tuple[Callable[[Stats], Chart | None], ...] = (
    _funnel_chart, _similarity_chart, _task_types_chart, _lengths_chart, _verbs_chart,
    _judge_chart,
)

