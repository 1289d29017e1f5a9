"""The LLM client against the test server's fault modes: retried, or recorded — never a crash."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from selfinstruct.llm import EndpointRefused, LLMClient, Request, RetryPolicy
from selfinstruct.ratelimit import MAX_WAIT, parse_retry_after
from selfinstruct.redact import redact
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


def test_bad_requests_fail_that_request_only_without_retry():
    with start_server() as server, client_for(server) as client:
        bad = Request("bootstrap", PROMPT, {"max_tokens": 8, "stream": True}, "x")
        answers = client.run_batch([bad, *requests(1)])
    assert answers[0].error.startswith("http_400") and answers[0].attempts == 1
    assert answers[1].error is None


def test_unknown_path_or_model_stops_the_run():
    with start_server() as server, LLMClient(
            base_url=server.base_url.replace("/v1", "/nope"), api_key="k", model="m",
            api="chat", retry=RetryPolicy(max_retries=3, base_delay=0.01)) as client, \
            pytest.raises(EndpointRefused, match=r"answered 404 \(unknown model"):
        client.run_batch(requests(3))


class EchoKeyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 401 and echoes the key back, as real APIs do (partly masked)."""

    def do_POST(self) -> None:
        key = self.headers["Authorization"].split()[-1]
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}. Also "
                                                f"{key[:7]}****{key[-4:]}", "type": "auth"}})
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_refused_key_stops_the_run_without_revealing_it():
    key = "sk-proj-SENTINELabcdefghijklmnop1234"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoKeyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LLMClient(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key=key,
                       model="m", api="chat") as client, \
                pytest.raises(EndpointRefused) as info:
            client.run_batch(requests(2))
    finally:
        server.shutdown()
    message = str(info.value)
    assert "answered 401 (the endpoint rejected the API key)" in message
    assert "SENTINEL" not in message and "1234" not in message and "[REDACTED]" in message


def test_redact_patterns():
    assert redact("key sk-abc123def456 and hf_abcdefghijkl", []) == \
        "key [REDACTED] and [REDACTED]"
    assert redact("Authorization: Bearer xyz.abc", []) == "[REDACTED]"
    assert redact("my secret is hunter22", ["hunter22"]) == "my secret is [REDACTED]"


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
    # Every wait an endpoint asks for is capped; nonsense falls back to our own backoff.
    assert parse_retry_after("999999999") == MAX_WAIT
    assert parse_retry_after("inf") == MAX_WAIT
    assert parse_retry_after("1e400") == MAX_WAIT
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_WAIT


def test_rpm_limit_paces_requests():
    with start_server() as server, LLMClient(
            base_url=server.base_url, api_key="k", model="test-model", api="chat",
            concurrency=8, rpm=120) as client:
        start = time.monotonic()
        answers = client.run_batch(requests(6))
        elapsed = time.monotonic() - start
    # 120/min = 2/s with a 2-request burst: 4 more requests need at least ~2 s.
    assert all(a.error is None for a in answers)
    assert 1.8 <= elapsed < 5


class RateLimitHeaders(http.server.BaseHTTPRequestHandler):
    """Announces a 60/min limit with 0 remaining for 0.5 s on its first answer."""

    calls = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        type(self).calls += 1
        body = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "ok"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                     "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-ratelimit-limit-requests", "6000")
        self.send_header("x-ratelimit-remaining-requests", "0" if self.calls == 1 else "5")
        self.send_header("x-ratelimit-reset-requests", "500ms")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_rate_limit_headers_are_learnt_and_remaining_zero_pauses_everyone():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RateLimitHeaders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LLMClient(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k",
                       model="m", api="chat", concurrency=1) as client:
            client.run_batch(requests(1))
            assert client.limiter.requests is not None
            assert client.limiter.requests.rate == 100.0  # 6000 per minute, learnt
            start = time.monotonic()
            client.run_batch(requests(1))
            assert time.monotonic() - start >= 0.45  # waited for the announced reset
    finally:
        server.shutdown()


