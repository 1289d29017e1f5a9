"""Loading versions with `datasets`: stable Features, and caches that never mix datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfinstruct import dataset
from selfinstruct.dataset import TRAIN_FILE
from selfinstruct.dataset.schema import TRAIN_SCHEMA, as_loaded
from tests.dataset_samples import write_sample

ROOT = Path(__file__).resolve().parent.parent


def test_load_uses_stable_features(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = write_sample(tmp_path / "demo", ja=True)  # is_classification etc. all null
    loaded = dataset.load(folder, cache_dir=tmp_path / "cache")
    assert loaded.features == dataset.train_features()
    assert loaded.features["is_classification"] == datasets.Value("bool")
    assert loaded.to_list() == [as_loaded(json.loads(line), TRAIN_SCHEMA)
                                for line in (folder / TRAIN_FILE).open()]
    # The card's dataset_info gives a plain load_dataset(folder) the same types.
    plain = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert plain.features == dataset.train_features()


_LOAD_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import datasets
    from selfinstruct.dataset import load

    plain = datasets.load_dataset(sys.argv[1], split="train")
    ours = load(sys.argv[1])
    print(json.dumps([plain.to_list(), ours.to_list(), plain.cache_files[0]["filename"]]))
    """
)


def test_equal_version_names_of_two_datasets_never_share_a_cache(tmp_path: Path) -> None:
    """data/A/v0001 then data/B/v0001, each in its own process, one HF_DATASETS_CACHE: each
    must load its own rows (the card's config name used to be "default" for every version)."""
    pytest.importorskip("datasets")
    folders = {
        "A": write_sample(tmp_path / "data" / "A", rows=4),
        "B": write_sample(tmp_path / "data" / "B", rows=6, first=10),
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))},
        "PYTHONPATH": str(ROOT),
        "HF_DATASETS_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }
    cache_files = set()
    for name in ("A", "B", "A"):  # and A again: the cache now holds both
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_IN_A_FRESH_PROCESS, str(folders[name])],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        plain, ours, cache_file = json.loads(done.stdout.splitlines()[-1])
        expected = [as_loaded(json.loads(line), TRAIN_SCHEMA)
                    for line in (folders[name] / TRAIN_FILE).open()]
        assert plain == expected and ours == expected, name
        cache_files.add(cache_file)
    assert len(cache_files) == 2
