"""MicroBatches: requests of any stage gathered into batches for a remote executor.

`send` here is a plain in-process executor that answers a batch on a thread (the real one is
a Prefect task on Dask, tested in tests/test_flows.py); what is checked is the batching and
that every request gets its own answer or its batch's failure.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest

from selfinstruct.llm import Completion, Request
from selfinstruct.remote_batches import MicroBatches


class Executor:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.lock = threading.Lock()

    def send(self, endpoint: dict[str, Any], requests: list[Request]
             ) -> concurrent.futures.Future[list[Completion]]:
        with self.lock:
            self.batches.append([r.nonce for r in requests])

        def answer() -> list[Completion]:
            if self.fail:
                raise ConnectionError("worker lost")
            return [Completion(f"answer to {r.nonce}", "stop") for r in requests]

        return self.pool.submit(answer)


def _request(n: int) -> Request:
    return Request("bootstrap", f"prompt {n}", {}, f"gen-{n}")


def test_full_batches_go_at_once_and_the_rest_on_close() -> None:
    executor = Executor()
    batches = MicroBatches(executor.send, {}, max_batch=4, wait=3600)  # no timer flush
    futures = [batches.submit(_request(n)) for n in range(10)]
    assert executor.batches == [[f"gen-{n}" for n in range(4)],
                                [f"gen-{n}" for n in range(4, 8)]]
    batches.close()
    assert executor.batches[-1] == ["gen-8", "gen-9"]
    assert [f.result().text for f in futures] == [f"answer to gen-{n}" for n in range(10)]


def test_a_lone_request_is_sent_after_the_wait() -> None:
    executor = Executor()
    batches = MicroBatches(executor.send, {}, max_batch=64, wait=0.01)
    assert batches.submit(_request(1)).result(timeout=10).text == "answer to gen-1"
    assert executor.batches == [["gen-1"]]
    batches.close()


def test_a_failed_batch_fails_each_of_its_requests() -> None:
    executor = Executor(fail=True)
    batches = MicroBatches(executor.send, {}, max_batch=2, wait=3600)
    futures = [batches.submit(_request(n)) for n in range(2)]
    for future in futures:
        with pytest.raises(ConnectionError, match="worker lost"):
            future.result(timeout=10)
    batches.close()
