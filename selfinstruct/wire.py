"""The OpenAI wire format: the request body, the error kinds, and answers parsed untrusted.

Shared by the direct client (`llm.LLMClient`) and the Batch API client (`batch_api`): both
send `request_body`, count failures under `error_kind`, and turn a response body into a
`Completion` here, so a hostile or buggy endpoint is handled the same way in both modes.
Nothing an endpoint sends may crash a run or reach the journal in a form the journal or the
JSONL writers cannot store. So, where the answer enters:

* the text must be a string; any lone surrogate (a ``"\\ud800"`` escape is valid JSON) is
  replaced with U+FFFD, because UTF-8 writers refuse it;
* a body that is not a JSON object, ``choices`` that is not a list of objects, a choice
  without ``message``/``text`` become `AnswerError` with a clear kind (``invalid_response``,
  ``empty_choices``) instead of an AttributeError deep in the pipeline;
* ``content: null`` (tool calls, content filter) is ``no_content``, reported with its
  finish reason; it is not retried (the same request would be refused again);
* ids that are not strings (an int, an object) become strings or None;
* token counts that are not numbers become 0, and absurd ones (not finite, or above
  `MAX_TOKENS_PER_ANSWER`) become 0 with `Completion.usage_unknown` set, so a cost total
  can never turn into inf or overflow;
* a body above `MAX_BODY_BYTES` or a text above `MAX_ANSWER_CHARS` is ``oversized_answer``:
  no real answer is that large (even 32K output tokens are ~130K characters), and storing
  one would blow up the journal (a 200 MB answer made an 800 MB journal);
* token log-probabilities (asked for with the neutral ``params["logprobs"] = True``, see
  `request_body`) are read from chat ``choices[0].logprobs.content[].logprob`` or completions
  ``choices[0].logprobs.token_logprobs``; anything unusable in them (a missing list, a value
  that is not a finite number <= 0) makes them None, "unavailable", never a made-up number.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2  # the openai SDK's HTTP library: its errors reach us while a body streams
import openai

if TYPE_CHECKING:
    from selfinstruct.llm import Request

MAX_ANSWER_CHARS = 1_000_000  # ~250K tokens of text: far above any max_tokens in use
# Room for MAX_ANSWER_CHARS of text even fully \uXXXX-escaped (6 bytes a character), while
# a flood is cut off after a few MB instead of being read whole.
MAX_BODY_BYTES = 8 * MAX_ANSWER_CHARS
MAX_TOKENS_PER_ANSWER = 1_000_000_000  # above this a count is a bug, not a bill
MAX_ID_CHARS = 200

_SURROGATE = re.compile("[\ud800-\udfff]")
LOGPROB_ROUNDING = 1e-4  # the most a certain token's log-prob may be above 0 (float error)
# Log-probs are kept to this many decimals: an error below 0.01 % in a token's probability,
# and a journal line of ~8 bytes a token instead of ~20 (float32 values printed in full).
LOGPROB_DECIMALS = 4
# What ``params["logprobs"] = True`` becomes on each API (`request_body`).
LOGPROB_PARAMS: dict[str, dict[str, Any]] = {
    "chat": {"logprobs": True, "top_logprobs": 0},
    "completions": {"logprobs": 1},
}


@dataclass
class Completion:
    """A model answer, or the reason there is none (`error`).

    `usage_unknown`: the endpoint sent token counts that could not be used (counted as 0).
    `logprobs`: the log-probability of each token of the answer, when they were asked for and
    the endpoint sent usable ones; None otherwise (selfinstruct.confidence reads them).
    """

    text: str
    finish_reason: str | None
    request_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1
    usage_unknown: bool = False
    logprobs: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        """The journal's form. `logprobs` is written only when present, so an answer without
        them is stored exactly as before the field existed."""
        data: dict[str, Any] = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "request_id": self.request_id,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
            "attempts": self.attempts,
            "usage_unknown": self.usage_unknown,
        }
        if self.logprobs is not None:
            data["logprobs"] = self.logprobs
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        """Read a journaled answer; coerced like a fresh one, so a journal written before
        these rules (an int id, 1e308 tokens) replays instead of crashing every resume."""
        prompt_tokens, odd_prompt = coerce_tokens(data.get("prompt_tokens"))
        completion_tokens, odd_completion = coerce_tokens(data.get("completion_tokens"))
        text, finish, error = data.get("text"), data.get("finish_reason"), data.get("error")
        attempts = data.get("attempts")
        return cls(
            text=clean_text(text) if isinstance(text, str) else "",
            finish_reason=finish if isinstance(finish, str) else None,
            request_id=coerce_id(data.get("request_id")),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            error=str(error) if error is not None else None,
            attempts=attempts if isinstance(attempts, int) and attempts >= 1 else 1,
            usage_unknown=bool(data.get("usage_unknown")) or odd_prompt or odd_completion,
            logprobs=coerce_logprobs(data.get("logprobs")),
        )


def request_body(request: Request, model: str, api: str) -> dict[str, Any]:
    """The JSON body of `request`: the direct client sends it, a Batch API line carries it,
    so both modes ask exactly the same and produce the same data.

    ``params["logprobs"] = True`` is the API-neutral way to ask for token log-probabilities:
    chat gets ``logprobs: true, top_logprobs: 0`` (llama.cpp's server returns none without
    ``top_logprobs``; OpenAI and vLLM accept 0), completions ``logprobs: 1`` (the number of
    alternatives; the sampled token's own log-prob comes with any value).
    """
    params = dict(request.params)
    if params.pop("logprobs", None):
        params.update(LOGPROB_PARAMS[api])
    if api == "chat":
        messages = ([{"role": role, "content": content} for role, content in request.messages]
                    if request.messages is not None
                    else [{"role": "user", "content": request.prompt}])
        return {"model": model, "messages": messages, **params}
    return {"model": model, "prompt": request.prompt, **params}


def error_kind(exc: Exception) -> str:
    """The kind a failed call is counted under, the same in direct and Batch API mode."""
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return "timeout"
    # While a body streams (after the SDK returned), transport errors come raw.
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
        return "connection_error"
    return "invalid_response"  # a response the SDK or httpx could not read (e.g. bad gzip)


class AnswerError(Exception):
    """An answer that cannot be used: `kind` is what usage statistics count, `detail` why.

    `retryable`: whether sending the same request again may help (a malformed body may be a
    glitch; a refusal to produce content will only repeat).
    """

    def __init__(self, kind: str, detail: str, *, retryable: bool = True,
                 finish_reason: str | None = None, request_id: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.finish_reason = finish_reason
        # The id of the answer that could not be used: its rejected row names it.
        self.request_id = request_id

    def completion(self, attempts: int = 1) -> Completion:
        return Completion("", self.finish_reason, request_id=self.request_id,
                          error=str(self), attempts=attempts)


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (a str from JSON holds surrogates
    only unpaired: the decoder joins pairs)."""
    return _SURROGATE.sub("\ufffd", text)


def coerce_id(value: Any) -> str | None:
    """A request or response id as a short string (ints and objects happen), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return clean_text(text[:MAX_ID_CHARS]) or None


def coerce_tokens(value: Any) -> tuple[int, bool]:
    """A token count and whether it was unusable (present, but not a sane number)."""
    if value is None:
        return 0, False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0, True
    if not math.isfinite(value) or not 0 <= value <= MAX_TOKENS_PER_ANSWER:
        return 0, True
    return int(value), False


def parse_body(data: bytes) -> Any:
    """Decode a response body; anything that is not JSON is an `AnswerError`."""
    if len(data) > MAX_BODY_BYTES:
        raise oversized(len(data))
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        snippet = " ".join(data[:60].decode("utf-8", "replace").split())
        raise AnswerError("invalid_response", f"body is not JSON ({type(exc).__name__}): "
                                              f"{snippet!r}") from None


def oversized(size: int) -> AnswerError:
    return AnswerError("oversized_answer", f"{size} bytes or more (limit {MAX_BODY_BYTES} "
                                           f"bytes, {MAX_ANSWER_CHARS} characters of text)",
                       retryable=False)


def completion_from_body(body: Any, api: str, request_id: Any = None) -> Completion:
    """The `Completion` in a chat or completions response body, or `AnswerError`.

    `request_id`: the ``x-request-id`` header (or a batch line's id), preferred to the body's
    ``id`` when present.
    """
    if not isinstance(body, dict):
        raise AnswerError("invalid_response", f"body is a JSON {type(body).__name__}, "
                                              f"not an object")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise AnswerError("invalid_response", f"'choices' is {_kind(choices)}, not a list")
    if not choices:
        raise AnswerError("empty_choices", "the answer has no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise AnswerError("invalid_response", f"choice 0 is {_kind(choice)}, not an object")
    finish_reason = choice.get("finish_reason")
    finish = clean_text(finish_reason[:40]) if isinstance(finish_reason, str) else None
    answer_id = coerce_id(request_id) or coerce_id(body.get("id"))
    if api == "chat":
        message = choice.get("message")
        if not isinstance(message, dict):
            raise AnswerError("invalid_response", f"choice 0 has {_kind(message)} as "
                                                  f"'message'")
        text = message.get("content")
    elif "text" in choice:
        text = choice["text"]
    else:
        raise AnswerError("invalid_response", "choice 0 has no 'text'")
    if text is None:
        raise AnswerError("no_content", f"the model gave no text (finish_reason {finish})",
                          retryable=False, finish_reason=finish, request_id=answer_id)
    if not isinstance(text, str):
        raise AnswerError("invalid_response", f"the answer text is {_kind(text)}")
    if len(text) > MAX_ANSWER_CHARS:
        error = oversized(len(text.encode("utf-8", "surrogatepass")))
        error.request_id = answer_id
        raise error
    usage = body.get("usage")
    usage_unknown = usage is not None and not isinstance(usage, dict)
    if not isinstance(usage, dict):
        usage = {}
    prompt_tokens, odd_prompt = coerce_tokens(usage.get("prompt_tokens"))
    completion_tokens, odd_completion = coerce_tokens(usage.get("completion_tokens"))
    return Completion(
        text=clean_text(text),
        finish_reason=finish,
        request_id=answer_id,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        usage_unknown=usage_unknown or odd_prompt or odd_completion,
        logprobs=answer_logprobs(choice, api),
    )


def answer_logprobs(choice: dict[str, Any], api: str) -> list[float] | None:
    """The token log-probs of a choice: chat ``logprobs.content[].logprob`` (the OpenAI SDK's
    ``ChoiceLogprobs``), completions ``logprobs.token_logprobs``; None when absent or unusable.
    """
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    if api == "chat":
        content = logprobs.get("content")
        if not isinstance(content, list) or not all(isinstance(t, dict) for t in content):
            return None
        return coerce_logprobs([t.get("logprob") for t in content])
    return coerce_logprobs(logprobs.get("token_logprobs"))


def coerce_logprobs(values: Any) -> list[float] | None:
    """`values` as a list of log-probs, or None if it is not one throughout.

    A log-prob is a finite number <= 0; a positive value up to `LOGPROB_ROUNDING` is float
    rounding of a certain token (servers compute log-softmax in float32) and reads as 0.0.
    Values are kept to `LOGPROB_DECIMALS` decimals, here where they enter, so the journal and
    every figure computed from them (a resume included) see the same numbers. One bad entry
    spoils the list: dropping it would change the figures, and guessing a value would make one
    up. A list longer than an answer can have tokens is refused like an oversized text.
    """
    if not isinstance(values, list) or len(values) > MAX_ANSWER_CHARS:
        return None
    clean: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or value > LOGPROB_ROUNDING:
            return None
        clean.append(round(min(float(value), 0.0), LOGPROB_DECIMALS) + 0.0)  # + 0.0: no -0.0
    return clean


def error_message(body: Any) -> str | None:
    """The ``error.message`` of an error body, if it has a readable one."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return clean_text(" ".join(message.split())[:200]) if isinstance(message, str) else None


def _kind(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"
