"""The report of a dataset version: the numbers, charts and one HTML page a person can read.

People choose a generator by what comes out of it, and should look at a dataset before they
train on it. The report answers the questions the Self-Instruct paper asked of its own data,
for any version: what each filter dropped and why (the funnel, rejection reasons with
examples), how diverse the instructions are (ROUGE-L to the nearest other instruction; leading
verbs and their objects), what the rows look like (length distributions, the task-type mix, the
20 most similar pairs, a searchable sample), and the judge's scores when the run had a judge.

Outputs: ``report.html`` — self-contained (see `page`), so it opens offline and can be mailed
around — and each chart as a PNG. Inside a version folder they live in ``report/`` and are
written before the folder's atomic rename (`write_into_version`, the `dataset.write_version`
hook), so the manifest lists them and the card shows the PNGs. `build_report` writes a fresh
report for an existing version next to it, never into it: versions are immutable.

One module per concern: `stats` computes the numbers (with `verbs`, the leading-verb
analysis), `charts` draws them, `page` lays out ``report.html.j2``, and `fonts` holds the
bundled Japanese font both of them use.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.dataset import read_manifest, resolve_version
from selfinstruct.dataset.naming import refuse_inside_version
from selfinstruct.fileio import atomic_write
from selfinstruct.report.charts import CHART_BUILDERS
from selfinstruct.report.page import render_html
from selfinstruct.report.panels import PANEL_BUILDERS
from selfinstruct.report.stats import collect

REPORT_DIR = "report"  # inside a version folder
HTML_FILE = "report.html"

# --------------------------------------------------------------------------- writing


def write_report(folder: Path, manifest: dict[str, Any], target: Path) -> list[Path]:
    """Build the report of the version in `folder` into `target`; return the files, page
    first. Charts with nothing to show (no judge, no rows) are left out."""
    stats = collect(folder, manifest)
    charts = [chart for build in (*CHART_BUILDERS, *PANEL_BUILDERS)
              if (chart := build(stats)) is not None]
    target.mkdir(parents=True, exist_ok=True)
    # Each file whole or not at all: a report rebuilt over an old one is never half-written.
    page = target / HTML_FILE
    atomic_write(page, render_html(stats, charts))
    written = [page]
    for chart in charts:
        atomic_write(target / chart.name, chart.png)
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
    refuse_inside_version(target, "--output")
    try:
        return write_report(folder, manifest, target)[0]
    except OSError as exc:
        raise InputError(f"{target}: cannot write the report: {exc.strerror or exc}") from None

