"""One funnel, every renderer: the progress table, the dataset card, the report page and the
flow's run report must show the same numbers, because they all read `funnel_rows`."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from selfinstruct.dataset import CARD_FILE, write_version
from selfinstruct.orchestration.artifacts import funnel_markdown
from selfinstruct.progress import funnel_table
from selfinstruct.records import FunnelRow, funnel_rows
from selfinstruct.report import HTML_FILE, REPORT_DIR, write_into_version
from tests.dataset_samples import manifest, rejected_row, train_row

# Out of pipeline order on purpose, with tied drop reasons and a stage no renderer knows.
FUNNEL = {
    "novelty": {"in": 30, "kept": 21, "drops": {"too_similar": 9}},
    "parse": {"in": 50, "kept": 41, "drops": {"too_long": 3, "empty": 3, "no_list": 3}},
    "future_stage": {"in": 4, "kept": 4, "drops": {}},
    "answers": {"in": 12, "kept": 9, "drops": {"unparseable": 2, "failed": 1}},
    "filter": {"in": 41, "kept": 30, "drops": {"blacklist": 4, "too_short": 7}},
    "request": {"in": 1, "kept": 0, "drops": {"timeout": 1}},
    "classify": {"in": 21, "kept": 20, "drops": {"unreadable_verdict": 1}},
}
Numbers = dict[str, tuple[int, int, int, list[tuple[str, int]]]]


def _reasons(text: str) -> list[tuple[str, int]]:
    return [(reason, int(n)) for reason, n in re.findall(r"([A-Za-z_]\w*)\W+(\d+)", text)]


def _cells(stage_cell: str, *cells: str) -> tuple[str, tuple[int, int, int, list]]:
    """(stage, (in, kept, dropped, reasons)) from one rendered row; the stage is the first
    word of its label ("answers (model answers, not candidates)" → "answers")."""
    seen, kept, dropped, reasons = cells
    return stage_cell.split()[0], (int(seen), int(kept), int(dropped), _reasons(reasons))


def _markdown(text: str) -> Numbers:
    section = text.split("## Funnel", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| Stage")]
    return dict(_cells(*(cell.strip() for cell in row)) for row in rows)


def _progress(funnel: dict) -> Numbers:
    out = io.StringIO()
    Console(file=out, width=300, highlight=False).print(funnel_table(funnel, "funnel"))
    rows = [line.strip("│ ").split("│") for line in out.getvalue().splitlines()
            if line.startswith("│") and not line.startswith("│ stage")]
    return dict(_cells(*(cell.strip() for cell in row)) for row in rows)


def _html(page: str) -> Numbers:
    section = page.split('<h2 id="funnel">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>\s*"
                      r"<td>(.*?)</td></tr>", section, re.S)
    return dict(_cells(*row) for row in rows)


def test_funnel_rows_order_numbers_and_labels() -> None:
    rows = funnel_rows(FUNNEL)
    assert [r.stage for r in rows] == ["answers", "request", "parse", "filter", "novelty",
                                       "classify", "future_stage"]
    assert rows[0] == FunnelRow("answers", "answers", 12, 9, 3,
                                (("unparseable", 2), ("failed", 1)))
    assert rows[0].label == "answers (model answers, not candidates)"
    parse = rows[2]
    assert parse.label == "parse (instructions)"
    assert parse.drops == (("empty", 3), ("no_list", 3), ("too_long", 3))  # ties by reason
    assert rows[-1].label == "future_stage" and rows[-1].dropped == 0  # unknown: name only


def test_every_renderer_shows_the_same_funnel(tmp_path: Path) -> None:
    version = write_version(tmp_path / "demo", [train_row(n) for n in range(4)],
                            [rejected_row(n) for n in range(2)], manifest(funnel=FUNNEL),
                            extra_files=write_into_version)
    expected = {r.stage: (r.seen, r.kept, r.dropped, list(r.drops)) for r in funnel_rows(FUNNEL)}
    order = list(expected)

    card = _markdown((version / CARD_FILE).read_text(encoding="utf-8"))
    progress = _progress(FUNNEL)
    page = _html((version / REPORT_DIR / HTML_FILE).read_text(encoding="utf-8"))
    flow = _markdown(funnel_markdown(version, {"funnel": FUNNEL}))
    for rendered in (card, progress, page, flow):
        assert rendered == expected
        assert list(rendered) == order  # same stage order, same reason order
