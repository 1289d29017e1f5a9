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

The API key is handed to the SDK and never kept in any object that is logged or serialised:
`LLMClient.describe()` is the only view of the client meant for manifests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from selfinstruct.redact import redact


@dataclass(frozen=True)
class Request:
    """One prompt to send; `nonce` tells apart identical prompts that must be sampled anew."""

    stage: str
    prompt: str
    params: dict[str, Any]
    nonce: str

    def key(self, model: str, api: str) -> str:
        """Content address of the request: what the journal caches answers under."""
        blob = json.dumps(
            [model, api, self.prompt, self.params, self.nonce], sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Completion:
    """A model answer, or the reason there is none (`error`)."""

    text: str
    finish_reason: str | None
    request_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "request_id": self.request_id,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


@dataclass
class StageUsage:
    requests: int = 0
    cached: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


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
    max_delay: float = 60.0

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

    def __init__(self, kind: str, retry_after: float | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_reset(value: str | None) -> float | None:
    """Seconds from an ``x-ratelimit-reset-*`` value such as ``1s``, ``6m0s`` or ``120ms``."""
    if not value:
        return None
    parts = _DURATION.findall(value)
    if not parts:
        return parse_retry_after(value)
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


class TokenBucket:
    """A per-minute limit as a bucket that refills continuously (burst: one second's worth).

    Requests wait for capacity instead of being sent and refused, so a run stays just under
    the endpoint's limit rather than oscillating between 429s and silence.
    """

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()

    def delay_for(self, amount: float) -> float:
        """Take `amount` now (going into debt if needed); return how long to wait for it."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level -= min(amount, self.capacity)
        return 0.0 if self.level >= 0 else -self.level / self.rate


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits shared by all requests of a client.

    Limits come from --rpm/--tpm, or are learnt from the ``x-ratelimit-limit-*`` headers that
    OpenAI and several compatible servers send; ``x-ratelimit-remaining-* == 0`` pauses every
    request until the matching reset.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self._explicit = (rpm is not None, tpm is not None)
        self.paused_until = 0.0

    def delay_for(self, tokens: int) -> float:
        delay = max(0.0, self.paused_until - time.monotonic())
        if self.requests is not None:
            delay = max(delay, self.requests.delay_for(1))
        if self.tokens is not None:
            delay = max(delay, self.tokens.delay_for(tokens))
        return delay

    def learn(self, headers: Any) -> None:
        """Adopt limits and pauses announced by the endpoint (explicit flags win)."""
        for kind, explicit in zip(("requests", "tokens"), self._explicit, strict=True):
            limit = headers.get(f"x-ratelimit-limit-{kind}")
            if limit and not explicit and getattr(self, kind) is None:
                with contextlib.suppress(ValueError):
                    setattr(self, kind, TokenBucket(float(limit)))
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and reset and remaining.strip() in ("0", "0.0"):
                self.paused_until = max(self.paused_until, time.monotonic() + reset)


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
    ) -> None:
        self.base_url = base_url
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
        last_error = "unknown"
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
                last_error = exc.kind
                delay = exc.retry_after
                if delay is None:
                    delay = self.retry.backoff(attempt, self._rng)
                if exc.kind.startswith("rate_limited"):
                    # One cool-down for everyone: the endpoint said it is overloaded.
                    self._cooldown_until = max(self._cooldown_until, time.monotonic() + delay)
                if attempt < self.retry.max_retries:
                    await asyncio.sleep(delay)
            except openai.APIStatusError as exc:
                # 4xx other than 429: retrying the same request cannot help.
                message = redact(_short(exc), [self._api_key])
                if exc.status_code in FATAL_STATUSES:
                    raise EndpointRefused(
                        f"{self.base_url} answered {exc.status_code} "
                        f"({FATAL_STATUSES[exc.status_code]}) for model '{self.model}': "
                        f"{message}") from None
                return Completion("", None, error=f"http_{exc.status_code}: {message}",
                                  attempts=attempt + 1)
        return Completion("", None, error=f"{last_error}: gave up after "
                          f"{self.retry.max_retries + 1} attempts",
                          attempts=self.retry.max_retries + 1)

    async def _send(self, request: Request) -> Completion:
        params = dict(request.params)
        try:
            if self.api == "chat":
                raw = await self._client.chat.completions.with_raw_response.create(
                    model=self.model,
                    messages=[{"role": "user", "content": request.prompt}],
                    **params,
                )
            else:
                raw = await self._client.completions.with_raw_response.create(
                    model=self.model, prompt=request.prompt, **params
                )
            self.limiter.learn(raw.headers)
            response = raw.parse()
        except openai.RateLimitError as exc:
            self.limiter.learn(exc.response.headers)
            raise _Transient("rate_limited", _retry_after(exc)) from None
        except openai.InternalServerError as exc:
            raise _Transient(f"http_{exc.status_code}", _retry_after(exc)) from None
        except openai.APITimeoutError:
            raise _Transient("timeout") from None
        except openai.APIConnectionError:
            raise _Transient("connection_error") from None
        except openai.APIResponseValidationError:
            raise _Transient("invalid_response") from None
        except (json.JSONDecodeError, ValueError):
            raise _Transient("invalid_response") from None
        if isinstance(response, str):  # the SDK hands back non-JSON bodies as text
            raise _Transient("invalid_response")
        choices = getattr(response, "choices", None)
        if not choices:
            raise _Transient("empty_choices")
        choice = choices[0]
        text = choice.message.content if self.api == "chat" else choice.text
        if not isinstance(text, str):
            raise _Transient("invalid_response")
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            finish_reason=choice.finish_reason,
            request_id=raw.request_id or getattr(response, "id", None),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return parse_retry_after(exc.response.headers.get("retry-after"))


def _short(exc: Exception) -> str:
    """A one-line error summary; SDK messages never include request headers or the key."""
    return " ".join(str(exc).split())[:200]
