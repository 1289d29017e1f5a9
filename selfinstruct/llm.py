"""The OpenAI-compatible client: bounded concurrency, retries, a shared cool-down, usage.

Every LLM call of the project goes through `LLMClient.run_batch`, which sends a batch of
`Request`s concurrently (at most `concurrency` in flight) on one event loop living in a
background thread, and returns their `Completion`s in request order. Returning in order, not
in arrival order, is what keeps a run deterministic for a given ``--seed`` however the
endpoint's latency varies.

Retries are our own (the SDK's are switched off) because a 429 must slow down *all* requests:
after a 429 every request waits until the shared cool-down has passed, instead of each one
hammering the endpoint on its own schedule. Delays honour ``Retry-After`` and otherwise grow
exponentially with full jitter. A request that still fails is returned with `error` set; the
caller records it as a rejected candidate rather than crashing the run.

Nothing an endpoint sends can stall or crash a run; every wait it can ask for is capped:

* ``Retry-After`` is obeyed up to `RetryPolicy.max_server_delay` (`ratelimit.MAX_WAIT`,
  60 s, by default); unreadable values fall back to the client's own backoff (at most
  ``max_delay``); rate-limit headers are read by `ratelimit`, which caps the pauses they ask
  for and ignores absurd limits;
* one attempt — connect, headers and the whole body — is bounded by ``timeout``: the SDK's
  timeout bounds each read, so a body trickling in a byte a second would never time out;
* a body is read up to `wire.MAX_BODY_BYTES` and no further (``oversized_answer``);
* the body is parsed by `selfinstruct.wire`, shared with the Batch API client: malformed
  answers become errors with a kind, never exceptions.

The API key is handed to the SDK and never kept in any object that is logged or serialised:
`LLMClient.describe()` is the only view of the client meant for manifests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER

from selfinstruct.ratelimit import MAX_WAIT, RateLimiter, parse_retry_after
from selfinstruct.redact import redact, strip_url_credentials
from selfinstruct.transport import (
    http_client,
    refuses_logprobs,
    transport_error_kind,
    without_logprobs,
)
from selfinstruct.wire import (
    MAX_BODY_BYTES,
    AnswerError,
    Completion,
    completion_from_body,
    error_kind,
    oversized,
    parse_body,
    request_body,
)


@dataclass(frozen=True)
class Request:
    """One prompt to send; `nonce` tells apart identical prompts that must be sampled anew."""

    stage: str
    prompt: str
    params: dict[str, Any]
    nonce: str
    # A chat conversation to send instead of one user message of `prompt` (multi-turn
    # follow-ups, a system message); completions endpoints still get `prompt`.
    messages: tuple[tuple[str, str], ...] | None = None

    def key(self, model: str, api: str) -> str:
        """Content address of the request: what the journal caches answers under.

        `messages` is part of it only when set, so the keys of every earlier journal stay
        valid.
        """
        parts: list[Any] = [model, api, self.prompt, self.params, self.nonce]
        if self.messages is not None:
            parts.append([list(m) for m in self.messages])
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class StageUsage:
    requests: int = 0
    cached: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_unknown: int = 0  # answers whose token counts were unusable (counted as 0)


@dataclass
class Usage:
    """Requests and tokens per stage; `cached` counts answers replayed from the journal."""

    stages: dict[str, StageUsage] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def stage(self, name: str) -> StageUsage:
        return self.stages.setdefault(name, StageUsage())

    def record(self, stage: str, completion: Completion, *, cached: bool) -> None:
        usage = self.stage(stage)
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        usage.usage_unknown += completion.usage_unknown
        if cached:
            usage.cached += 1
            return
        usage.requests += 1
        usage.retries += completion.attempts - 1
        if completion.error:
            usage.failed += 1
            kind = completion.error.split(":", 1)[0]
            self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def total_requests(self) -> int:
        """Requests sent by this process."""
        return sum(s.requests for s in self.stages.values())

    def cost(self, price: dict[str, float] | None) -> float | None:
        """USD for the tokens so far at `price` (USD per 1M input/output tokens)."""
        if price is None:
            return None
        prompt = sum(s.prompt_tokens for s in self.stages.values())
        completion = sum(s.completion_tokens for s in self.stages.values())
        return (prompt * price["input"] + completion * price["output"]) / 1_000_000

    @property
    def total_tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": {name: vars(s).copy() for name, s in self.stages.items()},
            "errors": dict(self.errors),
        }


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0  # our own backoff
    max_server_delay: float = MAX_WAIT  # the most of an endpoint's Retry-After we obey

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff: spreads retries of many requests apart."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class EndpointRefused(RuntimeError):
    """The endpoint refuses every request (bad key, no access, unknown model): stop the run.

    Retrying or moving on would only repeat the failure for every request; the journal keeps
    what was answered, so the run resumes once the key or model name is fixed.
    """


FATAL_STATUSES = {401: "the endpoint rejected the API key", 403: "access denied",
                  404: "unknown model or endpoint path"}


class _Transient(Exception):
    """A failure worth retrying, with the server's requested delay if it gave one."""

    def __init__(self, kind: str, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after
        self.detail = detail


def estimate_tokens(request: Request) -> int:
    """What a request counts against a TPM limit: prompt (~4 chars a token) + max_tokens."""
    return len(request.prompt) // 4 + int(request.params.get("max_tokens") or 0)


class Client(Protocol):
    """What the pipeline needs from a client: `LLMClient` (direct) or `BatchClient`."""

    model: str
    api: str

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]: ...

    def describe(self) -> dict[str, Any]: ...


