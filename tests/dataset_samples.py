"""Sample rows and manifests shaped like the pipeline's, for the dataset/export/hub tests."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfinstruct.cli_dataset import register
from selfinstruct.dataset import MANIFEST_FILE, SIGNATURE_FILE, TRAIN_FILE, write_version
from selfinstruct.dataset.signature import signature_text

# A float that rounding would change: stored rows must keep it bit for bit.
TRICKY_SCORE = 0.7000000000000001


def train_row(n: int, *, ja: bool = False, instruction: str | None = None) -> dict[str, Any]:
    """Row n; tasks have two instances (n // 2), odd rows have an empty input."""
    task = n // 2
    if instruction is None:
        instruction = (
            f"次の文を要約してください {task}" if ja else f"Summarize the text number {task}"
        )
    return {
        "id": f"t{task:04d}-{n % 2}",
        "task_id": f"t{task:04d}",
        "instruction": instruction,
        "input": "" if n % 2 else ("東京は日本の首都です。" if ja else f"Input text {n}"),
        "output": f"出力 {n}" if ja else f"Output {n}\nwith a second line",
        "is_classification": None,
        "provenance": {
            "model": "test-model",
            "prompt_hash": "a" * 64,
            "instance_prompt_hash": None,
            "request_id": None if n % 3 else f"req-{n}",
            "round": task,
            "most_similar": [{"instruction": "Seed task", "score": TRICKY_SCORE}],
            "avg_similarity": None,
            "judge_clarity": None,
            "judge_correctness": None,
        },
    }


def rejected_row(n: int) -> dict[str, Any]:
    return {
        "stage": "bootstrap",
        "reason": "too_similar",
        "instruction": f"Rejected instruction {n}",
        "input": None,
        "output": None,
        "detail": "rouge_l=0.8000 > 0.7",
        "prompt_hash": "b" * 64,
        "request_id": None,
    }


def manifest(*, language: str = "en", demo: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": "demo",
        "recipe": "self-instruct",
        "language": language,
        "model": "test-model",
        "endpoint_kind": "embedded" if demo else "openai-compatible",
        "api": "completions" if demo else "chat",
        "demo_quality": demo,
        "config": {"num_instructions": 10, "base_url": "http://127.0.0.1:1/v1"},
        "seeds": {"path": "seeds/en_general.jsonl", "sha256": "c" * 64, "tasks": 175},
        "prompts": {"bootstrap": "d" * 64},
        "funnel": {"bootstrap": {"in": 12, "kept": 5, "drops": {"too_similar": 4, "short": 3}}},
        "usage": {"bootstrap": {"requests": 3, "prompt_tokens": 900, "completion_tokens": 300}},
        "license": "apache-2.0",
        "run_id": "run-1",
        "started_at": "2025-01-01T00:00:00Z",
        "finished_at": "2025-01-01T00:05:00Z",
        **extra,
    }


def write_sample(
    dataset_dir: Path, rows: int = 6, *, ja: bool = False, first: int = 0, **manifest_extra: Any
) -> Path:
    return write_version(
        dataset_dir,
        [train_row(n, ja=ja) for n in range(first, first + rows)],
        [rejected_row(n) for n in range(2)],
        manifest(language="ja" if ja else "en", **manifest_extra),
    )


def rewrite_manifest(folder: Path, edit: Callable[[dict], None], *, sign: bool = True) -> None:
    """Edit a version's manifest in place; with `sign`, also write a matching digest (a
    thorough forger, or a version made before `write_version` refused what it now refuses)."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    edit(manifest)
    text = json.dumps(manifest, ensure_ascii=False, indent=2)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")
    if sign:
        (folder / SIGNATURE_FILE).write_bytes(signature_text(manifest))


def empty_version(dataset_dir: Path) -> Path:
    """A valid version with 0 train rows, as older releases could write (and peers might)."""
    folder = write_sample(dataset_dir, rows=2)
    (folder / TRAIN_FILE).write_bytes(b"")

    def empty(manifest: dict) -> None:
        manifest["files"][TRAIN_FILE] = {"sha256": hashlib.sha256(b"").hexdigest(), "bytes": 0,
                                         "rows": 0}
        manifest["counts"].update(train=0, tasks=0)

    rewrite_manifest(folder, empty)
    return folder


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def run_cli(argv: list[str]) -> int:
    """Run a dataset subcommand through `register()`, as the real CLI does."""
    parser = argparse.ArgumentParser(prog="selfinstruct")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
