"""Which run folder a parameterised run works in: the resume policy of scheduled runs.

A caller that is re-run with the same parameters — a Prefect flow run retried, re-run from
the UI, or fired again for the same schedule slot — must reopen the run those parameters
started, not start a second one, so that its journal answers every request paid before. The
parameters therefore name the run: the same settings (minus speed settings and budgets,
which a resumed run may change) and the same `run_key` map to the same folder,
``data/<dataset>/.runs/<time>-<id>-k<key>``. A finished run is recognised by its journal, so
a re-run after the version was written returns that version instead of writing another.

This is library policy, not orchestration: any scheduler could drive it, and the flows in
`selfinstruct.orchestration` only call it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from selfinstruct.config import GenerateConfig
from selfinstruct.journal import Journal, new_run_id, runs_root
from selfinstruct.resume_rules import RESUMABLE_OVERRIDES

# Settings that a resumed run may change (`resume_config` accepts them) and that do not decide
# what the run produces: speed, rate limits, budgets. A re-run that changes them — raising
# --max-cost after a budget stop, say — continues the same run; changing the seeds, the model
# or the number of instructions is another run.
RUN_SHAPING = ("num_instructions", "max_rounds", "stall_rounds")
NOT_IN_RUN_KEY = tuple(name for name in RESUMABLE_OVERRIDES if name not in RUN_SHAPING)


def identity_key(settings: GenerateConfig, run_key: str | None = None) -> str:
    """The run these settings name, as a hash (any `run_key` makes a safe folder name).

    Taken from the validated config, so a partial `config` parameter and the CLI's complete
    one name the same run when they mean the same settings.
    """
    identity = {k: v for k, v in settings.to_public().items()
                if k not in NOT_IN_RUN_KEY and v is not None}
    material = json.dumps([identity, run_key], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def find_run(settings: GenerateConfig, key: str) -> Path | None:
    """The newest run folder made for `key`, if one was made before."""
    root = runs_root(settings.data_dir, settings.dataset)
    found = sorted(root.glob(f"*-k{key}")) if root.is_dir() else []
    return found[-1] if found else None


def named_run(settings: GenerateConfig, run_key: str | None = None) -> Path:
    """The run folder these settings and `run_key` name: the existing one, else a new name.

    The folder is not created here; opening the run (`selfinstruct.run.open_run` with the
    folder's name as run id) does that, or resumes it when it exists.
    """
    key = identity_key(settings, run_key)
    return (find_run(settings, key)
            or runs_root(settings.data_dir, settings.dataset) / f"{new_run_id()}-k{key}")


def finished_version(run_dir: Path) -> str | None:
    """The version a run already wrote (from its journal), or None if it has not finished."""
    if not (run_dir / "run.json").exists():
        return None
    with Journal(run_dir) as journal:
        return journal.finished_version