def test_parse_reset_durations():
    from selfinstruct.ratelimit import parse_reset

    assert parse_reset("1s") == 1.0
    assert parse_reset("0m45s") == 45.0
    assert parse_reset("120ms") == pytest.approx(0.12)
    assert parse_reset(None) is None
    # Capped at MAX_WAIT: a 6-minute reset is waited for a minute, then the 429 says more.
    assert parse_reset("6m0s") == MAX_WAIT == 60.0
    assert parse_reset("99999h") == MAX_WAIT


def test_nonsense_limits_mean_no_limit_instead_of_a_crash():
    from selfinstruct.ratelimit import RateLimiter

    explicit = RateLimiter(rpm=float("inf"), tpm=0)
    assert explicit.requests is None and explicit.tokens is None
    assert explicit.delay_for(10**6) == 0.0
    limiter = RateLimiter()
    for limit in ("0", "-3", "nan", "inf", "0.5", "lots"):
        limiter.learn({"x-ratelimit-limit-requests": limit})
        assert limiter.requests is None, limit
    limiter.learn({"x-ratelimit-limit-requests": "60"})
    assert limiter.requests is not None and limiter.requests.rate == 1.0


class WaveHandler(http.server.BaseHTTPRequestHandler):
    """Holds each request until a whole wave of them is in flight, then answers; records the
    client address (one per TCP connection) of every request."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
    barrier: threading.Barrier
    addresses: list[tuple[str, int]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.addresses.append(self.client_address)
        self.barrier.wait(timeout=30)
        body = json.dumps({"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"content": "ok"}}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class WaveServer(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # a whole wave connects at once: no SYN dropped and re-sent
    daemon_threads = True


def test_connections_are_kept_alive_for_every_request_in_flight():
    # 120 in flight, above the SDK's default of 100 idle connections kept: with that default
    # each later wave would open 20 new connections; sized to the concurrency it opens none.
    wave = 120
    WaveHandler.barrier = threading.Barrier(wave)
    WaveHandler.addresses = []
    server = WaveServer(("127.0.0.1", 0), WaveHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LLMClient(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k",
                       model="m", api="chat", concurrency=wave) as client:
            answers = [client.run_batch(requests(wave)) for _ in range(3)]
    finally:
        server.shutdown()
    assert all(a.text == "ok" for batch in answers for a in batch)
    assert len(WaveHandler.addresses) == 3 * wave
    assert len(set(WaveHandler.addresses)) == wave  # every connection reused by each wave


def test_a_refused_or_dropped_connection_is_a_connection_error_on_either_transport():
    # The SDK's aiohttp adapter turns both into httpx's ConnectTimeout; an endpoint pool
    # relies on "connection_error" to move on from an endpoint that cannot be reached.
    no_retry = RetryPolicy(max_retries=0)
    with start_server(fault_rate=1.0, fault_kinds=["reset"]) as server, \
            LLMClient(base_url=server.base_url, api_key="k", model="test-model", api="chat",
                      retry=no_retry) as client:
        (dropped,) = client.run_batch(requests(1))
    with LLMClient(base_url="http://127.0.0.1:9/v1", api_key="k", model="m", api="chat",
                   retry=no_retry) as client:
        (refused,) = client.run_batch(requests(1))
    assert dropped.error == refused.error == "connection_error: gave up after 1 attempts"


def test_the_aiohttp_transport_is_used_when_installed_except_with_url_credentials():
    pytest.importorskip("aiohttp")
    import openai

    from selfinstruct.transport import http_client

    assert isinstance(http_client("http://127.0.0.1:8000/v1", 5.0, 4),
                      openai.DefaultAioHttpClient)
    assert not isinstance(http_client("http://u:p@127.0.0.1:8000/v1", 5.0, 4),
                          openai.DefaultAioHttpClient)
