"""Publishing to the Hub: the real huggingface_hub client and datasets against a local stand-in.

huggingface_hub and datasets read HF_ENDPOINT and friends at import time, so the client side
runs in a subprocess with its environment set up front; the stand-in runs in this process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct._errors import InputError
from selfinstruct.dataset import TRAIN_FILE, write_version
from selfinstruct.dataset.schema import TRAIN_SCHEMA, as_loaded
from tests.dataset_samples import (
    empty_version,
    manifest,
    rejected_row,
    train_row,
    write_sample,
)
from tests.hub_env import hub_client_env
from tests.servers.hub_server import HubServer

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "hf_SENTINELtokenNEVERtoBEshown0123456789"
REPO = "selfinstruct-tests/demo"

_CLIENT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    from huggingface_hub import CommitOperationAdd, HfApi
    import datasets

    from selfinstruct._errors import InputError
    from selfinstruct.hub import PUBLISHED_FILES, publish
    from tests.dataset_samples import run_cli

    v1, v2, repo, dist = sys.argv[1:5]
    report = {}

    def refused(call):
        try:
            call()
        except InputError as exc:
            return str(exc)
        return None

    report["wrong_token"] = refused(lambda: publish(v1, repo, token="hf_" + "w" * 30))
    report["v1"] = publish(v1, repo)
    report["cli_v2"] = run_cli(["release", v2, "--output-dir", dist, "--push-to-hub", repo])
    report["duplicate"] = refused(lambda: publish(v1, repo))
    report["cli_duplicate"] = run_cli(["release", v1, "--output-dir", dist, "--push-to-hub", repo])

    api = HfApi()
    head = api.dataset_info(repo).sha
    same = api.create_commit(
        repo,
        [CommitOperationAdd(name, str(Path(v2) / name)) for name in PUBLISHED_FILES],
        repo_type="dataset",
        commit_message="identical re-upload",
    )
    report["noop"] = {"head": head, "commit": same.oid, "after": api.dataset_info(repo).sha}
    for label, call in {
        "retag": lambda: api.create_tag(repo, tag="v0001", repo_type="dataset"),
        "commit_to_tag": lambda: api.create_commit(
            repo, [CommitOperationAdd("x.txt", b"x")], commit_message="x",
            repo_type="dataset", revision="v0001",
        ),
    }.items():
        try:
            call()
            report[label] = None
        except Exception as exc:
            report[label] = exc.response.status_code

    refs = api.list_repo_refs(repo, repo_type="dataset")
    report["tags"] = {ref.name: ref.target_commit for ref in refs.tags}
    report["loaded"] = {}
    for tag in ("v0001", "v0002"):
        ds = datasets.load_dataset(repo, revision=tag, split="train")
        report["loaded"][tag] = {"rows": ds.to_list(), "features": repr(ds.features)}
    print(json.dumps(report, ensure_ascii=False))
    """
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    # A small LFS threshold so one commit carries both inline (base64) and LFS files.
    root = tmp_path_factory.mktemp("hub")
    with HubServer(root, expected_token=SENTINEL, lfs_threshold=2048) as server:
        yield server


def _client_env(home: Path, hub: HubServer) -> dict[str, str]:
    return hub_client_env(hub.url, SENTINEL, home)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, hub: HubServer) -> dict:
    """Two versions published (library, then CLI) and read back with datasets.load_dataset."""
    base = tmp_path_factory.mktemp("publish")
    v1 = write_sample(base / "data" / "demo", rows=6, ja=True)  # nullable fields all null
    rows = [train_row(n) for n in range(40)]
    for n, row in enumerate(rows):
        row["is_classification"] = n % 2 == 0
        row["provenance"]["avg_similarity"] = n / 7
    v2 = write_version(base / "data" / "demo", rows, [rejected_row(0)], manifest())
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(v1), str(v2), REPO, str(base / "dist")],
        cwd=ROOT,
        env=_client_env(base / "hf_home", hub),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "report": json.loads(done.stdout.splitlines()[-1]),
        "stdout": done.stdout,
        "stderr": done.stderr,
        "base": base,
        "versions": {"v0001": v1, "v0002": v2},
    }


