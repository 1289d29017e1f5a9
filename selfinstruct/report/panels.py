"""The report's recipe and feature panels, drawn from the manifest's sections.

Each recipe or check answers its own question, and the panel shows the answer: evol-instruct —
how deep did the evolution go and by which mutations; personas — did many personas make it
into the data or a handful; multi-turn — how many conversations kept all their turns and where
the others were dropped; confidence — where the answers' confidence lies and what the
threshold cut; verifiers — how often each agreed; preference pairs — how many prompts gave
a pair, a tie, or no verdict. The numbers are
`selfinstruct.manifest_sections`' (and the features' summaries), never recomputed here; a
version without a section has no panel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfinstruct.report.charts import DROPPED, KEPT, SHADES, Chart, render
from selfinstruct.report.stats import Stats


def _bars(ax: Any, labels: list[str], values: list[int], colour: str) -> None:
    ax.bar(range(len(values)), values, color=colour)
    ax.set_xticks(range(len(values)), labels, rotation=30 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center")
    for x, value in enumerate(values):
        ax.text(x, value, f"{value:,}", ha="center", va="bottom", fontsize=8)


def lineage_chart(stats: Stats) -> Chart | None:
    lineage = stats.manifest.get("lineage")
    if not lineage or not lineage.get("by_generation"):
        return None
    depths = lineage["by_generation"]
    mutations = lineage.get("by_mutation") or {}

    def draw(figure: Any) -> None:
        left, right = figure.subplots(1, 2)
        _bars(left, [str(d) for d in depths], list(depths.values()), SHADES[0])
        left.set_xlabel("generation (evolution steps from a seed)")
        left.set_ylabel("instructions")
        left.set_title("Lineage depth")
        _bars(right, list(mutations), list(mutations.values()), SHADES[3])
        right.set_title("Mutations of the kept instructions")

    return Chart("lineage.png", "Evol-Instruct lineage",
                 f"Kept instructions by how many evolution steps separate them from their seed "
                 f"(at most {lineage.get('max_depth', '?')}) and by the mutation that made them.",
                 render(10, 3.2, draw), wide=True)


def persona_chart(stats: Stats) -> Chart | None:
    spread = stats.manifest.get("personas")
    if not spread or not spread.get("top"):
        return None
    top = spread["top"]

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        y = list(range(len(top)))[::-1]
        ax.barh(y, [n for _, n in top], color=SHADES[1])
        ax.set_yticks(y, [str(p) for p, _ in top])
        ax.set_xlabel("instructions")
        ax.set_title(f"Most used of {spread['personas_used']:,} personas")

    available = spread.get("personas_available")
    return Chart("personas.png", "Persona spread",
                 f"{spread['instructions']:,} instructions came from "
                 f"{spread['personas_used']:,} personas"
                 f"{f' of {available:,} available' if available else ''}; the most used one "
                 f"made {spread['max_share']:.1%} of them.",
                 render(6, 0.3 * len(top) + 1.3, draw))


def turns_chart(stats: Stats) -> Chart | None:
    turns = stats.manifest.get("turns")
    if not turns or not turns.get("by_user_turns"):
        return None
    by_turns = turns["by_user_turns"]
    dropped = turns.get("dropped_by_turn") or {}

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        _bars(ax, [f"{n} turns" for n in by_turns], list(by_turns.values()), SHADES[0])
        ax.set_ylabel("conversations")
        ax.set_title("User turns per conversation")

    drops = ", ".join(f"{turn} {n}" for turn, n in dropped.items()) or "none"
    return Chart("turns.png", "Turns per conversation",
                 f"{turns['conversations']:,} conversations kept; dropped at: {drops}.",
                 render(5, 3.2, draw))


def confidence_chart(stats: Stats) -> Chart | None:
    summary = stats.manifest.get("confidence")
    if not summary or summary.get("status") == "unavailable" or not summary.get("bins"):
        return None
    bins = summary["bins"]
    threshold = summary.get("threshold")

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        lows = [b["low"] for b in bins]
        width = bins[0]["high"] - bins[0]["low"]
        kept = [b["kept"] for b in bins]
        ax.bar(lows, kept, width=width, align="edge", color=KEPT, label="kept")
        ax.bar(lows, [b["dropped"] for b in bins], width=width, align="edge", bottom=kept,
               color=DROPPED, label="dropped (low_confidence)")
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", label=f"min {threshold}")
        ax.set_xlabel("confidence (geometric-mean token probability)")
        ax.set_ylabel("rows")
        ax.legend(frameon=False)
        ax.set_title("Answer confidence")

    partial = summary["status"] == "partial"
    return Chart("confidence.png", "Confidence from log-probabilities",
                 f"{summary['rows_scored']:,} rows scored (median {summary.get('median')}), "
                 f"{summary['dropped']:,} dropped below the threshold"
                 f"{'; some answers came without log-probs' if partial else ''}.",
                 render(6, 3.2, draw))


def agreement_chart(stats: Stats) -> Chart | None:
    summary = stats.manifest.get("agreement")
    rates = (summary or {}).get("verifiers")  # label -> {kind, checked, agreed, rate, …}
    if not rates:
        return None
    names = [label if entry.get("kind") != "same-model" else f"{label}\n(same model)"
             for label, entry in rates.items()]
    values = [float(entry.get("rate") or 0.0) for entry in rates.values()]

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.bar(range(len(values)), values, color=SHADES[1])
        ax.set_xticks(range(len(values)), names)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of answers agreed")
        ax.set_title("Verifier agreement")

    return Chart("agreement.png", "Verifier agreement",
                 "How often each verifier's independent answer agreed with the generator's "
                 "(exact labels, numbers, or the judge's same-answer verdict).",
                 render(5, 3.2, draw))


def preference_chart(stats: Stats) -> Chart | None:
    summary = stats.manifest.get("preference")
    if not summary or not summary.get("prompts"):
        return None
    parts = [("pairs", int(summary.get("pairs") or 0), KEPT),
             ("ties", int(summary.get("ties") or 0), SHADES[3]),
             ("unjudged", int(summary.get("unjudged") or 0), DROPPED)]

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        _bars(ax, [name for name, _, _ in parts], [n for _, n, _ in parts], SHADES[0])
        for patch, (_, _, colour) in zip(ax.patches, parts, strict=True):
            patch.set_color(colour)
        ax.set_ylabel("prompts")
        ax.set_title(f"Preference pairs from {summary['prompts']:,} prompts")

    models = ", ".join(f"{s['model']} @ {s['temperature']}" for s in summary.get("slots", []))
    return Chart("preference.png", "Preference pairs",
                 f"{summary.get('responses', '?')} responses per prompt ({models}), judged "
                 f"pairwise in both orders by {summary.get('judge_model', '?')}; a tie or an "
                 f"unjudged prompt gives no pair.", render(5, 3.2, draw))


PANEL_BUILDERS: tuple[Callable[[Stats], Chart | None], ...] = (
    lineage_chart, persona_chart, turns_chart, confidence_chart, agreement_chart,
    preference_chart,
)
