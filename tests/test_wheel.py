"""The wheel on its own: what `pip install selfinstruct-*.whl` gives a user outside the checkout.

The checkout hides packaging mistakes: run from it, `import flows` (or `tests`) succeeds
although the wheel does not ship them. So the wheel is built, installed into a fresh venv in
a temp dir, and the commands that run Prefect flows are run from a temp cwd with no
PYTHONPATH, against the loopback OpenAI-compatible server and this session's Prefect server.

Dependencies: installing the wheel's ~150 dependencies into the fresh venv from local wheels
would take minutes, so the venv gets them through a ``.pth`` line naming the project venv's
site-packages. That directory is appended to ``sys.path`` but its own ``.pth`` files are not
processed (only site directories' are), so the project's editable-install hook — the one that
puts the checkout on ``sys.path`` — stays inactive, and the venv's own site-packages, where
the wheel's `selfinstruct` is, comes first. The test checks both (`selfinstruct` from the
wheel, `flows` and `tests` not importable). The wheel is built with pip from local wheels
only (``--no-index``): no network.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from selfinstruct.dataset import read_manifest
from tests.servers.openai_server import start_server
from tests.test_flows import harness_env

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_TOP_LEVEL = {"flows", "tests", "bench"}


def _run(argv: list[str | Path], cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"{argv[:3]}: {done.stderr[-3000:]}"
    return done


@dataclass(frozen=True)
class Installed:
    """A venv holding only the wheel (its dependencies come from the project venv)."""

    bin: Path
    cwd: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def installed(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    # The build backend is the project venv's hatchling (the [dev] extra): no network, no
    # isolated build environment to fetch.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
          "--no-build-isolation", "--wheel-dir", base / "dist", ROOT])
    (wheel,) = (base / "dist").glob("selfinstruct-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
          "--quiet", "--no-deps", "--no-index", wheel])
    purelib = _run([venv / "bin" / "python", "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "project_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    cwd = base / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in harness_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    yield Installed(bin=venv / "bin", cwd=cwd, env={**env, "OPENAI_API_KEY": "sk-wheel-test"})


def test_the_installed_package_is_the_wheel_alone(installed):
    code = ("import importlib.util, json, selfinstruct; print(json.dumps([selfinstruct.__file__,"
            " [importlib.util.find_spec(n) is None for n in ('flows', 'tests', 'bench')]]))")
    done = _run([installed.bin / "python", "-c", code], cwd=installed.cwd, env=installed.env)
    location, missing = json.loads(done.stdout)
    assert Path(location).is_relative_to(installed.bin.parent)
    assert missing == [True, True, True]


def test_generate_and_release_through_prefect_from_the_wheel(installed, tmp_path):
    data, dist = tmp_path / "data", tmp_path / "dist"
    with start_server() as server:
        done = _run([installed.bin / "selfinstruct", "generate", "--prefect",
                     "--seeds", "en_general", "--dataset", "wheel", "--num-instructions", "8",
                     "--data-dir", data, "--base-url", server.base_url, "--model",
                     "test-model", "--seed", "3"], cwd=installed.cwd, env=installed.env)
    version = Path(done.stdout.strip().splitlines()[-1])
    assert version.parent == data / "wheel" and version.name == "v0001"
    manifest = read_manifest(version)
    assert manifest["target"]["accepted"] == 8 and manifest["counts"]["train"] > 0

    done = _run([installed.bin / "selfinstruct", "release", version, "--prefect",
                 "--output-dir", dist], cwd=installed.cwd, env=installed.env)
    archive = dist / "wheel-v0001.tar.gz"
    assert done.stdout.startswith(f"release: {archive} (sha256 ") and archive.is_file()


def _top_level_imports(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_never_imports_the_checkout():
    """`flows/`, `tests/` and `bench/` are not in the wheel: the package may not need them."""
    offenders = {str(path.relative_to(ROOT)): sorted(found)
                 for path in sorted((ROOT / "selfinstruct").rglob("*.py"))
                 if (found := _top_level_imports(path) & FORBIDDEN_TOP_LEVEL)}
    assert offenders == {}
