"""Hostile endpoint answers (issue 12): never a hang, never a traceback, never a bad journal.

Every answer here comes from the real test server through `adversarial_proxy`, which rewrites
it on the wire; the client is the real ``openai`` SDK inside `LLMClient`, and the whole-run
tests run ``selfinstruct generate`` itself.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfinstruct.cli import main
from selfinstruct.llm import LLMClient, Request, RetryPolicy, Usage
from selfinstruct.ratelimit import MAX_WAIT
from selfinstruct.wire import MAX_BODY_BYTES
from tests.servers.adversarial_proxy import Plan, RunningProxy, start_proxy
from tests.servers.openai_server import RunningServer, start_server

PROMPT = "Come up with a series of tasks:\n1. Say hello to the team.\n2."
MALFORMED = ["no_message", "choices_string", "choices_null_item", "non_json", "truncated_json",
             "html_200"]
NO_CONTENT = ["content_null", "content_filter", "tool_calls"]


@pytest.fixture
def upstream() -> Iterator[RunningServer]:
    with start_server() as server:
        yield server


def client_for(proxy: RunningProxy, retries: int = 1, timeout: float = 5.0,
               api: str = "chat") -> LLMClient:
    return LLMClient(base_url=proxy.base_url, api_key="k", model="test-model", api=api,
                     concurrency=1, timeout=timeout,
                     retry=RetryPolicy(max_retries=retries, base_delay=0.01, max_delay=0.05,
                                       max_server_delay=0.05))


def ask(client: LLMClient, n: int = 1, deadline: float = 30.0) -> list:
    """Answers to `n` distinct requests; a hang fails the test instead of stalling it."""
    futures = [client.submit(Request("bootstrap", f"{PROMPT} {i}", {"max_tokens": 64}, "x"))
               for i in range(n)]
    return [future.result(timeout=deadline) for future in futures]


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("mode", MALFORMED)
def test_malformed_answers_are_failed_requests_with_a_kind(upstream, mode, api):
    with start_proxy(upstream, Plan(modes=(mode,))) as proxy, \
            client_for(proxy, api=api) as client:
        (answer,) = ask(client)
    assert answer.error.startswith("invalid_response: ") and answer.text == ""
    assert "gave up after 2 attempts" in answer.error  # retried: it may have been a glitch
    assert proxy.stats()["applied"] == {mode: 2}


@pytest.mark.parametrize("mode", MALFORMED)
def test_a_malformed_answer_once_is_retried_to_success(upstream, mode):
    with start_proxy(upstream, Plan(by_number={1: mode})) as proxy, \
            client_for(proxy) as client:
        (answer,) = ask(client)
    assert answer.error is None and answer.text and answer.attempts == 2


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("mode", NO_CONTENT)
def test_no_content_is_reported_with_its_finish_reason_and_not_retried(upstream, mode, api):
    with start_proxy(upstream, Plan(modes=(mode,))) as proxy, \
            client_for(proxy, retries=3, api=api) as client:
        (answer,) = ask(client)
    reason = {"content_null": "stop"}.get(mode, mode)
    assert answer.error == f"no_content: the model gave no text (finish_reason {reason})"
    assert answer.finish_reason == reason and answer.attempts == 1


@pytest.mark.parametrize(("mode", "request_id"), [("id_int", "1234567"),
                                                  ("id_object", '{"nested": ["id", 7]}')])
def test_foreign_ids_become_strings(upstream, mode, request_id):
    with start_proxy(upstream, Plan(modes=(mode,))) as proxy, client_for(proxy) as client:
        (answer,) = ask(client)
    assert answer.error is None and answer.request_id == request_id


@pytest.mark.parametrize("mode", ["usage_string", "usage_huge"])
def test_unusable_usage_counts_as_unknown_and_keeps_the_cost_finite(upstream, mode):
    with start_proxy(upstream, Plan(by_number={1: mode})) as proxy, \
            client_for(proxy) as client:
        odd, normal = ask(client, 2)
    assert odd.error is None and odd.text
    assert (odd.prompt_tokens, odd.completion_tokens, odd.usage_unknown) == (0, 0, True)
    assert normal.prompt_tokens > 0 and not normal.usage_unknown
    usage = Usage()
    for answer in (odd, normal):
        usage.record("bootstrap", answer, cached=False)
    cost = usage.cost({"input": 10.0, "output": 30.0})
    assert cost is not None and math.isfinite(cost) and cost > 0
    assert usage.stages["bootstrap"].usage_unknown == 1


def test_lone_surrogates_are_replaced_where_the_text_enters(upstream):
    with start_proxy(upstream, Plan(modes=("lone_surrogate",))) as proxy, \
            client_for(proxy) as client:
        (answer,) = ask(client)
    assert answer.error is None and answer.text.startswith("\ufffd")
    answer.text.encode("utf-8")  # any UTF-8 writer takes it
    assert json.loads(json.dumps(answer.to_json(), ensure_ascii=False)) == answer.to_json()


def test_zero_rate_limit_headers_are_ignored(upstream):
    with start_proxy(upstream, Plan(modes=("ratelimit_zero",))) as proxy, \
            client_for(proxy) as client:
        answers = ask(client, 3)
    assert all(a.error is None for a in answers)
    assert client.limiter.requests is None and client.limiter.tokens is None


def test_an_absurd_ratelimit_reset_pauses_at_most_the_cap(upstream):
    with start_proxy(upstream, Plan(by_number={1: "ratelimit_reset_huge"})) as proxy, \
            client_for(proxy) as client:
        (answer,) = ask(client)
        pause = client.limiter.paused_until - time.monotonic()
    assert answer.error is None
    assert 0 < pause <= MAX_WAIT  # 99999h asked, a minute at most obeyed


@pytest.mark.parametrize("mode", ["retry_after_huge", "retry_after_inf", "retry_after_negative",
                                  "retry_after_garbage"])
def test_retry_after_is_capped(upstream, mode):
    with start_proxy(upstream, Plan(by_number={1: mode, 2: mode})) as proxy, \
            client_for(proxy, retries=2) as client:
        start = time.monotonic()
        (answer,) = ask(client, deadline=20)
        elapsed = time.monotonic() - start
    assert answer.error is None and answer.attempts == 3
    assert elapsed < 5  # capped at the policy's max_server_delay (0.05 s here)


def test_a_trickling_body_is_a_timeout_of_the_whole_request(upstream):
    # 0.3 s between bytes never trips a per-read timeout of 1 s: only a whole-request
    # deadline stops it (the ~1 KB body would otherwise take ~5 minutes).
    with start_proxy(upstream, Plan(by_number={1: "trickle"}), trickle_interval=0.3) as proxy, \
            client_for(proxy, timeout=1.0) as client:
        start = time.monotonic()
        (answer,) = ask(client)
        elapsed = time.monotonic() - start
    assert answer.error is None and answer.attempts == 2
    assert 1.0 <= elapsed < 4


def test_an_oversized_answer_is_refused_without_reading_it_all(upstream):
    with start_proxy(upstream, Plan(modes=("huge",))) as proxy, \
            client_for(proxy, retries=3) as client:
        (answer,) = ask(client)
        sent = _bytes_sent(proxy, "huge")
    assert answer.error.startswith("oversized_answer: ") and answer.attempts == 1
    assert answer.text == ""
    # The proxy stopped once the client hung up: a little past the cap, not 200 MB.
    assert MAX_BODY_BYTES < sent < 3 * MAX_BODY_BYTES


def _bytes_sent(proxy: RunningProxy, mode: str) -> int:
    """What the proxy managed to send in `mode` (its handler notes it once the client hangs
    up, which may be just after the client returned)."""
    deadline = time.monotonic() + 10
    while mode not in proxy.stats()["bytes_sent"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.stats()["bytes_sent"][mode]


# -- whole runs -------------------------------------------------------------------------------

SHAPES = ("lone_surrogate", "no_message", "choices_string", "choices_null_item",
          "usage_string", "usage_huge", "id_int", "id_object", "ratelimit_zero",
          "content_null", "content_filter", "tool_calls", "non_json", "truncated_json",
          "html_200")


def generate(proxy: RunningProxy, data_dir: Path, n: int, *extra: str) -> list[str]:
    prices = data_dir / "prices.toml"
    prices.write_text('retry_base_delay = 0.01\n[prices."test-model"]\ninput = 10.0\n'
                      'output = 30.0\n')
    return ["generate", "--seeds", "seeds/en_general.jsonl", "--dataset", "h",
            "--num-instructions", str(n), "--data-dir", str(data_dir), "--base-url",
            proxy.base_url, "--model", "test-model", "--seed", "3", "--no-progress",
            "--config", str(prices), *extra]


def test_a_run_through_every_hostile_answer_shape_finishes(upstream, tmp_path, capsys):
    # Every third request gets the next shape; one request at a time and no retries, so
    # which request gets which shape, and what it becomes, is fixed.
    plan = Plan(by_number={n: SHAPES[n // 3 % len(SHAPES)] for n in range(3, 600, 3)})
    with start_proxy(upstream, plan) as proxy:
        code = main(generate(proxy, tmp_path, 15, "--concurrency", "1", "--max-retries", "0"))
        applied = proxy.stats()["applied"]
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert set(applied) == set(SHAPES)
    version = Path(captured.out.strip().splitlines()[-1])
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["target"]["accepted"] == 15
    assert math.isfinite(manifest["cost_usd"])
    assert {"invalid_response", "no_content"} <= set(manifest["request_errors"])
    assert sum(s.get("usage_unknown", 0) for s in manifest["usage"].values()) > 0
    rejected = [json.loads(line) for line in (version / "rejected.jsonl").open()]
    assert {r["reason"] for r in rejected if r["stage"] == "request"} >= {"invalid_response",
                                                                        "no_content"}
    # The replaced surrogates reached the written files as U+FFFD, and every file is UTF-8.
    texts = [p.read_bytes().decode("utf-8") for p in tmp_path.rglob("*.jsonl")]
    assert any("\ufffd" in text for text in texts)
    assert not any("\\ud800" in text for text in texts)


def test_an_oversized_answer_is_a_rejected_row_and_the_journal_stays_small(
        upstream, tmp_path, capsys):
    with start_proxy(upstream, Plan(by_number={2: "huge"})) as proxy:
        code = main(generate(proxy, tmp_path, 10, "--concurrency", "1", "--max-retries", "1"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    version = Path(captured.out.strip().splitlines()[-1])
    rejected = [json.loads(line) for line in (version / "rejected.jsonl").open()]
    assert [r["reason"] for r in rejected if r["stage"] == "request"] == ["oversized_answer"]
    (journal,) = tmp_path.glob("h/.runs/*/journal.jsonl")
    assert journal.stat().st_size < 1_000_000


def test_a_trickling_answer_cannot_outlast_the_timeout_in_a_run(upstream, tmp_path, capsys):
    plan = Plan(by_number={2: "trickle"})
    with start_proxy(upstream, plan, trickle_interval=0.3) as proxy:
        start = time.monotonic()
        code = main(generate(proxy, tmp_path, 10, "--concurrency", "1", "--timeout", "1",
                             "--max-retries", "1"))
        elapsed = time.monotonic() - start
    assert code == 0, capsys.readouterr().err
    assert elapsed < 60
