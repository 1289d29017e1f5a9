"""Batch API lines and jobs: what `BatchClient` keeps per request, and how a result line
reads.

Kept apart from the client's thread and polling loop (`selfinstruct.batch_api`) because
these are plain data and pure functions: a result line is parsed exactly as a direct answer
is (`selfinstruct.wire`), and a waiter is resolved the one way the pipeline expects.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Any

import openai

from selfinstruct.llm import FATAL_STATUSES, Completion, Request
from selfinstruct.wire import AnswerError, coerce_id, completion_from_body, error_message

ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
TAG_KEY = "selfinstruct_tag"  # batch metadata: finds a job whose creation was not journaled

Waiter = concurrent.futures.Future[Completion]
Outcome = tuple[Completion, bool]  # the answer or error, and whether a later job may fix it


def batch_price(price: dict[str, float] | None) -> dict[str, float] | None:
    """USD per 1M tokens for Batch API answers.

    ``batch_discount`` is the fraction of the normal price that batch answers cost (OpenAI:
    0.5). Without it the full price is assumed, so ``--max-cost`` never under-counts.
    """
    if price is None:
        return None
    factor = price.get("batch_discount", 1.0)
    return {"input": price["input"] * factor, "output": price["output"] * factor}


def failure(kind: str, message: str | None = None) -> Completion:
    return Completion("", None, error=f"{kind}: {message}" if message else kind)


def line_outcome(record: Any, api: str) -> Outcome:
    """The answer held by one record of an output or error file.

    Retryable, as in direct mode: 429, 5xx, a malformed body, and a line never executed
    (``"response": null``, e.g. the job expired before reaching it). The body is parsed by
    `selfinstruct.wire`, exactly as a direct answer is.
    """
    if not isinstance(record, dict):
        return failure("invalid_response", "a result line is not a JSON object"), True
    response = record.get("response")
    if not isinstance(response, dict):
        error = record.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return failure(coerce_id(code) or "batch_error", error_message(record)), True
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        message = error_message(body)
        if status == 429:
            return failure("rate_limited", message), True
        kind = f"http_{status}" if isinstance(status, int) else "invalid_response"
        return failure(kind, message), not isinstance(status, int) or status >= 500
    try:
        return completion_from_body(body, api, response.get("request_id")), False
    except AnswerError as exc:
        return exc.completion(), exc.retryable


class BatchClientClosed(RuntimeError):
    """The client closed before the answer arrived (the run stopped); a resume gets it."""


@dataclass(eq=False)
class Line:
    """One request key awaiting its answer, and everyone who submitted it."""

    key: str
    request: Request
    waiters: list[Waiter] = field(default_factory=list)
    attempts: int = 0  # jobs this line was sent in
    failed_sends: int = 0  # calls that failed to create a job for it
    batch_id: str | None = None  # the job it waits for; None while queued


@dataclass
class Job:
    """A batch job being polled; `stages` lists every line of it (request key -> stage)."""

    batch_id: str
    stages: dict[str, str]
    next_poll: float


def is_fatal(exc: openai.APIError) -> bool:
    return isinstance(exc, openai.APIStatusError) and exc.status_code in FATAL_STATUSES


def resolve(future: Waiter, outcome: Completion | BaseException) -> None:
    """Hand the answer (or failure) to the pipeline, which journals it before using it."""
    if not future.set_running_or_notify_cancel():
        return  # cancelled by `close`
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        return
    future.set_result(outcome)


def fail_lines(lines: list[Line], exc: BaseException) -> None:
    for line in lines:
        for waiter in line.waiters:
            resolve(waiter, exc)