class LLMClient:
    """Send requests to one model on one OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        api: str,
        concurrency: int = 8,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        seed: int = 0,
        rpm: float | None = None,
        tpm: float | None = None,
        retry_unreachable: bool = True,
    ) -> None:
        self.base_url = base_url
        # False in an endpoint pool: an endpoint that cannot be reached fails at once, and
        # the pool sends the request to another one instead of waiting out the backoff.
        self.retry_unreachable = retry_unreachable
        self.limiter = RateLimiter(rpm, tpm)
        self.model = model
        self.api = api
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)  # jitter only; never affects which data is kept
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="selfinstruct-llm")
        self._thread.start()
        self._cooldown_until = 0.0
        # The model answered a request for token log-probs with a 400 (OpenAI's reasoning
        # models do): from then on its answers are asked for without them (`_send_with_retries`).
        self._logprobs_refused = False
        self._path = "/chat/completions" if api == "chat" else "/completions"
        self._api_key = api_key  # only for redacting error messages; never logged or stored
        self._client = asyncio.run_coroutine_threadsafe(
            self._make_client(api_key), self._loop
        ).result()

    async def _make_client(self, api_key: str | None) -> openai.AsyncOpenAI:
        # Created on the loop thread so its connection pool belongs to that loop.
        self._semaphore = asyncio.Semaphore(self.concurrency)
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            # Local servers ignore the key, but the SDK insists on one.
            api_key=api_key or "not-needed",
            timeout=self.timeout,
            max_retries=0,
            http_client=http_client(self.base_url, self.timeout, self.concurrency),
        )

    def describe(self) -> dict[str, Any]:
        """What the manifest may record about the endpoint: never the key."""
        return {"base_url": self.base_url, "model": self.model, "api": self.api,
                "concurrency": self.concurrency}

    def submit(self, request: Request) -> concurrent.futures.Future[Completion]:
        """Start one request now; at most `concurrency` run at once, the rest queue."""
        return asyncio.run_coroutine_threadsafe(self._send_with_retries(request), self._loop)

    def run_batch(self, requests: list[Request]) -> list[Completion]:
        """Send `requests` concurrently; return their answers in request order."""
        futures = [self.submit(request) for request in requests]
        return [future.result() for future in futures]

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _send_with_retries(self, request: Request) -> Completion:
        if self._logprobs_refused:
            request = without_logprobs(request)
        last = _Transient("unknown")
        for attempt in range(self.retry.max_retries + 1):
            wait = self._cooldown_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with self._semaphore:
                    delay = self.limiter.delay_for(estimate_tokens(request))
                    if delay > 0:
                        await asyncio.sleep(delay)
                    completion = await self._send(request)
                completion.attempts = attempt + 1
                return completion
            except _Transient as exc:
                last = exc
                if exc.kind == "connection_error" and not self.retry_unreachable:
                    return Completion("", None, error=f"{exc.kind}: "
                                      f"{strip_url_credentials(self.base_url)} cannot "
                                      f"be reached", attempts=attempt + 1)
                if exc.retry_after is None:
                    pause = self.retry.backoff(attempt, self._rng)
                else:
                    pause = min(exc.retry_after, self.retry.max_server_delay)
                if exc.kind.startswith("rate_limited"):
                    # One cool-down for everyone: the endpoint said it is overloaded.
                    self._cooldown_until = max(self._cooldown_until, time.monotonic() + pause)
                if attempt < self.retry.max_retries:
                    await asyncio.sleep(pause)
            except AnswerError as exc:  # not worth repeating (no content, oversized)
                return exc.completion(attempts=attempt + 1)
            except openai.APIStatusError as exc:
                # 4xx other than 429: retrying the same request cannot help.
                message = redact(_short(exc), [self._api_key])
                if refuses_logprobs(exc, request):
                    # --confidence on a model without log-probs: the answer still counts,
                    # unscored (selfinstruct.confidence says "unavailable"), not a failure.
                    self._logprobs_refused = True
                    return await self._send_with_retries(request)
                if exc.status_code in FATAL_STATUSES:
                    raise EndpointRefused(
                        f"{self.base_url} answered {exc.status_code} "
                        f"({FATAL_STATUSES[exc.status_code]}) for model '{self.model}': "
                        f"{message}") from None
                return Completion("", None, error=f"http_{exc.status_code}: {message}",
                                  attempts=attempt + 1)
        detail = f"{last.detail}; " if last.detail else ""
        return Completion("", None, error=f"{last.kind}: {detail}gave up after "
                          f"{self.retry.max_retries + 1} attempts",
                          attempts=self.retry.max_retries + 1)

    async def _send(self, request: Request) -> Completion:
        """One attempt, bounded as a whole by `timeout`; a parsed answer or an exception."""
        try:
            async with asyncio.timeout(self.timeout):
                request_id, data = await self._post(request)
        except TimeoutError:
            raise _Transient("timeout", detail=f"no whole answer within {self.timeout:g} s") \
                from None
        except openai.RateLimitError as exc:
            self.limiter.learn(exc.response.headers)
            raise _Transient("rate_limited", _retry_after(exc)) from None
        except openai.InternalServerError as exc:
            raise _Transient(error_kind(exc), _retry_after(exc)) from None
        except (openai.APIConnectionError, openai.APIResponseValidationError,
                httpx2.HTTPError) as exc:
            raise _Transient(transport_error_kind(exc)) from None
        try:
            return completion_from_body(parse_body(data), self.api, request_id)
        except AnswerError as exc:
            if exc.retryable:
                raise _Transient(exc.kind, detail=exc.detail) from None
            raise

    async def _post(self, request: Request) -> tuple[str | None, bytes]:
        """Send the request; return the x-request-id header and the body, read only up to
        `MAX_BODY_BYTES` (streamed, so a flood is cut off instead of held in memory).

        The SDK's generic `post` with its raw-stream header, not ``chat.completions.create``:
        the body is already built (`request_body`) and parsed by us (`wire`), and ``create``
        would validate and transform every parameter through its typed schema first, a
        sizeable part of the SDK's CPU per request. Status errors, the key and the base URL
        are still the SDK's (``openai.APIStatusError`` and friends, as before).
        """
        response = await self._client.post(
            self._path, cast_to=httpx2.Response,
            body=request_body(request, self.model, self.api),
            options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
        try:
            self.limiter.learn(response.headers)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise oversized(size)
                chunks.append(chunk)
            return response.headers.get("x-request-id"), b"".join(chunks)
        finally:
            await response.aclose()  # back to the pool, or closed if the body was cut off


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return parse_retry_after(exc.response.headers.get("retry-after"))


def _short(exc: Exception) -> str:
    """A one-line error summary; SDK messages never include request headers or the key."""
    return " ".join(str(exc).split())[:200]
