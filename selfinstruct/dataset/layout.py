"""The fixed names inside a dataset folder, shared by every module that reads or writes one.

A dataset folder `data/<name>/` holds version folders `v0001`, `v0002`, ... Each version holds
`train.jsonl`, `rejected.jsonl`, the card `README.md`, `manifest.json` (every other file listed
with its sha256), `manifest.sha256` (the digest of the manifest itself) and, when the run made
one, the report under `report/`. An extracted release adds `SHA256SUMS`.
"""

from __future__ import annotations

TRAIN_FILE = "train.jsonl"
REJECTED_FILE = "rejected.jsonl"
MANIFEST_FILE = "manifest.json"
# The sha256 of the manifest's canonical JSON: the manifest lists every other file's hash, so
# this one line makes an edit of any field, in any file, detectable (see signature.py).
SIGNATURE_FILE = "manifest.sha256"
CARD_FILE = "README.md"
# Written by release archives; an extracted release is a version folder plus this file.
SUMS_FILE = "SHA256SUMS"
LATEST = "latest"
DEFAULT_LICENSE = "apache-2.0"
# Files a version has besides those its manifest lists (the manifest cannot list itself).
UNLISTED_FILES = (MANIFEST_FILE, SIGNATURE_FILE, SUMS_FILE)


def is_member_name(name: str) -> bool:
    """A path inside a version folder: relative, "/"-separated, no "..", no hidden parts."""
    return "\\" not in name and all(
        part and not part.startswith(".") for part in name.split("/")
    )
