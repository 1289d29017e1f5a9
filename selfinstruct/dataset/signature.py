"""The manifest's own digest: `manifest.sha256` beside `manifest.json`.

The manifest lists the sha256 of every other file, but a hash list cannot protect itself: an
edit of the model, config, funnel, license, demo flag, parent, run id or prompt hashes — or the
removal of `report/` together with its entries — left every listed hash intact. The digest of
the manifest's canonical JSON closes that gap; releases list `manifest.sha256` in `SHA256SUMS`,
so a published checksum covers the whole version.

Canonical JSON (keys sorted, no whitespace, UTF-8, NaN refused) is hashed rather than the file's
bytes so the digest describes the manifest's content; it is computed from the same dict that is
written, and re-computed from the parsed file when validating. This is tamper-evidence, not a
signature with a key: whoever can rewrite both files can forge both, which is why the digest
also travels in release checksums and Hub commits.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from selfinstruct._errors import located
from selfinstruct.dataset.layout import MANIFEST_FILE, SIGNATURE_FILE

_DIGEST_LINE = re.compile(r"[0-9a-f]{64}\n")


def manifest_digest(manifest: dict) -> str:
    """Hex sha256 of the canonical JSON of `manifest` (ValueError on NaN or Infinity)."""
    canonical = json.dumps(
        manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def signature_text(manifest: dict) -> bytes:
    """The contents of `manifest.sha256`: the digest and a newline."""
    return f"{manifest_digest(manifest)}\n".encode("ascii")


def check_signature(folder: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings) about `folder/manifest.sha256` for the parsed `manifest`.

    A missing signature is a warning, not a problem: versions written before signing existed
    stay readable, and the warning says what that leaves unchecked.
    """
    path = folder / SIGNATURE_FILE
    if not path.exists() and not path.is_symlink():
        return [], [
            located(path, "missing: this version predates manifest signing, so edits of "
                          f"{MANIFEST_FILE} fields other than files and counts go undetected")
        ]
    if path.is_symlink() or not path.is_file():
        return [], []  # the folder walk reports links and special files
    text = path.read_bytes()
    if not _DIGEST_LINE.fullmatch(text.decode("ascii", errors="replace")):
        return [located(path, "expected one line with a 64-digit hex sha256")], []
    if text.decode("ascii").strip() != manifest_digest(manifest):
        return [located(folder / MANIFEST_FILE, f"does not match {SIGNATURE_FILE} "
                                                "(the manifest was edited)")], []
    return [], []
