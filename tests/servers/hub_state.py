"""The Hub stand-in's state: repos, commits, refs and content-addressed objects on disk.

Why a module of its own: the HTTP handler (tests/servers/hub_handler.py) only translates
requests; what a repo holds, how LFS is decided and how trees are listed lives here, where
tests can read it back from ``<root>/state.json`` and ``<root>/objects``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_BINARY_SUFFIXES = (".parquet", ".arrow", ".bin", ".gz", ".zip", ".tar", ".safetensors", ".pt")
_GITATTRIBUTES = b"".join(
    b"*%s filter=lfs diff=lfs merge=lfs -text\n" % suffix.encode() for suffix in _BINARY_SUFFIXES
)


class HubHTTPError(Exception):
    """An HTTP error answer; `code` becomes X-Error-Code like on the real Hub."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    spec = "https://git-lfs.github.com/spec/v1"
    return f"version {spec}\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # commit sha -> {"parent", "title", "date", "files": {path: entry}}
    commits: dict[str, dict] = field(default_factory=dict)


class HubState:
    """Repos, commits and objects; every mutation is persisted before the answer is sent."""

    def __init__(self, root: Path, lfs_threshold: int) -> None:
        self.root = root
        self.objects = root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self._counter = 0

    # -- storage
    def put_object(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.objects / sha256
        if not path.exists():
            path.write_bytes(data)
        return sha256

    def get_object(self, sha256: str) -> bytes:
        return (self.objects / sha256).read_bytes()

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        path = self.objects / sha256
        return path.is_file() and (size is None or path.stat().st_size == size)

    def save(self) -> None:
        state = {
            f"{repo.repo_type}:{repo.repo_id}": {
                "private": repo.private,
                "branches": repo.branches,
                "tags": repo.tags,
                "commits": repo.commits,
            }
            for repo in self.repos.values()
        }
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.root / "state.json")

    # -- repos and revisions
    def repo(self, repo_type: str, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token is None):
            # Like the Hub: private and missing repos look the same to outsiders.
            raise HubHTTPError(
                401, f"Repository Not Found for url: {repo_type}s/{repo_id}.", "RepoNotFound"
            )
        return repo

    def resolve(self, repo: Repo, revision: str) -> str:
        revision = unquote(revision)
        for prefix, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            if revision.startswith(prefix) and revision[len(prefix) :] in refs:
                return refs[revision[len(prefix) :]]
        if revision in repo.branches:
            return repo.branches[revision]
        if revision in repo.tags:
            return repo.tags[revision]
        if revision in repo.commits:
            return revision
        raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def new_commit(self, repo: Repo, parent: str | None, title: str, files: dict) -> str:
        self._counter += 1
        seed = json.dumps([parent, title, files, self._counter, time.time()], sort_keys=True)
        sha = hashlib.sha1(seed.encode()).hexdigest()
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        repo.commits[sha] = {"parent": parent, "title": title, "date": date, "files": files}
        return sha

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private)
        entry = self.file_entry(_GITATTRIBUTES, lfs=False)
        repo.branches["main"] = self.new_commit(
            repo, None, "initial commit", {".gitattributes": entry}
        )
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def file_entry(self, data: bytes, lfs: bool) -> dict:
        sha256 = self.put_object(data)
        if not lfs:
            return {"size": len(data), "oid": git_blob_sha1(data), "sha256": sha256, "lfs": None}
        pointer = _lfs_pointer(sha256, len(data))
        return {
            "size": len(data),
            "oid": git_blob_sha1(pointer),
            "sha256": sha256,
            "lfs": {"oid": sha256, "size": len(data), "pointerSize": len(pointer)},
        }

    def is_lfs(self, path: str, sample: bytes, size: int) -> bool:
        binary = b"\0" in sample
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A sample may end inside a multi-byte character; only earlier errors mean binary.
            binary = binary or exc.start < len(sample) - 3
        return binary or size >= self.lfs_threshold or path.endswith(_BINARY_SUFFIXES)


def tree_entries(files: dict[str, dict], base: str, recursive: bool) -> list[dict]:
    """Entries under folder `base` ('' is the root), like GET /api/.../tree."""
    prefix = f"{base}/" if base else ""
    entries: dict[str, dict] = {}
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if depth == 1 or recursive:
                entries.setdefault(folder, folder_entry(files, folder))
            if not recursive:
                break
        if len(parts) == 1 or recursive:
            entries[path] = file_entry_json(path, files[path])
    return list(entries.values())


def folder_entry(files: dict[str, dict], folder: str) -> dict:
    inside = sorted(p for p in files if p.startswith(folder + "/"))
    oid = hashlib.sha1(json.dumps([(p, files[p]["oid"]) for p in inside]).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "path": folder, "size": 0}


def file_entry_json(path: str, entry: dict) -> dict:
    answer = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry["lfs"]:
        answer["lfs"] = entry["lfs"]
    return answer
