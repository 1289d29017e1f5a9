"""The LLM client against the test server's fault modes: retried, or recorded — never a crash."""

from __future__ import annotations

import time

import pytest

from selfinstruct.llm import LLMClient, Request, RetryPolicy, parse_retry_after
from tests.servers.openai_server import start_server

PROMPT = "Come up with a series of tasks:\n1. Say hello to the team.\n2."


def client_for(server, api="chat", retries=3, timeout=5.0, concurrency=4) -> LLMClient:
    return LLMClient(base_url=server.base_url, api_key="k", model="test-model", api=api,
                     concurrency=concurrency, timeout=timeout,
                     retry=RetryPolicy(max_retries=retries, base_delay=0.01, max_delay=0.05))


def requests(n: int) -> list[Request]:
    return [Request("bootstrap", f"{PROMPT} {i}", {"max_tokens": 64, "temperature": 0.7}, "n")
            for i in range(n)]


def test_answers_come_back_in_request_order_with_usage():
    with start_server(latency_ms=20) as server, client_for(server, concurrency=8) as client:
        answers = client.run_batch([
            Request("bootstrap", PROMPT + f" {i}", {"max_tokens": 64}, "x") for i in range(16)
        ])
        again = client.run_batch([Request("bootstrap", PROMPT + " 3", {"max_tokens": 64}, "x")])
    assert answers[3].text == again[0].text  # order preserved under concurrency
    assert all(a.prompt_tokens > 0 and a.completion_tokens > 0 and a.request_id for a in answers)


@pytest.mark.parametrize("kind", ["429", "429_retry_after", "500", "502", "503", "reset",
                                  "empty_choices", "truncated_body", "non_json"])
def test_transient_faults_are_retried_until_success(kind):
    with start_server(fault_rate=1.0, fault_kinds=[kind], fault_seed=1) as server, \
            client_for(server) as client:
        answers = client.run_batch(requests(4))
        stats = server.stats()
    assert all(a.error is None and a.text for a in answers), [a.error for a in answers]
    assert all(a.attempts == 3 for a in answers)  # the server faults each request twice
    assert stats["faults_total"] == 8 and stats["successes_total"] == 4


def test_retry_after_is_honoured_and_shared():
    with start_server(fault_rate=1.0, fault_kinds=["429_retry_after"], fault_seed=1,
                      retry_after=0.3) as server, client_for(server) as client:
        start = time.monotonic()
        answers = client.run_batch(requests(2))
        elapsed = time.monotonic() - start
    assert all(a.error is None for a in answers)
    assert elapsed >= 0.55  # two 429s in a row, each asking for 0.3 s


def test_exhausted_retries_are_returned_as_errors_not_raised():
    with start_server(fault_rate=1.0, fault_kinds=["503"], fault_seed=1) as server, \
            client_for(server, retries=1) as client:
        answers = client.run_batch(requests(2))
    assert [a.error.split(":")[0] for a in answers] == ["http_503", "http_503"]


def test_hanging_server_times_out_and_is_retried():
    with start_server(fault_rate=1.0, fault_kinds=["hang"], fault_seed=1,
                      hang_seconds=5) as server, client_for(server, timeout=0.5) as client:
        answers = client.run_batch(requests(1))
    assert answers[0].error is None and answers[0].attempts == 3


def test_client_errors_are_not_retried():
    with start_server() as server, LLMClient(
            base_url=server.base_url.replace("/v1", "/nope"), api_key="k", model="m",
            api="chat", retry=RetryPolicy(max_retries=3, base_delay=0.01)) as client:
        (answer,) = client.run_batch(requests(1))
    assert answer.error.startswith("http_404") and answer.attempts == 1


def test_length_finish_reason_is_reported():
    with start_server(fault_rate=1.0, fault_kinds=["length"], fault_seed=1) as server, \
            client_for(server) as client:
        (answer,) = client.run_batch(requests(1))
    assert answer.finish_reason == "length" and answer.error is None


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9
