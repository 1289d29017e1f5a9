"""Tests of the answer styles over HTTP: accounting, unreadable answers, recorded replay, CLI.

Why: end-to-end tests account for every item through ``RunningServer.offered()``, so what the
server sends and what it says it offered must agree through the real ``openai`` client; the
recorded style must replay real answers for every prompt kind. What the styles write is
tested in tests/test_server_styles.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.servers import recorded
from tests.servers.openai_server import (
    RunningServer,
    apply_stop_and_max_tokens,
    fingerprint_of,
    start_server,
)
from tests.servers.record_real import KINDS
from tests.servers.style_requests import (
    APIS,
    LANGS,
    find_seed,
    messy_for,
    pipeline_like_request,
    sdk_client,
    send,
)
from tests.servers.styles import messy_latency_ms


@pytest.fixture(scope="module")
def messy_server() -> Iterator[RunningServer]:
    with start_server(style="messy") as server:
        yield server


# -- messy over HTTP: accounting ---------------------------------------------------------------

@pytest.mark.parametrize(("kind", "api"), [(k, a) for k in ("bootstrap", "alpaca") for a in APIS])
def test_offered_items_are_exactly_the_whole_items_in_the_text(
        messy_server: RunningServer, kind: str, api: str) -> None:
    client = sdk_client(messy_server)
    messy_server.reset()
    sent: dict[str, Any] = {}
    for index in range(12):
        prompt, params = pipeline_like_request(kind, "en", api, index)
        request_id, response = send(client, api, prompt, params)
        sent[request_id] = response
    entries = messy_server.offered()
    assert {e["id"] for e in entries} == set(sent)
    for entry in entries:
        response = sent[entry["id"]]
        choice = response.choices[0]
        text = (choice.message.content if api == "chat" else choice.text) or ""
        assert entry["response_id"] == response.id
        assert (entry["kind"], entry["api"], entry["style"]) == (kind, api, "messy")
        assert entry["finish_reason"] == choice.finish_reason
        if entry["unreadable"]:
            assert entry["offered"] == []
            continue
        assert entry["offered"], entry
        position = 0
        for item in entry["offered"]:  # in order, each wholly inside the text
            found = text.find(item, position)
            assert found != -1, (item, text)
            position = found + len(item)


def test_max_tokens_cut_leaves_only_whole_items_offered(messy_server: RunningServer) -> None:
    prompt, params = pipeline_like_request("bootstrap", "en", "chat", 1)
    client = sdk_client(messy_server)
    messy_server.reset()
    _, full = send(client, "chat", prompt, {**params, "stop": None})
    _, cut = send(client, "chat", prompt, {**params, "stop": None, "max_tokens": 40})
    whole, partial = messy_server.offered()
    assert cut.choices[0].finish_reason == "length"
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)
    assert partial["offered"] == whole["offered"][:len(partial["offered"])]
    assert len(partial["offered"]) < len(whole["offered"])
    assert all(item in cut.choices[0].message.content for item in partial["offered"])


@pytest.mark.parametrize(("shape", "api"), [("content_null", "chat"),
                                            ("content_null", "completions"),
                                            ("content_filter", "chat"), ("junk", "completions")])
def test_unreadable_answers_over_http(messy_server: RunningServer, shape: str, api: str) -> None:
    prompt, params = find_seed("bootstrap", "en", api, shape)
    messy_server.reset()
    request_id, response = send(sdk_client(messy_server), api, prompt, params)
    choice = response.choices[0]
    text = choice.message.content if api == "chat" else choice.text
    [entry] = messy_server.offered()
    assert entry["id"] == request_id and entry["unreadable"] and entry["offered"] == []
    if shape == "content_null":
        assert text is None if api == "chat" else text == ""
    elif shape == "content_filter":
        assert (text, choice.finish_reason) == ("", "content_filter")
    else:
        assert text.startswith("\n") and not any(line[:1].isdigit() for line in text.split("\n"))


def test_same_request_same_answer_and_offer(messy_server: RunningServer) -> None:
    prompt, params = pipeline_like_request("alpaca", "ja", "chat", 2)
    client = sdk_client(messy_server)
    messy_server.reset()
    _, first = send(client, "chat", prompt, params)
    _, second = send(client, "chat", prompt, params)
    _, other = send(client, "chat", prompt, {**params, "seed": params["seed"] + 1})
    a, b, c = messy_server.offered()
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert (a["offered"], a["shapes"]) == (b["offered"], b["shapes"]) != (c["offered"], c["shapes"])


# -- recorded ----------------------------------------------------------------------------------

def test_fixture_covers_every_kind_language_and_api() -> None:
    groups = recorded.load()
    assert recorded.FIXTURE.stat().st_size < 1_000_000
    for kind in KINDS:
        for lang in LANGS:
            for api in APIS:
                records = groups.get((kind, lang, api), [])
                assert len(records) >= 4, (kind, lang, api)
                assert all(r["model"] == "smollm2-135m-instruct" for r in records)
    for lang in LANGS:
        assert len(groups.get(("answer", lang, "chat"), [])) >= 3, lang


@pytest.mark.parametrize("api", APIS)
def test_replay_serves_recorded_answers_for_each_kind(api: str) -> None:
    groups = recorded.load()
    with start_server(style="recorded") as server:
        client = sdk_client(server)
        for kind in KINDS:
            for lang in LANGS:
                answers = {r["answer"] or "" for r in groups[(kind, lang, api)]}
                served = set()
                for index in range(6):
                    prompt, params = pipeline_like_request(kind, lang, api, 100 + index)
                    _, response = send(client, api, prompt, params)
                    choice = response.choices[0]
                    text = (choice.message.content if api == "chat" else choice.text) or ""
                    cuts = {apply_stop_and_max_tokens(a, params.get("stop"),
                                                      params["max_tokens"])[0] for a in answers}
                    assert text in cuts, (kind, lang, text)
                    served.add(text)
                assert len(served) > 1 or len(cuts) == 1, (kind, lang)
        entries = server.offered()
    assert {e["style"] for e in entries} == {"recorded"} and all(
        e["offered"] is None for e in entries)


def test_replay_answers_unknown_prompts_with_recorded_direct_answers() -> None:
    """The direct-answer mode's prompt is the bare instruction: in chat it gets a recorded
    direct answer; through completions, where it was never recorded, a clear error."""
    answers = {r["answer"] for r in recorded.load()[("answer", "en", "chat")]}
    with start_server(style="recorded") as server:
        client = sdk_client(server)
        reply = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Name a fruit."}])
        assert reply.choices[0].message.content in answers
        with pytest.raises(openai.InternalServerError, match="no recorded completions"):
            client.completions.create(model="test-model", prompt="Name a fruit.")


# -- CLI ---------------------------------------------------------------------------------------

def test_cli_style_flag() -> None:
    bad = subprocess.run([sys.executable, "-m", "tests.servers.openai_server", "--style", "x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'x'" in bad.stderr
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.openai_server", "--style",
                             "messy"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "READY"
        prompt, params = find_seed("classify", "en", "chat", "verdict:The answer is: {v}.")
        client = openai.OpenAI(base_url=ready[1], api_key="test", max_retries=0)
        answer = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": prompt}], **params)
        assert json.dumps(answer.choices[0].message.content).startswith('"The answer is: ')
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_faults_combine_with_the_messy_style() -> None:
    """A faulted answer's offer says what the faulted text still carries."""
    prompt, params = find_seed("bootstrap", "en", "chat", "layout:plain")
    expected = messy_for(prompt, "chat", params)
    with start_server(style="messy", fault_rate=1.0, fault_kinds="garbage",
                      max_faults_per_request=1) as server:
        client = sdk_client(server)
        _, garbage = send(client, "chat", prompt, params)
        _, retried = send(client, "chat", prompt, params)
        junk, whole = server.offered()
    assert junk["fault"] == "garbage" and junk["unreadable"] and junk["offered"] == []
    assert "9. " not in garbage.choices[0].message.content
    assert whole["fault"] is None and not whole["unreadable"]
    assert whole["offered"] == expected.offered_within(
        len(retried.choices[0].message.content))


def test_messy_server_waits_the_fingerprints_delay(messy_server: RunningServer) -> None:
    """A request whose fingerprint draws a tail delay really waits it (a lower bound only)."""
    bodies = ({"model": "test-model", "prompt": "Say hi.", "seed": seed} for seed in range(2000))
    body = next(b for b in bodies if messy_latency_ms(fingerprint_of(b), 0.0) > 150)
    started = time.monotonic()
    request = urllib.request.Request(f"{messy_server.base_url}/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer test"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    assert time.monotonic() - started >= messy_latency_ms(fingerprint_of(body), 0.0) / 1000
