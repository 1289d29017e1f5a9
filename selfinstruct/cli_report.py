"""The ``report`` command of the CLI: a fresh report of an existing version.

`register(subparsers)` adds it to the main parser, like `selfinstruct.cli_dataset`. The report
module (numpy, and matplotlib once a chart is drawn) is imported only when the command runs,
so ``selfinstruct --help`` stays fast. The report goes next to the versions, never into one:
a version folder is immutable (a version made by ``generate`` already carries its own report
in ``report/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfinstruct.cli_dataset import _PATH_HELP, _handler


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report PATH [--output DIR]`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "report",
        help="write an HTML report with charts for a version",
        description="Write report.html (self-contained: opens offline) and the charts as PNG "
        "files: the funnel, ROUGE-L to the nearest instruction, lengths, task types, leading "
        "verbs, the most similar pairs, rejection reasons and a searchable sample of rows.",
    )
    p.add_argument("path", metavar="PATH", help=_PATH_HELP)
    p.add_argument("--output", type=Path, metavar="DIR",
                   help="folder for the report (default: data/<name>/reports/<version>/)")
    p.set_defaults(func=_report)


@_handler
def _report(args: argparse.Namespace) -> int:
    from selfinstruct.report import build_report

    page = build_report(args.path, args.output)
    print(page)
    return 0
