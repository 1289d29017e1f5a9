"""Confidence from token log-probs (issue 15, item 1): the figures, the wire, the journal form,
and the test server's log-probs, checked against hand-made values and a real loopback server.

End-to-end runs through the CLI are in tests/test_confidence_runs.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.batch_api import BatchClient
from selfinstruct.confidence import (
    DROP_REASON,
    LOW_TOKEN_LOGPROB,
    confidence_summary,
    decide,
    figures,
    wants_logprobs,
)
from selfinstruct.journal import Journal
from selfinstruct.llm import LLMClient, Request
from selfinstruct.wire import Completion, completion_from_body, request_body
from tests.servers.openai_server import start_server
from tests.servers.tokens import count_tokens

# -- the figures, from hand-made log-prob lists ------------------------------------------------


def test_figures_of_a_hand_made_answer() -> None:
    # mean = (-0.1 - 0.2 - 3.0 - 0.5) / 4 = -0.95; exp(-0.95) = 0.386741...; one token of
    # four (-3.0) is below ln 0.1 = -2.3026.
    found = figures([-0.1, -0.2, -3.0, -0.5])
    assert found is not None
    assert found.provenance() == {"confidence": 0.3867, "logprob_mean": -0.95,
                                  "logprob_min": -3.0, "logprob_low_share": 0.25,
                                  "logprob_tokens": 4}


def test_confidence_is_the_geometric_mean_token_probability() -> None:
    # Four tokens at p = 0.5 and four at p = 0.125 (ln 0.125 = -2.079: not below p = 0.1):
    # geometric mean sqrt(0.5 * 0.125) = 0.25.
    found = figures([math.log(0.5)] * 4 + [math.log(0.125)] * 4)
    assert found is not None
    assert (found.confidence, found.low_share, found.tokens) == (0.25, 0.0, 8)
    assert found.min_logprob == round(math.log(0.125), 4) == -2.0794


def test_cut_off_is_p_one_tenth() -> None:
    assert abs(LOW_TOKEN_LOGPROB + 2.302585) < 1e-6
    found = figures([-2.30, -2.31, 0.0])  # only -2.31 is below ln 0.1
    assert found is not None and found.low_share == 0.3333


def test_no_logprobs_give_no_figures() -> None:
    assert figures(None) is None
    assert figures([]) is None


def test_decision_against_min_confidence() -> None:
    found = figures([math.log(0.5)] * 4)  # confidence 0.5
    assert found is not None
    assert decide(found, None) is None
    assert decide(found, 0.5) is None  # at the threshold: kept
    drop = decide(found, 0.6)
    assert drop is not None and drop.reason == DROP_REASON == "low_confidence"
    assert drop.detail == ("confidence 0.5000 < min_confidence 0.6 (mean log-prob -0.6931, "
                           "min -0.6931, 0% of 4 tokens below p=0.1)")


def test_only_output_stages_ask_and_only_when_on() -> None:
    assert wants_logprobs(True, "instances") == {"logprobs": True}
    assert wants_logprobs(True, "answer") == {"logprobs": True}
    assert wants_logprobs(True, "alpaca") == {"logprobs": True}
    assert wants_logprobs(True, "bootstrap") == {}
    assert wants_logprobs(True, "classify") == {}
    assert wants_logprobs(False, "instances") == {}


# -- the wire: what is sent, what is read ------------------------------------------------------


def test_the_neutral_marker_becomes_each_apis_parameter() -> None:
    asked = Request("instances", "Name a fruit.", {"max_tokens": 5, "logprobs": True}, "n")
    chat = request_body(asked, "m", "chat")
    assert chat["logprobs"] is True and chat["top_logprobs"] == 0  # llama.cpp needs both
    assert request_body(asked, "m", "completions")["logprobs"] == 1
    plain = Request("instances", "Name a fruit.", {"max_tokens": 5}, "n")
    assert "logprobs" not in request_body(plain, "m", "chat")
    assert "logprobs" not in request_body(plain, "m", "completions")
    assert asked.params == {"max_tokens": 5, "logprobs": True}  # the request is not changed


# Shapes as the embedded llama.cpp server sent them (recorded 2026-11-30, SmolLM2-135M).
LLAMA_CHAT = {"choices": [{"index": 0, "finish_reason": "length",
                           "message": {"role": "assistant", "content": "The fruit"},
                           "logprobs": {"refusal": None, "content": [
                               {"token": "The", "logprob": -1.4666153192520142, "bytes": None,
                                "top_logprobs": [{"token": "The", "logprob": -1.4666153192520142,
                                                  "bytes": None}]},
                               {"token": " fruit", "logprob": -1.059705138206482, "bytes": None,
                                "top_logprobs": []}]}}]}
LLAMA_COMPLETIONS = {"choices": [{"index": 0, "finish_reason": "length", "text": " What is",
                                  "logprobs": {"text_offset": [19, 24],
                                               "token_logprobs": [-2.4164633750915527,
                                                                  -0.7562724351882935],
                                               "tokens": [" What", " is"],
                                               "top_logprobs": [{" What": -2.4164633750915527},
                                                                {" is": -0.7562724351882935}]}}]}


def test_logprobs_are_read_from_chat_and_completions_bodies() -> None:
    chat = completion_from_body(LLAMA_CHAT, "chat")
    assert chat.logprobs == [-1.4666, -1.0597]  # kept to 4 decimals
    completions = completion_from_body(LLAMA_COMPLETIONS, "completions")
    assert completions.logprobs == [-2.4165, -0.7563]


@pytest.mark.parametrize("logprobs", [
    None,  # not asked, or an endpoint without support: `"logprobs": null`
    "yes",
    {"content": None},  # OpenAI's shape when the logprobs were not asked for
    {"content": [{"token": "a", "logprob": "-1"}]},
    {"content": [{"token": "a", "logprob": float("nan")}]},
    {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": 0.7}]},
    {"content": [{"token": "a", "logprob": True}]},
    {"content": ["a"]},
])
def test_unusable_logprobs_are_none_never_a_made_up_number(logprobs: Any) -> None:
    body = {"choices": [{"message": {"content": "a b"}, "finish_reason": "stop",
                         "logprobs": logprobs}]}
    completion = completion_from_body(body, "chat")
    assert completion.text == "a b" and completion.logprobs is None


def test_float_rounding_of_a_certain_token_reads_as_zero() -> None:
    body = {"choices": [{"text": "a", "finish_reason": "stop",
                         "logprobs": {"token_logprobs": [3e-8, -0.25, -1e-6]}}]}
    values = completion_from_body(body, "completions").logprobs
    assert values == [0.0, -0.25, 0.0] and all(math.copysign(1, v) == 1 for v in values[::2])


def test_journal_form_keeps_logprobs_exactly_and_old_answers_still_load() -> None:
    values = [-1.4666, -0.3, -9999.0]  # as the wire keeps them: 4 decimals
    answer = Completion("The fruit", "stop", logprobs=values)
    stored = json.loads(json.dumps(answer.to_json()))
    assert Completion.from_json(stored).logprobs == values  # bit for bit: a resume agrees
    plain = Completion("x", "stop").to_json()
    assert "logprobs" not in plain  # an answer without them is journaled as before
    old = {"text": "x", "finish_reason": "stop", "request_id": "r", "prompt_tokens": 1,
           "completion_tokens": 1, "error": None, "attempts": 1, "usage_unknown": False}
    assert Completion.from_json(old).logprobs is None


# -- the test server's log-probs, through our own client ---------------------------------------


def _ask(api: str, prompt: str, model: str = "test-model", **params: Any) -> Completion:
    with start_server() as server, LLMClient(base_url=server.base_url, api_key="k",
                                             model=model, api=api) as client:
        return client.run_batch([Request("instances", prompt, params, "n")])[0]


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_server_gives_one_logprob_per_token_only_when_asked(api: str) -> None:
    prompt = "Tell me about gardens."
    asked = _ask(api, prompt, logprobs=True, temperature=0.0)
    assert asked.logprobs is not None and asked.text
    assert len(asked.logprobs) == count_tokens(asked.text) == asked.completion_tokens
    assert all(-0.4 <= value < 0 or -1.6 <= value <= -0.7 for value in asked.logprobs)
    again = _ask(api, prompt, logprobs=True, temperature=0.0)
    assert again.logprobs == asked.logprobs  # deterministic
    assert _ask(api, prompt, temperature=0.0).logprobs is None  # not asked
    assert _ask(api, prompt, model="test-model-no-logprobs", logprobs=True,
                temperature=0.0).logprobs is None


def test_a_model_that_refuses_logprobs_is_asked_again_without_them() -> None:
    """OpenAI's reasoning models answer `logprobs` with a 400: the answer is still wanted,
    unscored; once refused, the client stops asking (one 400, not one per request)."""
    asked = Request("instances", "Tell me about gardens.", {"logprobs": True}, "n")
    with start_server() as server, LLMClient(base_url=server.base_url, api_key="k",
                                             model="test-model-refuses-logprobs",
                                             api="chat") as client:
        first = client.run_batch([asked])[0]
        second = client.run_batch([Request("instances", "Name a fruit.", {"logprobs": True},
                                           "m")])[0]
        stats = server.stats()
        answered = [r["body"] for r in server.requests() if r["body"] is not None]
    for answer in (first, second):
        assert answer.error is None and answer.text and answer.logprobs is None
    assert stats["errors_by_status"] == {"400": 1} and stats["requests_total"] == 3
    assert len(answered) == 2 and not any("logprobs" in body for body in answered)


def test_server_tokens_join_back_to_the_text() -> None:
    with start_server() as server:
        import openai

        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        chat = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "日本の庭について"}],
            logprobs=True, top_logprobs=0)
        content = chat.choices[0].logprobs.content  # the SDK's own types parse it
        assert "".join(t.token for t in content) == chat.choices[0].message.content
        text = client.completions.create(model="test-model", prompt="Hello", logprobs=1)
        logprobs = text.choices[0].logprobs
        assert "".join(logprobs.tokens) == text.choices[0].text
        assert logprobs.text_offset[0] == 0 and len(logprobs.token_logprobs) == len(
            logprobs.tokens)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_batch_api_answers_carry_the_log_probs_a_direct_answer_has(
        api: str, tmp_path: Path) -> None:
    """Batch lines are built by the same `request_body` and read by the same parser."""
    request = Request("instances", "Tell me about gardens.",
                      {"max_tokens": 30, "logprobs": True, "seed": 1}, "n")
    with start_server() as server:
        with LLMClient(base_url=server.base_url, api_key="k", model="test-model",
                       api=api) as direct:
            expected = direct.run_batch([request])[0].logprobs
        with Journal(tmp_path) as journal, BatchClient(
                base_url=server.base_url, api_key="k", model="test-model", api=api,
                journal=journal, flush_after=0.02, poll_interval=0.02) as client:
            batched = client.submit(request).result(timeout=30)
        assert server.stats()["batch_requests_total"] == 1
    assert expected and batched.logprobs == expected


# -- the manifest summary ----------------------------------------------------------------------


def _row(confidence: float | None) -> dict[str, Any]:
    return {"provenance": {"confidence": confidence, "logprob_tokens": 3}}


def test_summary_bins_kept_and_dropped_rows_around_the_threshold() -> None:
    rejected = [{"reason": "low_confidence",
                 "detail": "confidence 0.1500 < min_confidence 0.6 (mean log-prob ...)"},
                {"reason": "refusal", "detail": "confidence 0.9 < nothing"}]
    summary = confidence_summary([_row(0.75), _row(0.71), _row(1.0)], rejected, 0.6)
    assert summary["status"] == "available" and summary["threshold"] == 0.6
    assert (summary["rows_scored"], summary["rows_unscored"], summary["dropped"]) == (3, 0, 1)
    assert summary["median"] == 0.75
    counts = {(b["low"], b["high"]): (b["kept"], b["dropped"]) for b in summary["bins"]}
    assert counts[(0.7, 0.8)] == (2, 0) and counts[(0.9, 1.0)] == (1, 0)
    assert counts[(0.1, 0.2)] == (0, 1)
    assert sum(b["kept"] + b["dropped"] for b in summary["bins"]) == 4


def test_summary_says_unavailable_when_no_row_was_scored() -> None:
    summary = confidence_summary([_row(None), _row(None)])
    assert summary["status"] == "unavailable" and summary["median"] is None
    assert (summary["rows_scored"], summary["rows_unscored"]) == (0, 2)
    assert confidence_summary([_row(None), _row(0.8)])["status"] == "partial"
