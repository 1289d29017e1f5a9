"""What a long run keeps in memory per accepted task: stored compactly, read unchanged."""

from __future__ import annotations

import json
import pickle
import sys

from selfinstruct.records import Neighbours, Task


def _pairs() -> list[tuple[str, float]]:
    return [(f"Write a poem about topic {k}.", 1 / (k + 3)) for k in range(10)]


def _deep_size(pairs: object) -> int:
    if isinstance(pairs, Neighbours):
        return sys.getsizeof(pairs) + sys.getsizeof(pairs._texts) + sys.getsizeof(pairs._scores)
    assert isinstance(pairs, list)
    return sys.getsizeof(pairs) + sum(sys.getsizeof(p) + sys.getsizeof(p[1]) for p in pairs)


def test_a_task_stores_its_neighbours_compactly() -> None:
    pairs = _pairs()
    task = Task("task-000001", "Write a haiku.", 1, "h" * 64, None, pairs, 0.2)
    assert isinstance(task.most_similar, Neighbours)
    # Less than half the memory of the list of tuples it was given ...
    assert _deep_size(task.most_similar) * 2 < _deep_size(pairs)
    # ... and the texts are the given strings themselves (the pool's), not copies.
    assert all(a is b for (a, _), (b, _) in zip(task.most_similar, pairs, strict=True))


def test_neighbours_read_exactly_like_the_pairs() -> None:
    pairs = _pairs()
    near = Neighbours(pairs)
    assert list(near) == pairs and near == pairs and len(near) == 10
    assert near[0] == pairs[0] and near[-1] == pairs[-1] and near[2:4] == pairs[2:4]
    # The same floats, so train.jsonl has the same bytes.
    assert json.dumps([{"instruction": t, "score": s} for t, s in near]) == json.dumps(
        [{"instruction": t, "score": s} for t, s in pairs])
    assert Neighbours() == [] and not Neighbours()
    task = Task("task-000001", "Write a haiku.", 1, "h" * 64, None, pairs, 0.2)
    assert pickle.loads(pickle.dumps(task)) == task  # e.g. sent to a Dask worker