def _train_rows(folder: Path) -> list[dict]:
    """The rows as written, with each optional field they leave out as null: how `datasets`
    gives back a column that the card's features declare (persona_id, messages, …)."""
    return [as_loaded(json.loads(line), TRAIN_SCHEMA)
            for line in (folder / TRAIN_FILE).read_text().splitlines()]


def test_each_tag_loads_exactly_the_rows_written(published: dict) -> None:
    loaded = published["report"]["loaded"]
    for tag, folder in published["versions"].items():
        assert loaded[tag]["rows"] == _train_rows(folder)
    # The card's dataset_info pins types: all-null columns in v0001 load like v0002's.
    assert loaded["v0001"]["features"] == loaded["v0002"]["features"]
    assert "'is_classification': Value('bool')" in loaded["v0001"]["features"]


def test_publish_result_and_tags_point_at_the_commits(published: dict, hub: HubServer) -> None:
    report = published["report"]
    assert report["v1"]["tag"] == "v0001"
    assert report["v1"]["commit_url"].endswith(
        f"/datasets/{REPO}/commit/{report['v1']['commit_sha']}"
    )
    assert report["cli_v2"] == 0
    assert report["tags"]["v0001"] == report["v1"]["commit_sha"]
    assert report["tags"]["v0002"] != report["v1"]["commit_sha"]
    state = json.loads((hub.root / "state.json").read_text())[f"dataset:{REPO}"]
    tagged = state["commits"][state["tags"]["v0002"]]["files"]
    assert set(tagged) == {
        ".gitattributes",
        "README.md",
        "manifest.json",
        "manifest.sha256",
        "train.jsonl",
        "rejected.jsonl",
    }
    v2 = published["versions"]["v0002"]
    for name in ("train.jsonl", "README.md", "manifest.json", "manifest.sha256", "rejected.jsonl"):
        stored = hub.root / "objects" / tagged[name]["sha256"]
        assert stored.read_bytes() == (v2 / name).read_bytes()
    assert tagged["train.jsonl"]["lfs"] is not None  # large: went through LFS
    assert tagged["rejected.jsonl"]["lfs"] is None  # small text: inline base64
    assert "published: " in published["stdout"]


def test_a_published_tag_is_never_moved(published: dict) -> None:
    report = published["report"]
    assert "tag v0001 already exists on the Hub and tags are immutable" in report["duplicate"]
    assert report["cli_duplicate"] == 2
    err_lines = [line for line in published["stderr"].splitlines() if "selfinstruct:" in line]
    assert err_lines == [
        f"selfinstruct: error: {REPO}: tag v0001 already exists on the Hub and tags are "
        "immutable; write a new version to publish changes"
    ]
    assert report["retag"] == 409  # the stand-in enforces it too
    assert report["commit_to_tag"] == 400  # commits go to branches


def test_an_identical_reupload_is_a_noop_commit(published: dict) -> None:
    noop = published["report"]["noop"]
    assert noop["commit"] == noop["head"] == noop["after"]


def test_the_token_never_appears_anywhere(published: dict, hub: HubServer) -> None:
    report = published["report"]
    assert "401" in report["wrong_token"] and "could not create the repo" in report["wrong_token"]
    assert "hf_www" not in report["wrong_token"]
    assert SENTINEL not in published["stdout"] + published["stderr"]
    for root in (hub.root, published["base"]):
        for path in root.rglob("*"):
            if path.is_file():
                assert SENTINEL.encode() not in path.read_bytes(), path
    assert (hub.root / "requests.log").read_text().count("POST /api/repos/create") >= 3


