"""Publish a dataset version to the Hugging Face Hub: one commit, one immutable tag.

The Hub repo mirrors the version folder: README.md (the card, whose `configs` point
`load_dataset` at train.jsonl), train.jsonl, rejected.jsonl, manifest.json, its digest
manifest.sha256 and every other file the manifest lists (the report and the charts the card
shows; preference.jsonl, which the card publishes as a second config so that
`load_dataset(repo, "preference")` returns the pairs), so what was published can be traced
back to the run and re-validated. The commit goes
to `main`, which therefore always shows the last published version, and the tag `<version>`
pins it: `load_dataset(repo, revision="v0003")` returns exactly the rows of v0003 forever. Tags are
immutable, so publishing a version twice is refused instead of moving the tag.

JSONL is uploaded with `create_commit`, not `Dataset.push_to_hub` (which always converts to
parquet). The token comes from the argument, `HF_TOKEN` or the client's saved login; it is only
handed to the client, and every error message passes through `redact` (the token and anything
else shaped like a credential) before it is shown.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from selfinstruct._errors import InputError
from selfinstruct.dataset import (
    CARD_FILE,
    MANIFEST_FILE,
    REJECTED_FILE,
    SIGNATURE_FILE,
    TRAIN_FILE,
    require_releasable,
)
from selfinstruct.redact import redact

PUBLISHED_FILES = (CARD_FILE, MANIFEST_FILE, TRAIN_FILE, REJECTED_FILE)
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def publish(
    version_path: str | Path, repo_id: str, private: bool = False, token: str | None = None
) -> dict[str, Any]:
    """Validate a version, upload it in one commit and tag that commit with the version name.

    An empty version (0 train rows) is refused: `load_dataset` cannot load an empty split.

    `private` applies only when the repo is created. Returns the repo URL, the commit (URL and
    sha) and the tag. Raises InputError (one line, token-free) for every failure.
    """
    folder, manifest = require_releasable(version_path, "publish")
    if not _REPO_ID_RE.fullmatch(repo_id):
        raise InputError(f"--push-to-hub: expected ORG/NAME, got {repo_id!r}")
    version = manifest["version"]

    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    token = token or get_token()
    if not token:
        raise InputError("no Hugging Face token: set HF_TOKEN (or log in with `hf auth login`)")
    api = HfApi(token=token)
    step = "create the repo"
    try:
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        step = "list its tags"
        tags = {ref.name for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags}
        if version in tags:
            raise InputError(_tag_exists(repo_id, version))
        step = "commit the files"
        counts = manifest["counts"]
        commit = api.create_commit(
            repo_id,
            [
                CommitOperationAdd(name, str(folder / name))
                for name in published_files(folder, manifest)
            ],
            repo_type="dataset",
            commit_message=f"Add {manifest['name']} {version}",
            commit_description=(
                f"{counts['train']} train rows, {counts['rejected']} rejected rows, created "
                f"{manifest['created_at']} by selfinstruct {manifest.get('package_version')}."
            ),
        )
        step = f"tag {version}"
        api.create_tag(
            repo_id,
            tag=version,
            revision=commit.oid,
            repo_type="dataset",
            tag_message=f"{manifest['name']} {version}",
        )
    except InputError:
        raise
    except Exception as exc:  # the client raises HTTP, transport and validation errors alike
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if step.startswith("tag") and status == 409:
            raise InputError(_tag_exists(repo_id, version)) from None
        message = f"Hugging Face Hub: could not {step} for {repo_id}: {type(exc).__name__}: {exc}"
        raise InputError(redact(message, [token])) from None
    return {
        "repo_id": repo_id,
        "repo_url": str(repo_url),
        "commit_url": commit.commit_url,
        "commit_sha": commit.oid,
        "tag": version,
    }


def published_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The required files, the manifest's digest (versions older than signing have none), then
    the rest the manifest lists (validated to exist)."""
    listed = manifest.get("files") or {}
    signature = [SIGNATURE_FILE] if (folder / SIGNATURE_FILE).is_file() else []
    rest = sorted(name for name in listed if name not in PUBLISHED_FILES)
    return [*PUBLISHED_FILES, *signature, *rest]


def _tag_exists(repo_id: str, version: str) -> str:
    return (
        f"{repo_id}: tag {version} already exists on the Hub and tags are immutable; "
        "write a new version to publish changes"
    )
