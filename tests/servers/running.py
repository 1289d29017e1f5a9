"""Starting and stopping the server: ``RunningServer``, ``start_server`` and the CLI ``main``.

Why not in openai_server.py: ``python -m tests.servers.openai_server`` runs that file as
``__main__``; defining the classes here keeps one class identity whether the server is
imported or started from the command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from tests.servers.faults import BATCH_ERROR_KINDS, DEFAULT_FAULT_KINDS, FAULT_KINDS, FaultPlan
from tests.servers.http_handler import LoopbackHTTPServer
from tests.servers.options import STYLES, ServerOptions


class RunningServer:
    """A started server: where it listens, its counters, and how to stop it."""

    def __init__(self, httpd: LoopbackHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host: str = str(httpd.server_address[0])
        self.port: int = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.options = httpd.options
        self._closed = False

    @property
    def fault_plan(self) -> FaultPlan:
        return self._httpd.plan

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of all counters (same JSON as ``GET /_stats``)."""
        return self._httpd.counters.snapshot()

    def requests(self) -> list[dict[str, Any]]:
        """The last 10,000 generation requests: path, fingerprint, parsed body, outcome."""
        return self._httpd.counters.requests()

    def offered(self) -> list[dict[str, Any]]:
        """What every answered chat/completions choice offered, oldest first (last 200,000).

        One dict per choice: ``id`` (the ``x-request-id`` header, or the batch line's request
        id: what selfinstruct records as a row's ``request_id``), ``response_id`` (the body's
        ``id``), ``choice``, ``api``, ``style``, ``kind``, ``lang``, ``offered`` (clean texts of
        the instruction items of a bootstrap or Alpaca answer that survived stop/max_tokens
        whole, ``[]`` for other kinds, ``None`` in the recorded style, which does not know
        them), ``unreadable`` (True when the answer has deliberately nothing readable: junk,
        ``content: null``, ``content_filter``), ``finish_reason``, ``shapes`` (the messy
        deviations applied) and ``fault``. Faulted attempts that sent no whole answer are
        absent.
        """
        return self._httpd.counters.offered()

    def reset(self) -> None:
        """Clear all counters, fingerprint history (so faults can recur) and the request log."""
        self._httpd.counters.reset()

    def close(self) -> None:
        """Stop serving, wake hanging/latent handlers, drop keep-alive sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._httpd.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunningServer({self.base_url!r})"


def start_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    fault_rate: float = 0.0,
    fault_kinds: Iterable[str] | str | None = None,
    fault_seed: int = 0,
    max_faults_per_request: int = 2,
    hang_seconds: float = 30.0,
    retry_after: float = 1.0,
    batch_polls: int = 2,
    batch_seconds: float | None = None,
    batch_error_rate: float = 0.0,
    batch_error_kinds: Iterable[str] | str = ("500",),
    verbose: bool = False,
    style: str = "clean",
) -> RunningServer:
    """Start the server on a loopback port (0 = pick a free one) in a daemon thread.

    ``fault_kinds`` and ``batch_error_kinds`` may be lists or comma-separated strings;
    ``fault_kinds`` defaults to :data:`DEFAULT_FAULT_KINDS` (429 and 5xx: the faults every
    client must retry).
    """
    options = ServerOptions(
        host=host, port=port, latency_ms=latency_ms, fault_rate=fault_rate,
        fault_kinds=_kinds(fault_kinds if fault_kinds is not None else DEFAULT_FAULT_KINDS),
        fault_seed=fault_seed, max_faults_per_request=max_faults_per_request,
        hang_seconds=hang_seconds, retry_after=retry_after, batch_polls=batch_polls,
        batch_seconds=batch_seconds, batch_error_rate=batch_error_rate,
        batch_error_kinds=_kinds(batch_error_kinds), verbose=verbose, style=style,
    )
    httpd = LoopbackHTTPServer(options)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
        name=f"openai-test-server-{httpd.server_address[1]}", daemon=True,
    )
    thread.start()
    return RunningServer(httpd, thread)


def _kinds(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(k.strip() for k in value.split(",") if k.strip())
    return tuple(value)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.openai_server",
        description="Deterministic OpenAI-compatible test server (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="fixed delay per /v1 request")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="share of first attempts that fail (0..1)")
    parser.add_argument("--fault-kinds", default=",".join(DEFAULT_FAULT_KINDS),
                        help=f"comma-separated subset of {','.join(FAULT_KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=0,
                        help="seed of the deterministic fault choice")
    parser.add_argument("--max-faults-per-request", type=int, default=2,
                        help="sends of one body that may be faulted")
    parser.add_argument("--hang-seconds", type=float, default=30.0,
                        help="how long a hang fault waits before closing")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="Retry-After seconds of the 429_retry_after fault")
    parser.add_argument("--batch-polls", type=int, default=2,
                        help="retrieves after which a batch completes")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="seconds after which a batch completes (first of the two wins)")
    parser.add_argument("--batch-error-rate", type=float, default=0.0,
                        help="share of batch lines that fail (0..1)")
    parser.add_argument("--batch-error-kinds", default="500",
                        help=f"comma-separated subset of {','.join(BATCH_ERROR_KINDS)}")
    parser.add_argument("--style", choices=STYLES, default="clean",
                        help="answer style: the prompts' own format, what real models write, "
                             "or replayed real answers (docs/test-server.md)")
    parser.add_argument("--verbose", action="store_true",
                        help="log every request and handler error to stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print exactly one ``READY <base_url>`` line when listening."""
    args = _parse_args(argv)
    try:
        server = start_server(
            host=args.host, port=args.port, latency_ms=args.latency_ms,
            fault_rate=args.fault_rate, fault_kinds=args.fault_kinds, fault_seed=args.fault_seed,
            max_faults_per_request=args.max_faults_per_request, hang_seconds=args.hang_seconds,
            retry_after=args.retry_after, batch_polls=args.batch_polls,
            batch_seconds=args.batch_seconds, batch_error_rate=args.batch_error_rate,
            batch_error_kinds=args.batch_error_kinds, verbose=args.verbose, style=args.style,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"READY {server.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
    return 0
