"""Tests of the test server's answer styles: clean (unchanged), messy and recorded.

Why: the end-to-end tests of issue 11 trust the messy style to produce every shape real models
write, at known rates, deterministically, and trust ``RunningServer.offered()`` to say exactly
which items each answer carried; the recorded style must replay real answers for every prompt
kind. Requests are built like the pipeline builds them (tests/servers/record_real.py) from the
real templates and seed files, and go through the real ``openai`` client over loopback HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from selfinstruct.prompts import PromptSet
from selfinstruct.seeds import SeedTask, load_seeds
from tests.servers import messy_fields, messy_lists, recorded, styled
from tests.servers.answers import request_material
from tests.servers.openai_server import (
    RunningServer,
    apply_stop_and_max_tokens,
    fingerprint_of,
    generate_answer,
    start_server,
)
from tests.servers.record_real import KINDS, SEED_FILES, pipeline_request
from tests.servers.styles import messy_answer, messy_latency_ms

LANGS = ("en", "ja")
APIS = ("chat", "completions")


@functools.cache
def _language(lang: str) -> tuple[PromptSet, tuple[SeedTask, ...]]:
    return PromptSet(lang), load_seeds(SEED_FILES[lang]).tasks


def _request(kind: str, lang: str, api: str, index: int) -> tuple[str, dict[str, Any]]:
    """The ``index``-th pipeline-like request of a kind: real template, real seed samples."""
    rng = random.Random(f"{kind}:{lang}:{api}:{index}")
    return pipeline_request(kind, *_language(lang), rng, api)


def _answers(kind: str, lang: str, api: str, count: int) -> list[styled.StyledAnswer]:
    """``count`` messy answers to one prompt of ``kind`` (only the sampling seed varies)."""
    prompt, params = _request(kind, lang, api, 0)
    return [_messy(prompt, api, {**params, "seed": seed}) for seed in range(count)]


def _messy(prompt: str, api: str, params: dict[str, Any]) -> styled.StyledAnswer:
    """The messy answer the server gives to this request (chat seeds from the messages)."""
    chat = api == "chat"
    return messy_answer(prompt, chat, request_material(
        prompt, chat=chat, model="test-model", temperature=params["temperature"],
        top_p=params["top_p"], seed=params["seed"], choice_index=0,
        hash_material=[{"role": "user", "content": prompt}] if chat else prompt))


def _shape_counts(answers: list[styled.StyledAnswer]) -> Counter[str]:
    return Counter(shape for answer in answers for shape in answer.shapes)


def _within(count: int, total: int, rate: float) -> bool:
    """Whether ``count`` of ``total`` fits ``rate`` within 4.5 binomial standard deviations."""
    sigma = (total * rate * (1 - rate)) ** 0.5
    return abs(count - total * rate) <= 4.5 * sigma + 1


@pytest.fixture(scope="module")
def messy_server() -> Iterator[RunningServer]:
    with start_server(style="messy") as server:
        yield server


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def _send(client: openai.OpenAI, api: str, prompt: str, params: dict[str, Any]) -> tuple[str, Any]:
    """One request through the real SDK; returns the x-request-id and the parsed response."""
    if api == "chat":
        raw = client.chat.completions.with_raw_response.create(
            model="test-model", messages=[{"role": "user", "content": prompt}], **params)
    else:
        raw = client.completions.with_raw_response.create(model="test-model", prompt=prompt,
                                                          **params)
    return raw.headers["x-request-id"], raw.parse()


# -- clean ------------------------------------------------------------------------------------

# sha256 of clean answers to a fixed set of pipeline-like requests, taken when the styles were
# added: the benchmarks compare runs across commits, so the clean style must never drift.
CLEAN_DIGEST = "9beab9496fc54ee48409211835dbed2724c8f09fbe463bec64ceaab6a32ecfcc"


def test_clean_answers_did_not_change() -> None:
    digest = hashlib.sha256()
    for kind in KINDS:
        for lang in LANGS:
            for api in APIS:
                for index in range(3):
                    prompt, params = _request(kind, lang, api, index)
                    text = generate_answer(prompt, chat=api == "chat", temperature=params[
                        "temperature"], top_p=params["top_p"], seed=params["seed"])
                    digest.update(text.encode("utf-8") + b"\x1e")
    assert digest.hexdigest() == CLEAN_DIGEST


@pytest.mark.parametrize(("kind", "api"), [(k, a) for k in ("bootstrap", "alpaca") for a in APIS])
def test_clean_style_offers_the_items_of_its_answers(openai_server: RunningServer, kind: str,
                                                     api: str) -> None:
    client = _client(openai_server)
    for lang in LANGS:
        prompt, params = _request(kind, lang, api, 0)
        request_id, response = _send(client, api, prompt, params)
        _, cut = _send(client, api, prompt, {**params, "max_tokens": 60})
        whole, partial = openai_server.offered()[-2:]
        choice = response.choices[0]
        text = choice.message.content if api == "chat" else choice.text
        lines = [line.strip() for line in text.split("\n")]
        assert whole["id"] == request_id and whole["kind"] == kind and whole["style"] == "clean"
        assert len(whole["offered"]) >= 5
        for item in whole["offered"]:
            assert any(line.endswith(" " + item) or line == item for line in lines), item
        cut_text = cut.choices[0].message.content if api == "chat" else cut.choices[0].text
        assert cut.choices[0].finish_reason == "length"
        assert partial["offered"] == whole["offered"][:len(partial["offered"])]
        assert all(item in cut_text for item in partial["offered"])
        assert len(partial["offered"]) < len(whole["offered"])


# -- messy: shapes and their frequencies --------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
def test_bootstrap_layouts_and_wrappers_appear_at_their_rates(lang: str) -> None:
    answers = _answers("bootstrap", lang, "chat", 1500)
    counts = _shape_counts(answers)
    readable = [a for a in answers if not a.unreadable]
    layouts = messy_lists.CHAT_LAYOUTS[lang]
    weight = sum(w for _, _, w in layouts)
    for name, _, w in layouts:
        assert _within(counts[f"layout:{name}"], len(readable), w / weight), (name, counts)
    for shape, rate in (("preamble", styled.PREAMBLE_RATE), ("closing", styled.CLOSING_RATE),
                        ("fence", styled.FENCE_RATE)):
        assert _within(counts[shape], len(readable), rate), (shape, counts[shape])
    for shape, rate in (("content_null", styled.NULL_RATE),
                        ("content_filter", styled.CONTENT_FILTER_RATE), ("junk", styled.JUNK_RATE)):
        assert _within(counts[shape], len(answers), rate), (shape, counts[shape])
    items = sum(v for k, v in counts.items() if k.startswith("item:"))
    for defect, rate in messy_lists.ITEM_DEFECT_RATES:
        assert _within(counts[f"item:{defect}"], items, rate), (defect, counts[f"item:{defect}"])


# The first line of each chat layout as it must appear in the text, for a list continuing at 9.
_FIRST_LINE = {
    "plain": r"^9\. ", "restart": r"^1\. ", "dash": r"^- ", "star": r"^\* ",
    "bold_number": r"^\*\*9\.\*\* ", "paren": r"^9\) ", "task_colon": r"^Task 9: ",
    "task_heading": r"^### (?:Task |タスク)9$", "fullwidth": r"^９．", "nakaguro": r"^・",
    "ja_task": r"^タスク9：",
}


@pytest.mark.parametrize("lang", LANGS)
def test_every_chat_layout_is_really_in_the_text(lang: str) -> None:
    seen = set()
    for answer in _answers("bootstrap", lang, "chat", 300):
        if answer.unreadable:
            continue
        layout = next(s for s in answer.shapes if s.startswith("layout:")).split(":", 1)[1]
        assert re.search(_FIRST_LINE[layout], answer.text or "", re.MULTILINE), answer.text
        seen.add(layout)
    assert seen == {name for name, _, _ in messy_lists.CHAT_LAYOUTS[lang]}


def test_japanese_answers_use_japanese_markup_and_english_ones_do_not() -> None:
    ja = _shape_counts(_answers("bootstrap", "ja", "chat", 400))
    en = _shape_counts(_answers("bootstrap", "en", "chat", 400))
    assert ja["layout:fullwidth"] and ja["layout:nakaguro"] and ja["layout:ja_task"]
    assert not (en["layout:fullwidth"] or en["layout:nakaguro"] or en["layout:ja_task"])


def test_usable_share_of_offered_bootstrap_items() -> None:
    """~60-75 % of offered items are fine instructions, so a messy run reaches its target."""
    for lang in LANGS:
        answers = _answers("bootstrap", lang, "chat", 400)
        categories = Counter(s.split(":", 1)[1] for a in answers for s in a.shapes
                             if s.startswith("item:"))
        fine = categories["good"] / sum(categories.values())
        assert 0.60 <= fine <= 0.75, (lang, fine, categories)


def test_field_answers_show_every_documented_shape() -> None:
    classify = {shape for lang in LANGS for shape in _shape_counts(
        _answers("classify", lang, "chat", 400))}
    for lang in LANGS:
        for template, _ in messy_fields.VERDICTS[lang]:
            assert f"verdict:{template}" in classify, template
    judge = _shape_counts(_answers("judge", "ja", "chat", 400)) + _shape_counts(
        _answers("judge", "en", "chat", 400))
    for name, _ in messy_fields.JUDGE_SHAPES:
        assert judge[f"judge:{name}"], name
    for lang in LANGS:
        labels = _shape_counts(_answers("label", lang, "chat", 300))
        for template, _ in messy_fields.LABEL_SHAPES[lang]:
            assert labels[f"label:{template}"], template
        instances = _shape_counts(_answers("instances_input_first", lang, "chat", 600))
        for name, _ in messy_fields.INSTANCE_LAYOUTS:
            assert instances[f"layout:{name}"], name
        for name, rate in messy_fields.INSTANCE_DEFECT_RATES:
            assert instances[f"instance:{name}"], name
            readable = sum(instances[f"layout:{n}"] for n, _ in messy_fields.INSTANCE_LAYOUTS)
            assert _within(instances[f"instance:{name}"], readable, rate), name
        alpaca = _shape_counts(_answers("alpaca", lang, "chat", 200))
        for name, _ in messy_lists.ALPACA_LAYOUTS:
            assert alpaca[f"layout:{name}"], name
        for spelling in messy_lists.NO_INPUT_SPELLINGS:
            assert alpaca[f"no_input:{spelling or 'empty'}"], spelling
        items = sum(v for k, v in alpaca.items() if k.startswith("item:"))
        assert _within(alpaca["output:wrong_language"], items,
                       messy_lists.WRONG_LANGUAGE_OUTPUT_RATE)


def test_instance_defects_are_in_the_text() -> None:
    """Conflicting outputs repeat one input with another output; wrong-language outputs."""
    seen = set()
    for answer in _answers("instances_input_first", "en", "chat", 600):
        text = answer.text or ""
        if "instance:conflicting_outputs" in answer.shapes:
            pairs, current = [], ""
            for line in text.splitlines():
                field, _, value = line.lstrip("*").partition(":")
                if field in ("Input", "Output"):
                    value = value.strip(" *")
                    if field == "Input":
                        current = value
                    else:
                        pairs.append((current, value))
            assert any(a[0] == b[0] and a[1] != b[1] for i, a in enumerate(pairs)
                       for b in pairs[i + 1:]), text
            seen.add("conflicting")
        if "instance:wrong_language_output" in answer.shapes:
            assert any("\u3040" <= ch <= "\u30ff" for ch in text), text
            seen.add("wrong_language")
    assert seen == {"conflicting", "wrong_language"}


def test_messy_answers_are_a_function_of_the_request() -> None:
    for kind in KINDS:
        first = [a.text for a in _answers(kind, "ja", "completions", 20)]
        assert first == [a.text for a in _answers(kind, "ja", "completions", 20)]
        assert len(set(first)) > 1 or kind == "classify", kind


# -- messy over HTTP: accounting ---------------------------------------------------------------

@pytest.mark.parametrize(("kind", "api"), [(k, a) for k in ("bootstrap", "alpaca") for a in APIS])
def test_offered_items_are_exactly_the_whole_items_in_the_text(
        messy_server: RunningServer, kind: str, api: str) -> None:
    client = _client(messy_server)
    messy_server.reset()
    sent: dict[str, Any] = {}
    for index in range(12):
        prompt, params = _request(kind, "en", api, index)
        request_id, response = _send(client, api, prompt, params)
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


def test_item_offsets_point_at_the_item_text() -> None:
    """Every recorded item ends exactly where its text ends, after preambles and fences too:
    the offsets decide which items a stop or max_tokens cut leaves offered."""
    shapes: Counter[str] = Counter()
    for kind in ("bootstrap", "alpaca"):
        for lang in LANGS:
            for api in APIS:
                for answer in _answers(kind, lang, api, 150):
                    shapes.update(answer.shapes)
                    for end, item in answer.items:
                        assert (answer.text or "")[end - len(item):end] == item, answer.shapes
    assert shapes["preamble"] and shapes["fence"]


def test_max_tokens_cut_leaves_only_whole_items_offered(messy_server: RunningServer) -> None:
    prompt, params = _request("bootstrap", "en", "chat", 1)
    client = _client(messy_server)
    messy_server.reset()
    _, full = _send(client, "chat", prompt, {**params, "stop": None})
    _, cut = _send(client, "chat", prompt, {**params, "stop": None, "max_tokens": 40})
    whole, partial = messy_server.offered()
    assert cut.choices[0].finish_reason == "length"
    assert full.choices[0].message.content.startswith(cut.choices[0].message.content)
    assert partial["offered"] == whole["offered"][:len(partial["offered"])]
    assert len(partial["offered"]) < len(whole["offered"])
    assert all(item in cut.choices[0].message.content for item in partial["offered"])


def _find_seed(kind: str, lang: str, api: str, shape: str) -> tuple[str, dict[str, Any]]:
    """A pipeline-like request whose messy answer has ``shape`` (searched, deterministic)."""
    prompt, params = _request(kind, lang, api, 0)
    for seed in range(5000):
        if shape in _messy(prompt, api, {**params, "seed": seed}).shapes:
            return prompt, {**params, "seed": seed}
    raise AssertionError(f"no {shape} answer in 5000 seeds")


@pytest.mark.parametrize(("shape", "api"), [("content_null", "chat"),
                                            ("content_null", "completions"),
                                            ("content_filter", "chat"), ("junk", "completions")])
def test_unreadable_answers_over_http(messy_server: RunningServer, shape: str, api: str) -> None:
    prompt, params = _find_seed("bootstrap", "en", api, shape)
    messy_server.reset()
    request_id, response = _send(_client(messy_server), api, prompt, params)
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
    prompt, params = _request("alpaca", "ja", "chat", 2)
    client = _client(messy_server)
    messy_server.reset()
    _, first = _send(client, "chat", prompt, params)
    _, second = _send(client, "chat", prompt, params)
    _, other = _send(client, "chat", prompt, {**params, "seed": params["seed"] + 1})
    a, b, c = messy_server.offered()
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert (a["offered"], a["shapes"]) == (b["offered"], b["shapes"]) != (c["offered"], c["shapes"])


def test_latency_is_heavy_tailed_deterministic_and_scaled() -> None:
    delays = [messy_latency_ms(f"{i:064x}", 0.0) for i in range(20_000)]
    assert delays == [messy_latency_ms(f"{i:064x}", 0.0) for i in range(20_000)]
    tail = [d for d in delays if d >= 100]
    assert 2.0 < sum(delays) / len(delays) < 8.0
    assert _within(len(tail), len(delays), 0.01) and max(delays) <= 300
    assert sorted(delays)[len(delays) // 2] < 4.0
    assert messy_latency_ms("ab" * 32, 40.0) == pytest.approx(10 * messy_latency_ms("ab" * 32,
                                                                                   4.0))


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
        client = _client(server)
        for kind in KINDS:
            for lang in LANGS:
                answers = {r["answer"] or "" for r in groups[(kind, lang, api)]}
                served = set()
                for index in range(6):
                    prompt, params = _request(kind, lang, api, 100 + index)
                    _, response = _send(client, api, prompt, params)
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
        client = _client(server)
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
        prompt, params = _find_seed("classify", "en", "chat", "verdict:The answer is: {v}.")
        client = openai.OpenAI(base_url=ready[1], api_key="test", max_retries=0)
        answer = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": prompt}], **params)
        assert json.dumps(answer.choices[0].message.content).startswith('"The answer is: ')
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_faults_combine_with_the_messy_style() -> None:
    """A faulted answer's offer says what the faulted text still carries."""
    prompt, params = _find_seed("bootstrap", "en", "chat", "layout:plain")
    expected = _messy(prompt, "chat", params)
    with start_server(style="messy", fault_rate=1.0, fault_kinds="garbage",
                      max_faults_per_request=1) as server:
        client = _client(server)
        _, garbage = _send(client, "chat", prompt, params)
        _, retried = _send(client, "chat", prompt, params)
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
