"""The report page: one self-contained HTML file laid out by ``report.html.j2``.

Self-contained means it opens offline and can be mailed around: CSS, a few lines of JS, the
charts as data URIs, and the glyphs of the bundled Japanese font its text uses (`fonts`), so
Japanese reads on a machine without a CJK font too. The embedded font comes after the
system's fonts in the CSS: a machine that has fonts for the text keeps using them.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from functools import cache
from importlib import resources
from statistics import mean, median
from typing import Any

import jinja2

from selfinstruct import __version__
from selfinstruct.records import funnel_rows
from selfinstruct.report.charts import Chart
from selfinstruct.report.fonts import embedded_subset
from selfinstruct.report.stats import Stats, task_type, verb_table

_TYPE_CELLS = {"classification": "cls", "generation": "gen", "not labelled": "—"}


def _snippet(text: str | None, limit: int = 220) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rejections(stats: Stats) -> list[dict[str, Any]]:
    total = stats.rejected_count or 1
    return [{"stage": group.stage, "reason": group.reason, "count": group.count,
             "share": group.count / total,
             "examples": [{"instruction": _snippet(r["instruction"]),
                           "output": _snippet(r["output"], 140),
                           "detail": _snippet(r["detail"], 160)} for r in group.examples]}
            for group in stats.rejections]


def _sample(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "instruction": r["instruction"], "input": r["input"],
             "output": r["output"],
             "type": _TYPE_CELLS[task_type(r)],
             "judge": _judge_cell(r.get("provenance") or {})} for r in rows]


def _judge_cell(provenance: dict[str, Any]) -> str:
    clarity, correctness = provenance.get("judge_clarity"), provenance.get("judge_correctness")
    return "—" if clarity is None or correctness is None else f"{clarity}/{correctness}"


def _kpis(stats: Stats) -> list[tuple[str, str]]:
    m = stats.manifest
    counts = m.get("counts") or {}
    funnel = m.get("funnel") or {}
    candidates = (funnel.get("parse") or {}).get("in")
    tiles = [
        ("train rows", f"{stats.row_count:,}"),
        ("tasks", f"{len(stats.instructions):,}"),
        ("rejected candidates", f"{counts.get('rejected', stats.rejected_count):,}"),
    ]
    if candidates:
        tiles.append(("of candidate instructions became tasks",
                      f"{len(stats.instructions) / candidates:.0%} of {candidates:,}"))
    if stats.nearest:
        tiles.append(("median nearest ROUGE-L", f"{median(stats.nearest):.2f}"))
    verbs = {v for v, _ in stats.verbs if v}
    tiles.append(("distinct leading verbs", f"{len(verbs):,}"))
    if stats.masked:
        tiles.append(("rows with masked personal data", f"{stats.masked:,}"))
    if stats.judged:
        tiles.append(("judge clarity / correctness",
                      f"{mean(c for c, _ in stats.judged):.1f} / "
                      f"{mean(c for _, c in stats.judged):.1f}"))
    return tiles


@cache
def _template() -> jinja2.Template:
    """Read from the package (a file, as templates are elsewhere), so a wheel finds it too."""
    source = resources.files(__package__).joinpath("report.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(source)


def render_html(stats: Stats, charts: Sequence[Chart]) -> str:
    """The self-contained page: charts inlined as data URIs, all text escaped, and the font
    subset for exactly the characters of the page (rendered once without it to learn them)."""
    inline = []
    for chart in charts:
        width, height = struct.unpack(">II", chart.png[16:24])  # the PNG's IHDR chunk
        inline.append({"title": chart.title, "caption": chart.caption, "wide": chart.wide,
                       "width": width,
                       "height": height, "data": base64.b64encode(chart.png).decode("ascii")})
    m = stats.manifest
    context = {
        "m": m, "language": stats.language,
        "language_name": stats.profile.name,
        "kpis": _kpis(stats), "charts": inline, "funnel": funnel_rows(m.get("funnel") or {}),
        "verbs": verb_table(stats.verbs),
        "pairs": stats.top_pairs, "rejections": _rejections(stats),
        "sample": _sample(stats.sample), "total_rows": f"{stats.row_count:,}",
        "generator_version": __version__,
    }
    text = _template().render(context, font=None)
    return _template().render(context, font=embedded_subset(text))
