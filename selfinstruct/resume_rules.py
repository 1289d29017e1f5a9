"""What a resumed run may change, and the checks that refuse everything else up front.

A resumed run replays its journal through the same deterministic program, so anything that
decides which requests are built — the seeds, the prompt templates and labels, the model, the
recipe, the look-ahead depth — must be exactly what the run started with. Were it to differ,
the replay would discard answers already paid for and buy them again (or fail half-way). So
every check here runs before a request is sent or a file is written, and refuses with one
line naming the setting or the file that changed.

Speed settings, budgets and the target (`RESUMABLE_OVERRIDES`) may change. A base URL is
stored without its credentials; giving it again (``--base-url`` or ``OPENAI_BASE_URL``) with
the same credential-free form supplies them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct._errors import InputError
from selfinstruct.config import GenerateConfig, coerce_setting, flag_name
from selfinstruct.filters import FilterSettings
from selfinstruct.input_files import require_regular_file
from selfinstruct.journal import RUNS_DIR, read_run_config
from selfinstruct.personas import persona_file_sha256, resolve_persona_path
from selfinstruct.prompts import PromptSet
from selfinstruct.redact import redact, strip_url_credentials
from selfinstruct.seeds import SeedSet

if TYPE_CHECKING:
    from selfinstruct.chat_template import ChatTemplate

# Settings a resumed run may change: they affect speed or how far it goes (budgets included),
# never which data the already-journaled answers produce. `lookahead` is deliberately absent:
# it is fixed when the run starts, which is what lets `concurrency` change.
RESUMABLE_OVERRIDES = ("concurrency", "timeout", "max_retries", "retry_base_delay",
                       "batch_size", "batch_poll_interval",
                       "num_instructions", "max_rounds", "stall_rounds", "rpm", "tpm",
                       "max_requests",
                       "max_tokens", "max_cost", "prices", "endpoints")
CHANGE_HINT = ("only speed settings, budgets and --num-instructions may change on resume; "
               "start a new run without --resume to change it")


def load_run_record(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder, checked for the shape a resume relies on."""
    path = run_dir / "run.json"
    require_regular_file(path, "run record (run.json)")
    try:
        record = read_run_config(run_dir)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the run record: {exc.strerror}") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise InputError(f"{path}: not a selfinstruct run record (no 'config' object)")
    return record


def run_data_dir(run_dir: Path, record: dict[str, Any]) -> Path:
    """The data folder a run writes its version into: the one its folder sits in.

    Derived from where the run folder is (``DATA/DATASET/.runs/RUN``), so a resume from another
    working directory — or after the data folder was moved — writes beside the run it
    finishes; a run folder elsewhere (copied by hand) uses the absolute path it stored.
    """
    run_dir = run_dir.resolve()
    if run_dir.parent.name == RUNS_DIR and \
            run_dir.parent.parent.name == record["config"].get("dataset"):
        return run_dir.parent.parent.parent
    return Path(str(record.get("data_dir") or record["config"].get("data_dir") or "data"))


def check_unchanged(stored: GenerateConfig, overrides: dict[str, Any], where: Path) -> None:
    """Refuse any given setting that a resume may not change and that differs from `stored`.

    Equal values are fine (a script may repeat its full command line plus ``--resume``). The
    base URL is compared by `endpoint_url`, where credentials come into it.
    """
    for key, value in overrides.items():
        if value is None or key in RESUMABLE_OVERRIDES or key == "base_url":
            continue
        current = getattr(stored, key)
        if isinstance(value, dict) and isinstance(current, FilterSettings | dict):
            # A table given in part (--pii mask) is compared with the stored table.
            base = current.to_mapping() if isinstance(current, FilterSettings) else current
            value = {**base, **value}
        given = coerce_setting(key, value, flag_name(key))
        if _comparable(given) != _comparable(current):
            raise InputError(f"{flag_name(key)}: {_shown(given)} differs from {_shown(current)} "
                             f"stored in {where}; {CHANGE_HINT}")


def _comparable(value: Any) -> Any:
    if isinstance(value, Path):
        return value.resolve()
    if isinstance(value, FilterSettings):
        return value.to_mapping()
    return value


def _shown(value: Any) -> str:
    if isinstance(value, FilterSettings):
        value = value.to_mapping()
    return repr(str(value) if isinstance(value, Path) else value)


def endpoint_url(stored: GenerateConfig, record: dict[str, Any], given: str | None,
                 environ: dict[str, str], where: Path) -> str | None:
    """The base URL the resumed run talks to, credentials included when they are supplied.

    `given` (``--base-url``) must strip to the stored URL; ``OPENAI_BASE_URL`` is used only
    when it does (otherwise it is an ambient setting for other runs and is ignored). A run
    whose URL had credentials cannot go on without them: it would fail every request.
    """
    url = stored.base_url
    if given is not None:
        if url is None or strip_url_credentials(given) != url:
            raise InputError(f"--base-url: {redact(given)} is not the endpoint of the run in "
                             f"{where} ({url or 'the embedded model'}); {CHANGE_HINT}")
        return given
    from_env = environ.get("OPENAI_BASE_URL")
    if url is not None and from_env and strip_url_credentials(from_env) == url:
        return from_env
    if record.get("base_url_credentials"):
        raise InputError(f"{where}: the run's base URL {url} had credentials, which are never "
                         f"stored; give it again with them (--base-url or OPENAI_BASE_URL)")
    return url


def input_fingerprint(seeds: SeedSet, prompts: PromptSet,
                      chat_template: ChatTemplate | None = None,
                      personas: Path | None = None) -> dict[str, Any]:
    """sha256 of every input that shapes the requests, for run.json: the seed file, the
    templates, labels.json, the --personas file, and magpie's chat template (from a file, a
    GGUF or /props: a server that now serves another template would orphan every journaled
    answer)."""
    labels = prompts.dir / "labels.json"
    found = {
        "seeds": {"path": str(seeds.path), "sha256": seeds.sha256},
        "prompts": {str(prompts.dir / f"{name}.j2"): digest
                    for name, digest in prompts.template_hashes.items()},
        "labels": {"path": str(labels), "sha256": hashlib.sha256(labels.read_bytes())
                   .hexdigest()},
    }
    if personas is not None:
        found["personas"] = {"path": str(resolve_persona_path(personas)),
                             "sha256": persona_file_sha256(personas)}
    if chat_template is not None:
        found["chat_template"] = {"path": f"the chat template of {chat_template.origin}",
                                  "sha256": chat_template.sha256}
    return found


def check_inputs(stored: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Refuse a resume whose seed file, prompt templates or labels changed since the start.

    Compared by content, under the name each file has now: a template or label edit changes
    the rendered prompts, so every journaled answer would be orphaned and bought again.
    """
    changed: list[str] = []
    for kind in ("seeds", "labels", "personas", "chat_template"):
        old, new = stored.get(kind), current.get(kind)
        if isinstance(old, dict) and isinstance(new, dict) \
                and old.get("sha256") != new["sha256"]:
            changed.append(new["path"])
    old_templates = stored.get("prompts")
    if isinstance(old_templates, dict):
        by_name = {Path(path).name: digest for path, digest in old_templates.items()}
        changed += [path for path, digest in current["prompts"].items()
                    if by_name.get(Path(path).name, digest) != digest]
    if changed:
        raise InputError(f"{', '.join(changed)}: changed since the run started (its sha256 is "
                         f"recorded in {where}); a resume would discard the answers already "
                         f"paid for — restore the file, or start a new run without --resume")
