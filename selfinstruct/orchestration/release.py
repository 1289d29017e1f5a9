"""The `release_dataset` flow: validate a version, build its archive, optionally publish it.

Steps are the library's (`dataset.require_valid`, `release.build_release`, `hub.publish`);
the flow adds retries, a persisted result for the Hub step, and the release report.

Resume: the Hub step is the one that must not run twice — tags on the Hub are immutable, so
publishing a version again is refused. Its result is therefore cached on its inputs and its
source (`INPUTS + TASK_SOURCE`, a hashed key) and persisted under the project
(``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, see `selfinstruct.prefect_env`): a re-run of a
release that failed after publishing (or a scheduled run retried after its release step)
gets the recorded commit back instead of a refusal. The inputs include the manifest's
SHA-256, so a different dataset under the same path is a different release. The archive is
not cached: it is byte-for-byte reproducible and cheap to rebuild, and a cached path could
point at a file deleted since.

The Hugging Face token is never a parameter: `hub.publish` reads ``HF_TOKEN`` (or the saved
login) in the process that runs the flow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.tasks import exponential_backoff

from selfinstruct.dataset import MANIFEST_FILE, require_valid, sha256_file
from selfinstruct.hub import publish
from selfinstruct.orchestration.artifacts import publish_release_report
from selfinstruct.release import build_release


@task(name="validate-version", cache_policy=NO_CACHE, persist_result=False)
def validate_version(version: str) -> tuple[str, str]:
    """Resolve and fully re-check a version; return its folder and its manifest's SHA-256."""
    folder = require_valid(version)
    return str(folder), sha256_file(folder / MANIFEST_FILE)


@task(name="build-archive", cache_policy=NO_CACHE, persist_result=False)
def build_archive(folder: str, output_dir: str) -> tuple[str, str]:
    """The deterministic `.tar.gz` of a version, and its SHA-256."""
    archive = build_release(folder, output_dir)
    return str(archive), hashlib.sha256(archive.read_bytes()).hexdigest()


@task(name="publish-to-hub", cache_policy=INPUTS + TASK_SOURCE, persist_result=True,
      retries=2, retry_delay_seconds=exponential_backoff(5), retry_jitter_factor=0.5)
def publish_to_hub(folder: str, manifest_sha256: str, repo_id: str,
                   private: bool) -> dict[str, Any]:
    """One commit and one tag on the Hub; retried for network failures, cached once done.

    A retry after a commit whose tag failed re-uploads identical files (a no-op commit on the
    Hub) and tags it; `manifest_sha256` is only part of the cache key.
    """
    return publish(folder, repo_id, private=private)


@flow(name="release_dataset", flow_run_name="release-{version}")
def release_dataset(version: str, output_dir: str = "dist", push_to_hub: str | None = None,
                    private: bool = False) -> dict[str, Any]:
    """Release a version (a folder, or ``data/<name>/latest``); return what was produced.

    `push_to_hub` (``ORG/NAME``) also publishes it to that Hugging Face dataset repo.
    """
    folder, manifest_sha256 = validate_version(version)
    archive, digest = build_archive(folder, output_dir)
    release: dict[str, Any] = {"name": Path(folder).parent.name, "version": folder,
                               "archive": archive, "sha256": digest, "hub": None}
    if push_to_hub:
        release["hub"] = publish_to_hub(folder, manifest_sha256, push_to_hub, private)
    publish_release_report(release)
    return release
