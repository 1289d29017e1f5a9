"""The HTTP layer: the threading server and the request handler (routing, faults, replies).

Why: the handler is the only place that talks HTTP; what to answer comes from
tests/servers/responses.py and the batch store, what to count goes to the counters.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import hashlib
import json
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.batch_store import BatchStore
from tests.servers.counters import Counters
from tests.servers.faults import FAULT_ERRORS, APIError, FaultPlan, error_body
from tests.servers.hashing import fingerprint_of
from tests.servers.http_body import read_body
from tests.servers.kinds.kind_magpie import PROPS
from tests.servers.options import MODEL_IDS, ServerOptions
from tests.servers.responses import build_response, validate_request
from tests.servers.styles import messy_latency_ms


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise APIError(400, "Expected a multipart/form-data body.", "invalid_request_error")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


_ENDPOINT_IDS = re.compile(r"^/v1/(files|batches)/[^/]+")


def _endpoint_name(path: str) -> str:
    """The route of a path, ids replaced (``/v1/files/{id}/content``): stats stay readable."""
    return _ENDPOINT_IDS.sub(lambda m: f"/v1/{m.group(1)}/{{id}}", path)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that never blocks on close and can drop open keep-alive sockets."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64+ concurrent clients must not hit SYN-backlog drops
    allow_reuse_address = True

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.plan = FaultPlan(
            rate=options.fault_rate, kinds=tuple(options.fault_kinds), seed=options.fault_seed,
            max_faults_per_request=options.max_faults_per_request,
        )
        self.counters = Counters()
        self.store = BatchStore(options, self.counters)
        self.closing = threading.Event()
        # What GET /props reports (llama.cpp's server info, with the chat template magpie
        # needs); POST /_props replaces it, `null` makes /props a 404 (an endpoint without it).
        self.props: dict[str, Any] | None = dict(PROPS)
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((options.host, options.port), _Handler)

    def next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def drop_connections(self) -> None:
        """Shut down idle keep-alive sockets so handler threads exit when the server closes."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent unless verbose: a client hanging up is normal in fault tests."""
        if self.options.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request; every path is wrapped so a bad request can never kill the server."""

    server: LoopbackHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "selfinstruct-test-openai/1.0"
    timeout = 120  # idle keep-alive sockets eventually free their thread

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one write and without Nagle's delay: otherwise every
        # sequential request stalls ~40 ms on the client's delayed ACK.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.options.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", self._request_id)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # One write for headers and body (the base class buffers headers in _headers_buffer).
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _abort_connection(self, reset: bool) -> None:
        """Close the socket without a response; with ``reset`` the peer sees a TCP RST."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        """Route one request; internal /_ paths bypass auth, latency, faults and counters."""
        seq = self.server.next_seq()
        self._request_id = f"req_{seq:08d}"
        path = urlsplit(self.path).path.rstrip("/") or "/"
        tracked = path.startswith("/v1")
        endpoint = _endpoint_name(path)
        try:
            raw = read_body(self.rfile, self.headers) if method in ("POST", "PUT") else b""
            if path == "/_stats" and method == "GET":
                self._send_json(200, self.server.counters.snapshot())
                return
            if path == "/_reset" and method == "POST":
                self.server.counters.reset()
                self._send_json(200, {"ok": True})
                return
            if path == "/_props" and method == "POST":
                props = json.loads(raw.decode("utf-8") or "null")
                self.server.props = props if isinstance(props, dict) else None
                self._send_json(200, {"ok": True})
                return
            if path == "/props" and method == "GET":
                self._serve_props()
                return
            if not tracked:
                raise APIError(404, f"Unknown path {path}", "invalid_request_error",
                                "unknown_url")
            self.server.counters.begin(endpoint)
            try:
                self._serve_api(method, path, raw, seq)
            finally:
                self.server.counters.end()
        except APIError as err:
            if tracked:
                self.server.counters.outcome(endpoint, None, None, status=err.status)
            self._safe_send_error(err.status, error_body(err.message, err.type, err.code))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never let a handler bug take the server down
            if self.server.options.verbose:
                import traceback

                traceback.print_exc()
            self._safe_send_error(
                500, error_body(f"test server bug: {exc!r}", "server_error", None)
            )

    def _serve_props(self) -> None:
        """llama.cpp's GET /props: like its server, behind the API key when one is required."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise APIError(401, "Invalid API Key", "authentication_error", "invalid_api_key")
        if self.server.props is None:
            raise APIError(404, "File Not Found", "not_found_error", "unknown_url")
        self._send_json(200, self.server.props)

    def _safe_send_error(self, status: int, body: dict) -> None:
        try:
            self._send_json(status, body)
        except OSError:
            self.close_connection = True

    # -- API -----------------------------------------------------------------------------------

    def _serve_api(self, method: str, path: str, raw: bytes, seq: int) -> None:
        """Auth, latency, validation, then either a fault or the generated answer."""
        opts = self.server.options
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise APIError(401, "You didn't provide an API key (Authorization: Bearer ...).",
                            "invalid_request_error", "invalid_api_key")
        if opts.latency_ms > 0 and opts.style != "messy":
            self.server.closing.wait(opts.latency_ms / 1000.0)
        if path == "/v1/models" and method == "GET":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "selfinstruct-tests"}
                    for m in MODEL_IDS]
            self.server.counters.outcome(path, None, None)  # count first: no stats race
            self._send_json(200, {"object": "list", "data": data})
            return
        if path.startswith("/v1/models/") and method == "GET":
            model_id = path[len("/v1/models/"):]
            if model_id not in MODEL_IDS:
                raise APIError(404, f"The model '{model_id}' does not exist",
                                "invalid_request_error", "model_not_found")
            self.server.counters.outcome(path, None, None)
            self._send_json(200, {"id": model_id, "object": "model", "created": 0,
                                  "owned_by": "selfinstruct-tests"})
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            self._serve_batch_api(method, path, raw)
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            raise APIError(404, f"Unknown path {path}", "invalid_request_error", "unknown_url")
        if method != "POST":
            raise APIError(405, f"Method {method} not allowed on {path}",
                            "invalid_request_error", "method_not_allowed")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            fp = hashlib.sha256(raw).hexdigest()
            self.server.counters.see(fp)
            raise APIError(400, f"We could not parse the JSON body of your request: {exc}",
                            "invalid_request_error", "invalid_json") from exc
        fingerprint = fingerprint_of(body)
        seen = self.server.counters.see(fingerprint)
        self._request_id = f"req_{fingerprint[:16]}{seq:08x}"
        if opts.style == "messy":
            self.server.closing.wait(messy_latency_ms(fingerprint, opts.latency_ms) / 1000.0)
        chat = path == "/v1/chat/completions"
        prompts, hash_material = validate_request(body, chat)
        fault = self.server.plan.decide(fingerprint, seen)
        if fault in FAULT_ERRORS:
            status, message, type_, code = FAULT_ERRORS[fault]
            headers = (
                {"Retry-After": _fmt_seconds(opts.retry_after)}
                if fault == "429_retry_after" else None
            )
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self._send_json(status, error_body(message, type_, code), headers=headers)
            return
        if fault == "reset":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self._abort_connection(reset=True)
            return
        if fault == "hang":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self.server.closing.wait(opts.hang_seconds)
            self._abort_connection(reset=False)
            return
        if fault == "non_json":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            page = b"<html><head><title>502</title></head><body>upstream error</body></html>"
            self._send(200, page, content_type="text/html; charset=utf-8")
            return
        response, usage, accounts = build_response(body, chat, prompts, hash_material,
                                                    fingerprint, seq, fault, opts.style)
        payload = json.dumps(response, ensure_ascii=False).encode("utf-8")
        if fault == "truncated_body":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", self._request_id)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self._abort_connection(reset=False)
            return
        self.server.counters.outcome(path, fingerprint, body, fault=fault, usage=usage)
        self.server.counters.offer(self._request_id, response, accounts)
        self._send_json(200, response)


    def _serve_batch_api(self, method: str, path: str, raw: bytes) -> None:
        """Files and batches (see the module docstring); the store does the work."""
        store = self.server.store
        endpoint = _endpoint_name(path)
        parts = path.split("/")  # ["", "v1", "files"|"batches", id?, "content"|"cancel"?]
        route = (method, endpoint)
        if route == ("POST", "/v1/files"):
            fields = _multipart(self.headers.get("Content-Type", ""), raw)
            filename, data = fields.get("file", (None, b""))
            purpose = fields.get("purpose", (None, b""))[1].decode("utf-8")
            if filename is None or purpose != "batch":
                raise APIError(400, "Upload a 'file' with purpose 'batch'.",
                                "invalid_request_error")
            result: Any = store.add_file(data, filename, purpose)
        elif route == ("GET", "/v1/files/{id}"):
            result = store.file(parts[3])[0]
        elif route == ("GET", "/v1/files/{id}/content"):
            content = store.file(parts[3])[1]
            self.server.counters.outcome(endpoint, None, None)
            self._send(200, content, content_type="application/octet-stream")
            return
        elif route == ("POST", "/v1/batches"):
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise APIError(400, f"Invalid JSON body: {exc}", "invalid_request_error",
                                "invalid_json") from exc
            result = store.create(body)
        elif route == ("GET", "/v1/batches"):
            query = parse_qs(urlsplit(self.path).query)
            limit = int(query.get("limit", ["20"])[0])
            result = store.list(max(1, min(limit, 100)), query.get("after", [None])[0])
        elif route == ("GET", "/v1/batches/{id}"):
            result = store.retrieve(parts[3])
        elif route == ("POST", "/v1/batches/{id}/cancel"):
            result = store.cancel(parts[3])
        else:
            raise APIError(404, f"Unknown path {method} {path}", "invalid_request_error",
                            "unknown_url")
        self.server.counters.outcome(endpoint, None, None)
        self._send_json(200, result)


def _fmt_seconds(value: float) -> str:
    """A ``Retry-After`` value: whole seconds without a decimal point."""
    return str(int(value)) if float(value).is_integer() else str(value)
