"""A hostile endpoint for tests: a proxy that rewrites the test server's answers.

Why: "faults do not crash a run" has to hold for what real endpoints send, not only for what
`openai_server` produces — malformed 200s, ids that are not strings, absurd usage and
rate-limit headers, bodies that trickle or never end. This proxy sits in front of a real
`openai_server` over real HTTP, so the real ``openai`` client and a whole ``selfinstruct
generate`` run meet exactly the bytes a broken or adversarial endpoint would send.

Use::

    with start_server() as upstream, start_proxy(upstream, Plan({2: "choices_string"})) as proxy:
        client = LLMClient(base_url=proxy.base_url, ...)
        ...
        assert proxy.stats()["applied"] == {"choices_string": 1}

Which request gets which mode (`Plan`), without timing: ``by_number`` maps the k-th
generation request (1-based, POST to ``/v1/chat/completions`` or ``/v1/completions``) to a
mode — deterministic whenever requests are sent one at a time; ``modes`` with ``fraction``
spreads modes over a fixed share of distinct request bodies, chosen by a hash of the body
(so concurrency does not change which), and ``sends`` limits that to the first sends of each
body, so a retry of the same request gets the real answer. ``batch_modes`` rewrites every
third answered line of Batch API output files the same ways. Other paths pass through
untouched. Standard library only; the 200 MB answer is generated while it is sent, never held.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.servers.openai_server import RunningServer

# Mode -> what the client receives instead of the upstream answer.
MODES: dict[str, str] = {
    "lone_surrogate": 'the answer text starts with a lone surrogate ("\\ud800" escape)',
    "no_message": "choice 0 has no 'message' (chat) or 'text' (completions)",
    "choices_string": "'choices' is a string",
    "choices_null_item": "'choices' is [null]",
    "usage_string": "'usage' is a string",
    "usage_huge": "'usage' counts 1e308 prompt and completion tokens",
    "id_int": "'id' is an int and there is no x-request-id header",
    "id_object": "'id' is an object and there is no x-request-id header",
    "ratelimit_zero": "x-ratelimit-limit-requests: 0 and x-ratelimit-limit-tokens: 0",
    "ratelimit_reset_huge": "remaining 0 with x-ratelimit-reset-requests/-tokens: 99999h",
    "retry_after_huge": "429 with Retry-After: 999999999 (upstream not asked)",
    "retry_after_inf": "429 with Retry-After: inf (upstream not asked)",
    "retry_after_negative": "429 with Retry-After: -5 (upstream not asked)",
    "retry_after_garbage": "429 with Retry-After: soon-ish (upstream not asked)",
    "trickle": "the upstream body, one byte per `trickle_interval` seconds (default 1 s)",
    "huge": "a 200 with a `huge_bytes` (default 200 MB) answer text (upstream not asked)",
    "content_null": "content (or text) null, finish_reason 'stop'",
    "content_filter": "content null, finish_reason 'content_filter'",
    "tool_calls": "content null, a tool call, finish_reason 'tool_calls'",
    "non_json": "a 200 whose application/json body is plain text",
    "truncated_json": "a 200 with the first half of the upstream JSON (Content-Length fits)",
    "html_200": "a 200 text/html error page",
    "die": "the proxy dies: this request is dropped unanswered, later connections are refused "
           "and open ones dropped (a server killed mid-run)",
}
# Modes that edit the answer's JSON: the ones that also apply to Batch API output lines.
BODY_MODES = frozenset({"lone_surrogate", "no_message", "choices_string", "choices_null_item",
                        "usage_string", "usage_huge", "id_int", "id_object", "content_null",
                        "content_filter", "tool_calls"})
LOCAL_MODES = frozenset({"retry_after_huge", "retry_after_inf", "retry_after_negative",
                         "retry_after_garbage", "huge", "die"})
_RETRY_AFTER = {"retry_after_huge": "999999999", "retry_after_inf": "inf",
                "retry_after_negative": "-5", "retry_after_garbage": "soon-ish"}
_GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions")
_BATCH_OUTPUT = re.compile(r"/v1/files/[^/]+/content")
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "keep-alive", "date",
                "server"}


@dataclass(frozen=True)
class Plan:
    """Which generation requests get which mode (see the module docstring).

    `modes`: the modes spread over the chosen `fraction` of distinct bodies (each body gets
    one of them, by its hash); `by_number` wins over them.
    """

    by_number: Mapping[int, str] = field(default_factory=dict)
    modes: tuple[str, ...] = ()
    fraction: float = 1.0
    sends: int | None = None
    # Batch API output files: every third answered line gets the next of these in turn
    # (`BODY_MODES`, or "truncated_json": half a line).
    batch_modes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = {*self.by_number.values(), *self.modes} - set(MODES)
        unknown |= set(self.batch_modes) - BODY_MODES - {"truncated_json"}
        if unknown:
            raise ValueError(f"unknown proxy modes: {sorted(unknown)}")

    def decide(self, number: int, fingerprint: str, seen: int) -> str | None:
        """The mode for the `number`-th request, whose body was sent `seen` times before."""
        if number in self.by_number:
            return self.by_number[number]
        if not self.modes or (self.sends is not None and seen >= self.sends):
            return None
        if int(fingerprint[:8], 16) / 0x1_0000_0000 >= self.fraction:
            return None
        return self.modes[int(fingerprint[8:16], 16) % len(self.modes)]


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, upstream: str, plan: Plan, trickle_interval: float,
                 huge_bytes: int) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.plan = plan
        self.trickle_interval = trickle_interval
        self.huge_bytes = huge_bytes
        self.closing = threading.Event()
        self.dead = threading.Event()  # "die": nothing is answered any more
        self.lock = threading.Lock()
        self.generation_requests = 0
        self.batch_lines = 0  # answered lines of Batch API output files seen
        self.seen: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()  # per mode: how much actually went out
        super().__init__(("127.0.0.1", 0), _Handler)

    def choose(self, body: bytes) -> str | None:
        fingerprint = hashlib.sha256(body).hexdigest()
        with self.lock:
            self.generation_requests += 1
            mode = self.plan.decide(self.generation_requests, fingerprint,
                                    self.seen[fingerprint])
            self.seen[fingerprint] += 1
            if mode is not None:
                self.applied[mode] += 1
        return mode

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer is the point of several modes: stay quiet."""

    def die(self) -> None:
        """Stop listening for good (called from a handler thread, never the serving one)."""
        self.dead.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay("GET")

    def do_POST(self) -> None:
        self._relay("POST")

    def _relay(self, method: str) -> None:
        self._sent = 0
        if self.server.dead.is_set():  # a kept-alive connection to a dead server
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path.rstrip("/")
        generation = method == "POST" and path in _GENERATION_PATHS
        mode = self.server.choose(body) if generation else None
        try:
            if self.server.plan.batch_modes and _BATCH_OUTPUT.fullmatch(path):
                status, headers, data = self._upstream(method, body)
                with self.server.lock:
                    data = _rewrite_batch_output(data, self.server)
                self._answer(status, data, headers.pop("content-type", "application/jsonl"),
                             headers)
            elif mode in _RETRY_AFTER:
                error = {"error": {"message": "slow down", "type": "rate_limit_exceeded",
                                   "param": None, "code": "rate_limit_exceeded"}}
                self._answer(429, json.dumps(error).encode(), "application/json",
                             {"Retry-After": _RETRY_AFTER[mode]})
            elif mode == "huge":
                self._send_huge(path.endswith("/chat/completions"))
            elif mode == "die":
                self.close_connection = True
                self.server.die()
            else:
                status, headers, data = self._upstream(method, body)
                content_type = headers.pop("content-type", "application/json")
                if mode is not None and status == 200:
                    data, content_type = _rewrite(mode, data, content_type, headers,
                                                  chat=path.endswith("/chat/completions"))
                self._answer(status, data, content_type, headers,
                             trickle=mode == "trickle")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        if mode is not None:
            with self.server.lock:
                self.server.bytes_sent[mode] += getattr(self, "_sent", 0)

    def _upstream(self, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        host, port = self.server.upstream
        forward = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept")}
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request(method, self.path, body=body or None, headers=forward)
            response = conn.getresponse()
            data = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()
                       if k.lower() not in _HOP_HEADERS}
            return response.status, headers, data
        finally:
            conn.close()

    def _answer(self, status: int, data: bytes, content_type: str, headers: dict[str, str],
                trickle: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._sent = 0
        if not trickle:
            self.wfile.write(data)
            self._sent = len(data)
            return
        for i in range(len(data)):
            if self.server.closing.wait(self.server.trickle_interval):
                break
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            self._sent += 1
        self.close_connection = True

    def _send_huge(self, chat: bool) -> None:
        """A valid answer whose text is `huge_bytes` of 'a', produced while it is sent."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": "@"}
        else:
            choice["text"] = "@"
        prefix, suffix = json.dumps({"id": "huge", "object": "chat.completion", "created": 0,
                                     "model": "test-model", "choices": [choice]}).split("@")
        size = self.server.huge_bytes
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(prefix) + size + len(suffix)))
        self.end_headers()
        self.wfile.write(prefix.encode())
        self._sent = len(prefix)
        chunk = b"a" * 65536
        while self._sent - len(prefix) < size and not self.server.closing.is_set():
            piece = chunk[:size - (self._sent - len(prefix))]
            self.wfile.write(piece)
            self._sent += len(piece)
        self.wfile.write(suffix.encode())
        self._sent += len(suffix)


def _rewrite(mode: str, data: bytes, content_type: str, headers: dict[str, str],
             chat: bool) -> tuple[bytes, str]:
    """The body (and content type) the client gets in `mode`; edits `headers` in place."""
    if mode == "trickle":
        return data, content_type
    if mode == "non_json":
        return b"upstream says: everything is fine", "application/json"
    if mode == "truncated_json":
        return data[:len(data) // 2], content_type
    if mode == "html_200":
        page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        return page, "text/html"
    if mode == "ratelimit_zero":
        headers.update({"x-ratelimit-limit-requests": "0", "x-ratelimit-limit-tokens": "0"})
        return data, content_type
    if mode == "ratelimit_reset_huge":
        headers.update({"x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": "99999h",
                        "x-ratelimit-remaining-tokens": "0",
                        "x-ratelimit-reset-tokens": "99999h"})
        return data, content_type
    body = json.loads(data)
    _mutate(mode, body, chat)
    if mode in ("id_int", "id_object"):
        headers.pop("x-request-id", None)
    # ensure_ascii: a lone surrogate can only travel as a JSON escape.
    return json.dumps(body).encode("ascii"), content_type


def _mutate(mode: str, body: dict[str, Any], chat: bool) -> None:
    """Edit an answer body in place as `mode` (one of `BODY_MODES`) says."""
    choice = body["choices"][0]
    key = "message" if chat else "text"
    if mode == "lone_surrogate":
        if chat:
            choice["message"]["content"] = "\ud800" + choice["message"]["content"]
        else:
            choice["text"] = "\ud800" + choice["text"]
    elif mode == "no_message":
        del choice[key]
    elif mode == "choices_string":
        body["choices"] = "not a list"
    elif mode == "choices_null_item":
        body["choices"] = [None]
    elif mode == "usage_string":
        body["usage"] = "plenty"
    elif mode == "usage_huge":
        body["usage"] = {"prompt_tokens": 1e308, "completion_tokens": 1e308,
                         "total_tokens": 1e308}
    elif mode in ("id_int", "id_object"):
        body["id"] = 1234567 if mode == "id_int" else {"nested": ["id", 7]}
    elif mode in ("content_null", "content_filter", "tool_calls"):
        if chat:
            choice["message"]["content"] = None
        else:
            choice["text"] = None
        choice["finish_reason"] = {"content_null": "stop"}.get(mode, mode)
        if mode == "tool_calls" and chat:
            choice["message"]["tool_calls"] = [{"id": "call_1", "type": "function", "function":
                                                {"name": "lookup", "arguments": "{}"}}]


def _rewrite_batch_output(data: bytes, server: _ProxyServer) -> bytes:
    """Every third answered line of all Batch API output files so far, rewritten by the next
    of the plan's `batch_modes` (a line-breaking mode leaves half a JSON line)."""
    modes = server.plan.batch_modes
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        record = json.loads(line) if line.strip() else None
        response = record.get("response") if record else None
        if not isinstance(response, dict) or response.get("status_code") != 200:
            continue
        server.batch_lines += 1
        if server.batch_lines % 3:
            continue
        mode = modes[(server.batch_lines // 3 - 1) % len(modes)]
        server.applied[mode] += 1
        if mode not in BODY_MODES:
            lines[i] = line[:len(line) // 2]
            continue
        _mutate(mode, response["body"], chat="message" in response["body"]["choices"][0])
        if mode in ("id_int", "id_object"):
            response["request_id"] = response["body"]["id"]
        lines[i] = json.dumps(record).encode("ascii")
    return b"\n".join(lines)


class RunningProxy:
    """A started proxy: where it listens, what it did, how to stop it."""

    def __init__(self, httpd: _ProxyServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self.base_url = f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        """Generation requests seen, modes applied, and bytes sent per mode."""
        with self._httpd.lock:
            return {"generation_requests": self._httpd.generation_requests,
                    "applied": dict(self._httpd.applied),
                    "bytes_sent": dict(self._httpd.bytes_sent)}

    def close(self) -> None:
        self._httpd.closing.set()  # trickling and flooding handlers stop
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_proxy(upstream: RunningServer | str, plan: Plan, *, trickle_interval: float = 1.0,
                huge_bytes: int = 200_000_000) -> RunningProxy:
    """Start the proxy on a free loopback port in front of `upstream` (a server or its URL)."""
    url = upstream.url if isinstance(upstream, RunningServer) else upstream
    httpd = _ProxyServer(url, plan, trickle_interval, huge_bytes)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              name="adversarial-proxy", daemon=True)
    thread.start()
    return RunningProxy(httpd, thread)


__all__ = ["LOCAL_MODES", "MODES", "Plan", "RunningProxy", "start_proxy"]
