"""Versioned, immutable dataset folders: write, resolve, validate, list, diff and load.

Layout: `data/<name>/<version>/` holds `train.jsonl`, `rejected.jsonl`, `manifest.json`, its
digest `manifest.sha256`, the card `README.md` and, when the run made one, the report under
`report/`. A version is never modified once it exists, so a version name is a stable reference
for training runs, releases and Hub tags; every file in it is listed with its hash in the
manifest, and the manifest itself is covered by its digest.

By concern:
- `layout`: the fixed file names;
- `naming`: which folders are versions, `latest`, the next name, `refuse_inside_version`;
- `schema`: the row schemas and the Features built on them;
- `files`: strict reading of manifests and JSONL rows;
- `signature`: the manifest digest;
- `store`: the atomic write of a new version;
- `validate`: checking a folder against its manifest;
- `listing`: `versions`, `diff`, `load`.
"""

from __future__ import annotations

from selfinstruct.dataset.files import iter_rows, read_manifest, read_train_rows, sha256_file
from selfinstruct.dataset.layout import (
    CARD_FILE,
    DEFAULT_LICENSE,
    LATEST,
    MANIFEST_FILE,
    REJECTED_FILE,
    SIGNATURE_FILE,
    SUMS_FILE,
    TRAIN_FILE,
    is_member_name,
)
from selfinstruct.dataset.listing import (
    DatasetDiff,
    VersionSummary,
    diff,
    find_run_version,
    load,
    versions,
)
from selfinstruct.dataset.naming import (
    check_dataset_name,
    list_versions,
    refuse_inside_version,
    resolve_version,
    version_name,
)
from selfinstruct.dataset.schema import REJECTED_SCHEMA, TRAIN_SCHEMA, train_features
from selfinstruct.dataset.store import STALE_TMP_SECONDS, TMP_PREFIX, ExtraFiles, write_version
from selfinstruct.dataset.validate import (
    InvalidDatasetError,
    Validation,
    check_version,
    require_releasable,
    require_valid,
    validate,
)

__all__ = [
    "CARD_FILE",
    "DEFAULT_LICENSE",
    "LATEST",
    "MANIFEST_FILE",
    "REJECTED_FILE",
    "REJECTED_SCHEMA",
    "SIGNATURE_FILE",
    "STALE_TMP_SECONDS",
    "SUMS_FILE",
    "TMP_PREFIX",
    "TRAIN_FILE",
    "TRAIN_SCHEMA",
    "DatasetDiff",
    "ExtraFiles",
    "InvalidDatasetError",
    "Validation",
    "VersionSummary",
    "check_dataset_name",
    "check_version",
    "diff",
    "find_run_version",
    "is_member_name",
    "iter_rows",
    "list_versions",
    "load",
    "read_manifest",
    "read_train_rows",
    "refuse_inside_version",
    "require_releasable",
    "require_valid",
    "resolve_version",
    "sha256_file",
    "train_features",
    "validate",
    "version_name",
    "versions",
    "write_version",
]
