"""Run reports as Prefect artifacts: what a flow run produced, readable in the Prefect UI.

Everything shown comes from the version's `manifest.json`, which the library writes; these
functions only lay it out as markdown and links. Artifacts carry a key per dataset, so the
UI's Artifacts page keeps one history per dataset ("how did last night's run compare?").
Nothing secret can appear: the manifest refuses secrets before it is written, and API keys
and tokens never reach the flows as parameters.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact

from selfinstruct.dataset import read_manifest
from selfinstruct.records import funnel_rows
from selfinstruct.report import HTML_FILE, REPORT_DIR, default_output


def artifact_key(dataset: str, kind: str) -> str:
    """Prefect accepts only lowercase letters, digits and dashes in artifact keys."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "dataset"
    return f"{slug}-{kind}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _duration(manifest: dict[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(manifest["started_at"])
        end = datetime.fromisoformat(manifest["finished_at"])
    except (KeyError, TypeError, ValueError):
        return "n/a"
    seconds = (end - start).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _cost(manifest: dict[str, Any]) -> str:
    cost = manifest.get("cost_usd")
    if cost is None:
        return f"n/a (no price for model '{manifest.get('model')}' in the `prices` setting)"
    return f"${cost:.4f}"


def report_link(version: Path) -> Path:
    """The version's HTML report — inside it, or built later beside it — else the folder."""
    for page in (version / REPORT_DIR / HTML_FILE, default_output(version) / HTML_FILE):
        if page.is_file():
            return page
    return version


def funnel_markdown(version: Path, manifest: dict[str, Any]) -> str:
    """The run report: outcome, funnel with drop reasons, requests and tokens per stage."""
    target = manifest.get("target", {})
    counts = manifest.get("counts", {})
    summary = _table(["", ""], [
        ["Accepted instructions",
         f"{target.get('accepted', '?')} of {target.get('instructions', '?')} "
         f"({target.get('stop_reason', 'n/a')})"],
        ["Train rows", counts.get("train", "?")],
        ["Rejected rows", counts.get("rejected", "?")],
        ["Bootstrap rounds", target.get("rounds", "?")],
        ["Duration", _duration(manifest)],
        ["Cost estimate", _cost(manifest)],
        ["Model", f"{manifest.get('model')} ({manifest.get('endpoint_kind')})"],
        ["Version folder", f"`{version.resolve()}`"],
        ["Report", f"`{report_link(version).resolve()}`"],
    ])
    funnel = _table(["Stage", "In", "Kept", "Dropped", "Drops by reason"], [
        [row.label, row.seen, row.kept, row.dropped,
         ", ".join(f"{reason}: {n}" for reason, n in row.drops) or "-"]
        for row in funnel_rows(manifest.get("funnel") or {})
    ])
    usage = manifest.get("usage", {})
    fields = ("requests", "cached", "failed", "retries", "prompt_tokens", "completion_tokens")
    totals = [sum(stage.get(f, 0) for stage in usage.values()) for f in fields]
    tokens = _table(
        ["Stage", "Requests sent", "From journal", "Failed", "Retries", "Prompt tokens",
         "Completion tokens"],
        [[name, *(stage.get(f, 0) for f in fields)] for name, stage in usage.items()]
        + [["**total**", *totals]],
    )
    return "\n\n".join([
        f"# {manifest.get('name')} {manifest.get('version')}", summary,
        "## Funnel", funnel, "## Requests and tokens", tokens,
    ])


def publish_run_report(version: str) -> None:
    """Attach the run report and a link to the version (or its HTML report) to the flow run."""
    folder = Path(version)
    manifest = read_manifest(folder)
    name = manifest.get("name") or folder.parent.name
    create_markdown_artifact(
        funnel_markdown(folder, manifest), key=artifact_key(name, "run-report"),
        description=f"Funnel, drops by reason, tokens and cost of {name} {folder.name}",
    )
    target = report_link(folder).resolve()
    create_link_artifact(
        target.as_uri(), link_text=str(target), key=artifact_key(name, "version"),
        description=f"{name} {folder.name}: the version folder or its HTML report",
    )


def publish_release_report(release: dict[str, Any]) -> None:
    """Attach what a release produced: the archive and its checksum, and the Hub commit."""
    name = release["name"]
    rows = [["Version folder", f"`{release['version']}`"],
            ["Archive", f"`{release['archive']}`"],
            ["SHA-256", f"`{release['sha256']}`"]]
    hub = release.get("hub")
    if hub:
        rows += [["Hub commit", hub["commit_url"]], ["Hub tag", hub["tag"]]]
    create_markdown_artifact(
        f"# Release of {name} {Path(release['version']).name}\n\n" + _table(["", ""], rows),
        key=artifact_key(name, "release"), description=f"Release of {name}",
    )
    if hub:
        create_link_artifact(hub["commit_url"], link_text=f"{hub['repo_id']} @ {hub['tag']}",
                             key=artifact_key(name, "hub"),
                             description=f"{name} on the Hugging Face Hub")