def test_errors_from_the_client_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    folder = write_sample(tmp_path / "demo")

    class LeakyApi:
        def __init__(self, token: str) -> None:
            self.token = token

        def create_repo(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError(f"proxy said: Authorization: Bearer {self.token} rejected")

    monkeypatch.setattr(huggingface_hub, "HfApi", LeakyApi)
    from selfinstruct.hub import publish

    with pytest.raises(InputError) as caught:
        publish(folder, REPO, token=SENTINEL)
    assert SENTINEL not in str(caught.value)
    assert "proxy said: [REDACTED] rejected" in str(caught.value)
    assert caught.value.__cause__ is None


def test_bad_repo_ids_and_invalid_versions_are_refused_before_any_request(
    tmp_path: Path,
) -> None:
    from selfinstruct.hub import publish

    folder = write_sample(tmp_path / "demo")
    with pytest.raises(InputError, match="expected ORG/NAME"):
        publish(folder, "no-namespace", token=SENTINEL)
    (folder / TRAIN_FILE).write_text("")
    with pytest.raises(InputError, match=r"train\.jsonl"):
        publish(folder, REPO, token=SENTINEL)


def test_an_empty_version_is_refused_before_any_request(tmp_path: Path) -> None:
    from selfinstruct.hub import publish

    folder = empty_version(tmp_path / "demo")
    with pytest.raises(InputError) as caught:
        publish(folder, REPO, token=SENTINEL)  # no server: a request would fail differently
    assert str(caught.value) == f"{folder}: 0 train rows: refusing to publish an empty version"


def _call(hub: HubServer, method: str, path: str, body: bytes = b"", **headers: str):
    request = urllib.request.Request(
        hub.url + path,
        data=body or None,
        method=method,
        headers={"Authorization": f"Bearer {SENTINEL}", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_stand_in_rules_without_the_client(hub: HubServer) -> None:
    """The stand-in's own behaviour, for requests the client happened not to make above."""
    status, _, _ = _call(
        hub,
        "POST",
        "/api/repos/create",
        json.dumps({"name": "raw", "organization": "t", "type": "dataset"}).encode(),
        **{"Content-Type": "application/json"},
    )
    assert status == 200
    line = {
        "key": "file",
        "value": {
            "path": "d/a.txt",
            "encoding": "base64",
            "content": base64.b64encode(b"0123456789").decode(),
        },
    }
    ndjson = b"\n".join(
        json.dumps(x).encode() for x in ({"key": "header", "value": {"summary": "add"}}, line)
    )
    first = json.loads(_call(hub, "POST", "/api/datasets/t/raw/commit/main", ndjson)[2])
    again = json.loads(_call(hub, "POST", "/api/datasets/t/raw/commit/main", ndjson)[2])
    assert again["commitOid"] == first["commitOid"]  # identical content: no new commit

    status, headers, body = _call(
        hub, "GET", "/datasets/t/raw/resolve/main/d/a.txt", Range="bytes=2-5"
    )
    assert (status, body, headers["Content-Range"]) == (206, b"2345", "bytes 2-5/10")
    assert headers["X-Repo-Commit"] == first["commitOid"]
    tree = json.loads(_call(hub, "GET", "/api/datasets/t/raw/tree/main")[2])
    assert {(e["type"], e["path"]) for e in tree} == {
        ("file", ".gitattributes"),
        ("directory", "d"),
    }
    tree = json.loads(_call(hub, "GET", "/api/datasets/t/raw/tree/main?recursive=true")[2])
    assert ("file", "d/a.txt") in {(e["type"], e["path"]) for e in tree}
    info = json.loads(
        _call(
            hub,
            "POST",
            "/api/datasets/t/raw/paths-info/main",
            b"paths=d%2Fa.txt&paths=missing",
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )[2]
    )
    assert [(e["path"], e["size"]) for e in info] == [("d/a.txt", 10)]
    status, headers, _ = _call(hub, "GET", "/datasets/t/nope/resolve/main/x")
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
