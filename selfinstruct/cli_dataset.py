"""The dataset commands of the CLI: validate, versions, diff, export, release.

`register(subparsers)` adds them to the main parser; each handler takes the parsed args and
returns an exit code: 0 success, 1 a failed validation, 2 bad input. Errors are one line on
stderr, `selfinstruct: error: <file[:line]: what>`, never a traceback. Every PATH accepts a
version folder or `data/<name>/latest`. Nothing here imports `datasets` or `huggingface_hub`
at module level (publishing imports the client when it runs), so `--help`, `validate` and
`versions` stay fast.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from selfinstruct._errors import InputError
from selfinstruct.dataset import (
    InvalidDatasetError,
    check_version,
    diff,
    read_manifest,
    versions,
)
from selfinstruct.export import FORMATS, export_version, is_stdout
from selfinstruct.export_dpo import DPO_FORMATS, export_dpo
from selfinstruct.hub import publish
from selfinstruct.release import build_release

_SIGPIPE_EXIT = 128 + 13  # what a shell reports for a writer killed by SIGPIPE
_PATH_HELP = "a version folder such as data/<name>/v0003, or data/<name>/latest"


def _error(message: str) -> None:
    print(f"selfinstruct: error: {message}", file=sys.stderr)


def _handler(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn InputError into its one-line message and exit code (2, or 1 for invalid data)."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except InputError as exc:
            _error(str(exc))
            return exc.exit_code

    return wrapper


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the dataset subcommands to the CLI's subparsers."""
    p = subparsers.add_parser(
        "validate",
        help="check a version's files against its manifest",
        description="Re-check the manifest's digest (manifest.sha256), sha256, size and row "
        "count of every file, JSON and schema of every row, the manifest's counts, and that the "
        "folder holds nothing else (no extra files, folders or symlinks). Exit 1 if anything is "
        "off.",
    )
    p.add_argument("path", metavar="PATH", help=_PATH_HELP)
    p.set_defaults(func=_validate)

    p = subparsers.add_parser("versions", help="list the versions of a dataset")
    p.add_argument("name", metavar="NAME", help="dataset name (a folder under --data-dir)")
    p.add_argument("--data-dir", default="data", type=Path, help="default: %(default)s")
    p.set_defaults(func=_versions)

    p = subparsers.add_parser("diff", help="instructions added and removed between two versions")
    p.add_argument("a", metavar="A", help=_PATH_HELP)
    p.add_argument("b", metavar="B", help=_PATH_HELP)
    p.set_defaults(func=_diff)

    p = subparsers.add_parser(
        "export",
        help="export train rows for fine-tuning tools (JSONL)",
        description="Write one JSON record per line in the chosen shape; to stdout unless "
        "--output is given.",
    )
    p.add_argument("path", metavar="PATH", help=_PATH_HELP)
    p.add_argument("--format", required=True, choices=sorted([*FORMATS, *DPO_FORMATS]),
                   help="alpaca, sharegpt, openai-chat (whole conversations for multi-turn "
                        "rows), plain; dpo / dpo-standard: the version's preference pairs "
                        "(preference.jsonl) in TRL's conversational / standard preference "
                        "format")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="default: stdout (also for '-' and /dev/stdout); an existing device or "
                   "FIFO is written through, a regular file replaced atomically; never a path "
                   "inside a version folder")
    p.set_defaults(func=_export)

    p = subparsers.add_parser(
        "release",
        help="build a reproducible .tar.gz of a version (and publish it)",
        description="Validate, then write <name>-<version>.tar.gz with SHA256SUMS. With "
        "--push-to-hub, also upload the version to a Hugging Face dataset repo and "
        "tag it (token from HF_TOKEN). A version with 0 train rows is refused.",
    )
    p.add_argument("path", metavar="PATH", help=_PATH_HELP)
    p.add_argument("--output-dir", type=Path, default=Path("dist"),
                   help="default: %(default)s; never inside a version folder")
    p.add_argument("--push-to-hub", metavar="ORG/NAME", help="publish to this dataset repo")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--prefect", action="store_true",
                   help="run through the Prefect flow release_dataset (with a run artifact)")
    p.set_defaults(func=_release)


@_handler
def _validate(args: argparse.Namespace) -> int:
    result = check_version(args.path)
    for warning in result.warnings:
        print(f"selfinstruct: warning: {warning}", file=sys.stderr)
    for problem in result.problems:
        _error(problem)
    if result.problems:
        return InvalidDatasetError.exit_code
    counts = read_manifest(result.folder)["counts"]
    print(f"{result.folder}: ok ({counts['train']} train rows, {counts['rejected']} rejected "
          "rows)")
    return 0


@_handler
def _versions(args: argparse.Namespace) -> int:
    dataset_dir = args.data_dir / args.name
    if not dataset_dir.is_dir():
        raise InputError(f"{dataset_dir}: no such dataset folder")
    summaries = versions(dataset_dir)
    if not summaries:
        print(f"{dataset_dir}: no versions yet")
        return 0
    rows = [("VERSION", "CREATED", "TRAIN", "REJECTED", "PARENT")]
    rows += [
        (
            s.name,
            s.created_at or "?",
            str(s.train_rows if s.train_rows is not None else "?"),
            str(s.rejected_rows if s.rejected_rows is not None else "?"),
            s.parent or "-",
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip() + ("  (latest)" if index == len(rows) - 1 else ""))
    return 0


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


@_handler
def _diff(args: argparse.Namespace) -> int:
    result = diff(args.a, args.b)
    print(f"a: {result.a} ({result.a_rows} rows, {result.a_instructions} instructions)")
    print(f"b: {result.b} ({result.b_rows} rows, {result.b_instructions} instructions)")
    print(f"{len(result.added)} added, {len(result.removed)} removed")
    for text in result.added:
        print(f"+ {_one_line(text)}")
    for text in result.removed:
        print(f"- {_one_line(text)}")
    return 0


@_handler
def _export(args: argparse.Namespace) -> int:
    try:
        export = export_dpo if args.format in DPO_FORMATS else export_version
        count = export(args.path, args.format, args.output)
    except BrokenPipeError:
        # `selfinstruct export ... | head`: the reader left. Quiet, like Unix tools, and stop
        # Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _SIGPIPE_EXIT
    if not is_stdout(args.output):
        print(f"wrote {count} {args.format} records to {args.output}", file=sys.stderr)
    return 0


@_handler
def _release(args: argparse.Namespace) -> int:
    if args.private and not args.push_to_hub:
        raise InputError("--private only applies with --push-to-hub ORG/NAME")
    if args.prefect:
        from selfinstruct import prefect_env

        prefect_env.configure()
        from selfinstruct.orchestration.release import release_dataset

        result = release_dataset(version=str(args.path), output_dir=str(args.output_dir),
                                 push_to_hub=args.push_to_hub, private=args.private)
        print(f"release: {result['archive']} (sha256 {result['sha256']})")
        if result["hub"]:
            print(f"published: {result['hub']['commit_url']} (tag {result['hub']['tag']})")
        return 0
    artifact = build_release(args.path, args.output_dir)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    print(f"release: {artifact} (sha256 {digest})")
    if args.push_to_hub:
        result = publish(args.path, args.push_to_hub, private=args.private)
        print(f"published: {result['commit_url']} (tag {result['tag']})")
    return 0
