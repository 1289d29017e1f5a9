"""How a request travels: the SDK's HTTP client and its pool, what a failed call is counted
as, and the request sent again when a model refuses log-probs.

Kept apart from `llm` (retries, cool-down, the client's loop) because these are the parts
chosen by measurement and by what endpoints answer, not by the retry logic around them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import TYPE_CHECKING

import httpx2
import openai

from selfinstruct.wire import error_kind

if TYPE_CHECKING:
    from selfinstruct.llm import Request


def http_client(base_url: str, timeout: float, concurrency: int) -> httpx2.AsyncClient:
    """The SDK's aiohttp transport when aiohttp is installed (``openai[aiohttp]``), else its
    default httpx one; either with `pool_limits`. A base URL with credentials in it
    (``http://user:pass@host/v1``) keeps httpx, which sends them as Basic auth: the aiohttp
    transport refuses them beside the SDK's bearer header.

    Measured with bench/client_only.py: httpx's connection pool (httpcore) walks every
    connection and polls each idle socket on every request and every answer, the largest
    part of the SDK's CPU per request at concurrency 64 and more; aiohttp's pool does not,
    and costs a third as much per request. Both stream the body (the size cap holds) and
    the SDK maps both transports' errors to the same ``openai`` exceptions.
    """
    limits = pool_limits(concurrency)
    if importlib.util.find_spec("aiohttp") is None or httpx2.URL(base_url).userinfo:
        return openai.DefaultAsyncHttpxClient(timeout=timeout, limits=limits)
    return openai.DefaultAioHttpClient(timeout=timeout, limits=limits)


def transport_error_kind(exc: Exception) -> str:
    """`wire.error_kind`, but a connection that was refused or dropped is a connection error
    under the aiohttp transport too: the SDK's adapter maps every aiohttp connection error
    to httpx's ConnectTimeout, which would count it as a timeout and, in an endpoint pool,
    keep retrying an endpoint that cannot be reached (`LLMClient.retry_unreachable`)."""
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__module__.startswith("aiohttp"):
            return "timeout" if isinstance(cause, TimeoutError) else "connection_error"
        cause = cause.__cause__
    return error_kind(exc)


def pool_limits(concurrency: int) -> httpx2.Limits:
    """One kept-alive connection per request in flight, and no more.

    The SDK's default keeps at most 100 idle connections: above that concurrency every
    answer closed its connection and the next request opened a new one (a TCP handshake
    and its CPU per request); no more than `concurrency` are ever used at once.
    """
    return httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


def refuses_logprobs(exc: openai.APIStatusError, request: Request) -> bool:
    """A 400 that names the log-probs this request asked for ("Unsupported parameter:
    'logprobs' is not supported with this model.")."""
    return (exc.status_code == 400 and bool(request.params.get("logprobs"))
            and "logprobs" in str(exc).lower())


def without_logprobs(request: Request) -> Request:
    """The same request asking for the answer alone: sent in place of `request`, whose key
    (with the log-probs marker) the journal still files the answer under."""
    params = {k: v for k, v in request.params.items() if k != "logprobs"}
    return dataclasses.replace(request, params=params)
