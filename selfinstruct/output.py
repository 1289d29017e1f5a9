"""What a finished run writes: the train rows, the manifest, and the immutable version.

The rows and the manifest are read from the engine's state and the version folder is written
by `selfinstruct.dataset` (atomic, checksummed); this module only decides their content.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from selfinstruct import __version__

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine


class EmptyDataset(RuntimeError):
    """The run ended without one usable row: no version is written, the journal is kept.

    An empty version would be worse than none: it looks like a result, and a release of it
    publishes a split that `datasets` cannot load.
    """


def train_rows(engine: Engine) -> Iterator[dict[str, Any]]:
    """The rows of train.jsonl, one per instance, made as they are written (a 52K run has
    ~130K rows with 10 neighbours each: building them all at once costs hundreds of MB)."""
    for task in engine.tasks:
        for k, inst in enumerate(task.instances):
            row: dict[str, Any] = {
                "id": f"{task.id}-{k}",
                "task_id": task.id,
                "instruction": task.instruction,
                "input": inst.input,
                "output": inst.output,
                "is_classification": task.is_classification,
                "provenance": {
                    "model": engine.client.model,
                    "prompt_hash": task.prompt_hash,
                    "instance_prompt_hash": task.instance_prompt_hash,
                    "request_id": task.request_id,
                    "round": task.round,
                    "most_similar": [{"instruction": text, "score": score}
                                     for text, score in task.most_similar],
                    "avg_similarity": task.avg_similarity,
                    "judge_clarity": inst.clarity,
                    "judge_correctness": inst.correctness,
                    **task.extra,
                    **inst.extra,
                },
            }
            if inst.messages is not None:
                row["messages"] = inst.messages
            yield row


def manifest(engine: Engine) -> dict[str, Any]:
    from selfinstruct.endpoints import EndpointPool
    from selfinstruct.estimate import manifest_field
    from selfinstruct.manifest_sections import sections

    cfg, usage = engine.config, engine.usage
    estimate = manifest_field(engine)
    return {
        "dataset": cfg.dataset,
        "recipe": cfg.recipe,
        "language": engine.language,
        "model": engine.client.model,
        "endpoint_kind": engine.endpoint_kind,
        "api": cfg.api,
        "demo_quality": cfg.embedded,
        "config": cfg.to_public(),
        "seeds": {"path": str(engine.seeds.path), "sha256": engine.seeds.sha256,
                  "tasks": len(engine.seeds.tasks)},
        "prompts": dict(engine.prompts.template_hashes),
        "funnel": engine.funnel.stages,
        "usage": {name: vars(s).copy() for name, s in usage.stages.items()},
        "cost_usd": engine.dispatch.cost(),
        "request_errors": dict(usage.errors),
        "target": {"instructions": engine.target, "accepted": engine.usable,
                   "accepted_instructions": len(engine.tasks),
                   "reached": engine.usable >= engine.target,
                   "stop_reason": engine.stop_reason, "rounds": engine.round},
        "license": cfg.license,
        "run_id": engine.run_id,
        "generator": f"selfinstruct {__version__}",
        "started_at": _iso(engine.started_at),
        "finished_at": _iso(time.time()),
        # Only for a run that `generate --estimate` forecast: the forecast beside the outcome.
        **({"estimate": estimate} if estimate is not None else {}),
        # Several endpoints: requests, errors and latency of each (this process's share).
        **({"endpoints": engine.client.stats()}
           if isinstance(engine.client, EndpointPool) else {}),
        # Recipe and feature sections (lineage, personas, turns, confidence, …) when used.
        **sections(engine, lambda: train_rows(engine)),
    }


def write_version(engine: Engine) -> str:
    """Write the immutable version folder and mark the run finished; return its path.

    Idempotent per run: if a crash came between the folder's atomic rename and the
    journal's "finished" event, the resumed run finds its version instead of writing a
    second one.
    """
    from selfinstruct import preference
    from selfinstruct.dataset import write_version as store_version
    from selfinstruct.dataset.listing import find_run_version
    from selfinstruct.report import write_into_version

    if not engine.usable:
        raise EmptyDataset(_empty_message(engine))
    dataset_dir = engine.config.data_dir / engine.config.dataset
    path = find_run_version(dataset_dir, engine.run_id)
    if path is None:
        path = store_version(dataset_dir, train_rows(engine), engine.rejected,
                             manifest(engine), extra_files=write_into_version,
                             data_files=preference.data_files(engine))
    engine.journal.record_finished(str(path))
    return str(path)


def _empty_message(engine: Engine) -> str:
    accepted = len(engine.tasks)
    what = ("no instruction was accepted" if not accepted else
            f"{accepted} instructions were accepted but none kept a valid instance")
    return (f"no usable row: {what} ({engine.stop_reason}); top rejection reasons: "
            f"{engine.funnel.top_drops(3)}; no version was written and the run "
            f"stays resumable in {engine.journal.run_dir}")


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
