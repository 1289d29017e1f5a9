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

Run standalone: `python -m tests.servers.hub_server --root DIR [--port P] [--token T]`.
Modules: hub_state.py (repos, commits, objects), hub_handler.py (routes), this one (start,
stop, CLI).
"""

from __future__ import annotations

import argparse
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.servers.hub_handler import HubHandler
from tests.servers.hub_state import HubState


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
