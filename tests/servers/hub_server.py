"""A local stand-in for the Hugging Face Hub, served over real HTTP on 127.0.0.1.

`huggingface_hub` 2.x talks through httpx2, which respx/responses cannot intercept, so tests run
the real client (and `datasets.load_dataset`) against this server instead. Point the client at
it with `HF_ENDPOINT=<url>`, `HF_TOKEN=<token>`, `HF_HUB_DISABLE_XET=1` set before import.

Implemented (the requests huggingface_hub 2.4 and datasets 5.2 make, checked in their source
and by logging): the agent-harness registry (empty), repo create (409 with `url` when it
exists), validate-yaml, repo info by revision, preupload (regular vs LFS), the LFS batch API
with basic upload and verify, NDJSON commits (base64 files, LFS pointers, deletions), refs,
branch and tag creation, tree listing, paths-info and file resolve (GET/HEAD, Range).
Real-Hub rules it honours: commits go to branches only, tags are immutable (409), a commit that
changes nothing creates no commit, a missing repo answers 401 `RepoNotFound`, writes need a
token.

State (repos, commits, refs) is kept in `<root>/state.json` and file contents in
`<root>/objects/<sha256>`; `<root>/requests.log` records method, path and status of every
request, never headers. Tests read these files to check what was really stored.

Run standalone: `python tests/servers/hub_server.py --root DIR [--port P] [--token T]`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
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


def _tree_entries(files: dict[str, dict], base: str, recursive: bool) -> list[dict]:
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
                entries.setdefault(folder, _folder_entry(files, folder))
            if not recursive:
                break
        if len(parts) == 1 or recursive:
            entries[path] = _file_entry_json(path, files[path])
    return list(entries.values())


def _folder_entry(files: dict[str, dict], folder: str) -> dict:
    inside = sorted(p for p in files if p.startswith(folder + "/"))
    oid = hashlib.sha1(json.dumps([(p, files[p]["oid"]) for p in inside]).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "path": folder, "size": 0}


def _file_entry_json(path: str, entry: dict) -> dict:
    answer = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
    if entry["lfs"]:
        answer["lfs"] = entry["lfs"]
    return answer


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # quiet; see requests.log
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        token = auth[len("Bearer ") :]
        expected = self.server.expected_token
        if expected is not None and token != expected:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return token

    def _require_token(self) -> str:
        token = self._token()
        if token is None:
            raise HubHTTPError(401, "You must be authenticated to do this")
        return token

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server.log_request_line(self.command, self.path, status)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        segments = [unquote(part) for part in split.path.strip("/").split("/")]
        query = parse_qs(split.query)
        body = self._body() if self.command in ("POST", "PUT") else b""
        try:
            with self.server.state.lock:
                self._route(segments, query, body)
        except HubHTTPError as exc:
            headers = {"X-Error-Code": exc.code} if exc.code else {}
            headers["X-Error-Message"] = str(exc)
            payload = {"error": str(exc), **exc.extra}
            self._send(
                exc.status,
                json.dumps(payload).encode(),
                headers=headers,
                head=self.command == "HEAD",
            )

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # -- routing
    def _route(self, seg: list[str], query: dict, body: bytes) -> None:
        state = self.server.state
        method = self.command
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body))
        if seg[:2] == ["api", "agent-harnesses"] and method == "GET":
            # Best-effort client telemetry: an empty registry means "no agent detected".
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body))
        if seg[:1] == ["lfs-upload"] and method == "PUT":
            return self._lfs_upload(seg[1], body)
        if seg[:1] == ["lfs-verify"] and method == "POST":
            payload = json.loads(body)
            if not state.has_object(payload["oid"], payload["size"]):
                raise HubHTTPError(404, "object not found")
            return self._json(200, {"success": True})
        if seg[:1] == ["api"] and len(seg) >= 4 and seg[1] in REPO_TYPES:
            repo_type, repo_id = REPO_TYPES[seg[1]], f"{seg[2]}/{seg[3]}"
            return self._api_repo(method, repo_type, repo_id, seg[4:], query, body)
        # /{datasets/}{ns}/{name}.git/info/lfs/objects/batch and /{datasets/}{ns}/{name}/resolve/...
        repo_type = REPO_TYPES.get(seg[0], "model") if seg[0] in ("datasets", "spaces") else "model"
        rest = seg[1:] if seg[0] in ("datasets", "spaces") else seg
        if (
            len(rest) >= 3
            and rest[1].endswith(".git")
            and rest[2:] == ["info", "lfs", "objects", "batch"]
        ):
            repo_id = f"{rest[0]}/{rest[1][:-4]}"
            return self._lfs_batch(repo_type, repo_id, json.loads(body))
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{rest[0]}/{rest[1]}"
            return self._resolve(repo_type, repo_id, rest[3], "/".join(rest[4:]))
        raise HubHTTPError(404, f"no route for {method} {self.path}")

    def _api_repo(
        self, method: str, repo_type: str, repo_id: str, rest: list[str], query: dict, body: bytes
    ) -> None:
        state = self.server.state
        action = rest[0] if rest else ""
        token = (
            self._token()
            if action in ("", "revision", "refs", "tree", "paths-info")
            else (self._require_token())
        )
        repo = state.repo(repo_type, repo_id, token)
        if method == "GET" and action in ("", "revision"):
            revision = rest[1] if action == "revision" else "main"
            return self._repo_info(repo, state.resolve(repo, revision))
        if method == "GET" and action == "refs":
            return self._refs(repo)
        if method == "GET" and action == "tree":
            sha = state.resolve(repo, rest[1])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._tree(repo, sha, "/".join(rest[2:]), recursive)
        if method == "POST" and action == "paths-info":
            sha = state.resolve(repo, rest[1])
            paths = parse_qs(body.decode()).get("paths", [])
            return self._paths_info(repo, sha, paths)
        if method == "POST" and action == "preupload":
            return self._preupload(repo, rest[1], json.loads(body))
        if method == "POST" and action == "commit":
            return self._commit(repo, rest[1], body)
        if method == "POST" and action == "tag":
            return self._create_tag(repo, rest[1], json.loads(body))
        if method == "POST" and action == "branch":
            payload = json.loads(body) if body else {}
            return self._create_branch(repo, rest[1], payload.get("startingPoint"))
        raise HubHTTPError(404, f"no route for {method} {self.path}")

    # -- endpoints
    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.server.url}/{_URL_PREFIX[repo_type]}{repo_id}"

    def _create_repo(self, payload: dict) -> None:
        self._require_token()
        state = self.server.state
        repo_type = payload.get("type") or "model"
        name, organization = payload["name"], payload.get("organization")
        if not organization:
            raise HubHTTPError(400, "this stand-in needs an explicit namespace (ORG/NAME)")
        repo_id = f"{organization}/{name}"
        url = self._repo_url(repo_type, repo_id)
        if (repo_type, repo_id) in state.repos:
            raise HubHTTPError(409, "You already created this repo", url=url)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        state.create_repo(repo_type, repo_id, private)
        state.save()
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        content = payload.get("content", "")
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
        if match and not isinstance(metadata, dict):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _repo_info(self, repo: Repo, sha: str) -> None:
        commit = repo.commits[sha]
        self._json(
            200,
            {
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "lastModified": commit["date"],
                "siblings": [{"rfilename": path} for path in sorted(commit["files"])],
            },
        )

    def _refs(self, repo: Repo) -> None:
        def refs(kind: str, table: dict[str, str]) -> list[dict]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}
                for name, sha in sorted(table.items())
            ]

        self._json(
            200,
            {
                "branches": refs("heads", repo.branches),
                "tags": refs("tags", repo.tags),
                "converts": [],
                "pullRequests": [],
            },
        )

    def _tree(self, repo: Repo, sha: str, base: str, recursive: bool) -> None:
        files = repo.commits[sha]["files"]
        if base and base not in files and not any(p.startswith(base + "/") for p in files):
            raise HubHTTPError(404, f"Entry not found: {base}", "EntryNotFound")
        self._json(200, _tree_entries(files, base, recursive))

    def _paths_info(self, repo: Repo, sha: str, paths: list[str]) -> None:
        files = repo.commits[sha]["files"]
        answer = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                answer.append(_file_entry_json(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                answer.append(_folder_entry(files, path))
        self._json(200, answer)

    def _preupload(self, repo: Repo, revision: str, payload: dict) -> None:
        state = self.server.state
        files = repo.commits[state.resolve(repo, revision)]["files"]
        answer = []
        for item in payload["files"]:
            path = item["path"]
            sample = base64.b64decode(item["sample"])
            existing = files.get(path)
            # The client compares this oid with its own: sha256 for LFS, git sha1 otherwise.
            oid = (
                None
                if existing is None
                else (existing["lfs"]["oid"] if existing["lfs"] else existing["oid"])
            )
            answer.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if state.is_lfs(path, sample, item["size"]) else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._json(200, {"files": answer, "commitOid": state.resolve(repo, revision)})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        state = self.server.state
        state.repo(repo_type, repo_id, self._require_token())
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not state.has_object(obj["oid"], obj["size"]):
                answer["actions"] = {
                    "upload": {"href": f"{self.server.url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.server.url}/lfs-verify", "header": {}},
                }
            objects.append(answer)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_upload(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubHTTPError(400, "uploaded content does not match its sha256")
        self.server.state.put_object(body)
        self._json(200, {})

    def _commit(self, repo: Repo, revision: str, body: bytes) -> None:
        state = self.server.state
        branch = unquote(revision).removeprefix("refs/heads/")
        if branch not in repo.branches:
            if branch in repo.tags:
                raise HubHTTPError(400, f"Cannot commit to tag {branch}: commits go to branches")
            raise HubHTTPError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.branches[branch]
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubHTTPError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != head:
            raise HubHTTPError(412, "parent commit is not the head of the branch")
        files = dict(repo.commits[head]["files"])
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = state.file_entry(
                    base64.b64decode(value["content"]), lfs=False
                )
            elif key == "lfsFile":
                if not state.has_object(value["oid"], value.get("size")):
                    raise HubHTTPError(422, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = state.file_entry(state.get_object(value["oid"]), lfs=True)
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: e for p, e in files.items() if not p.startswith(folder)}
            else:
                raise HubHTTPError(400, f"unknown commit operation {key!r}")
        if files == repo.commits[head]["files"]:
            sha = head  # nothing changed: like the Hub, no new commit
        else:
            sha = state.new_commit(repo, head, header.get("summary", ""), files)
            repo.branches[branch] = sha
            state.save()
        url = f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{sha}"
        self._json(200, {"success": True, "commitOid": sha, "commitUrl": url, "hookOutput": ""})

    def _create_tag(self, repo: Repo, revision: str, payload: dict) -> None:
        state = self.server.state
        tag = payload["tag"]
        if tag in repo.tags:
            raise HubHTTPError(409, f"Tag {tag} already exists; tags are immutable")
        repo.tags[tag] = state.resolve(repo, revision)
        state.save()
        self._json(200, {})

    def _create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        state = self.server.state
        if branch in repo.branches:
            raise HubHTTPError(409, f"Branch {branch} already exists")
        repo.branches[branch] = state.resolve(repo, starting_point or "main")
        state.save()
        self._json(200, {})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        state = self.server.state
        repo = state.repo(repo_type, repo_id, self._token())
        sha = state.resolve(repo, revision)
        entry = repo.commits[sha]["files"].get(path)
        if entry is None:
            raise HubHTTPError(404, f"Entry not found: {path}", "EntryNotFound")
        data = state.get_object(entry["sha256"])
        etag = entry["lfs"]["oid"] if entry["lfs"] else entry["oid"]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(entry["size"])
        status = 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and self.command == "GET":
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            else:  # a suffix range: the last N bytes
                start, end = max(0, len(data) - int(last)), len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(
            status,
            data,
            content_type="application/octet-stream",
            headers=headers,
            head=self.command == "HEAD",
        )


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        root: Path,
        port: int = 0,
        expected_token: str | None = None,
        lfs_threshold: int = 10 * 1024 * 1024,
    ) -> None:
        super().__init__(("127.0.0.1", port), HubHandler)
        self.root = Path(root)
        self.state = HubState(self.root, lfs_threshold)
        self.expected_token = expected_token
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def log_request_line(self, method: str, path: str, status: int) -> None:
        with self._log_lock, open(self.root / "requests.log", "a") as log:
            log.write(f"{method} {path} {status}\n")

    def start(self) -> HubServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", help="accept only this bearer token")
    args = parser.parse_args()
    server = HubServer(args.root, args.port, args.token)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
