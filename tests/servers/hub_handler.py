"""The Hub stand-in's request handler: the routes huggingface_hub and datasets call.

Why a module of its own: routing and wire shapes are one concern; the state they read and
change is tests/servers/hub_state.py, starting and stopping is tests/servers/hub_server.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.servers.http_body import read_body
from tests.servers.hub_state import (
    REPO_TYPES,
    URL_PREFIX,
    HubHTTPError,
    Repo,
    file_entry_json,
    folder_entry,
    tree_entries,
)

if TYPE_CHECKING:
    from tests.servers.hub_server import HubServer

class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # quiet; see requests.log
        pass

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
        body = read_body(self.rfile, self.headers) if self.command in ("POST", "PUT") else b""
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
        return f"{self.server.url}/{URL_PREFIX[repo_type]}{repo_id}"

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
        self._json(200, tree_entries(files, base, recursive))

    def _paths_info(self, repo: Repo, sha: str, paths: list[str]) -> None:
        files = repo.commits[sha]["files"]
        answer = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                answer.append(file_entry_json(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                answer.append(folder_entry(files, path))
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
