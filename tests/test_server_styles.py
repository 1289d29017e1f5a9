"""Tests of what the test server's answer styles write: clean (unchanged) and messy.

Why: the end-to-end tests of issue 11 trust the messy style to produce every shape real models
write, at known rates, deterministically, and to record exactly which items each answer
carried; the clean style must never drift (the benchmarks compare runs across commits).
Requests are built like the pipeline builds them (tests/servers/style_requests.py). What the
server serves and accounts over HTTP, and the recorded style, are in
tests/test_server_styles_http.py.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from selfinstruct.parse_text import unwrap
from tests.servers import messy_fields, messy_lists, styled
from tests.servers.openai_server import RunningServer, generate_answer
from tests.servers.record_real import KINDS
from tests.servers.style_requests import (
    APIS,
    LANGS,
    messy_for,
    pipeline_like_request,
    sdk_client,
    send,
)
from tests.servers.styles import messy_latency_ms


def _answers(kind: str, lang: str, api: str, count: int) -> list[styled.StyledAnswer]:
    """``count`` messy answers to one prompt of ``kind`` (only the sampling seed varies)."""
    prompt, params = pipeline_like_request(kind, lang, api, 0)
    return [messy_for(prompt, api, {**params, "seed": seed}) for seed in range(count)]


def _shape_counts(answers: list[styled.StyledAnswer]) -> Counter[str]:
    return Counter(shape for answer in answers for shape in answer.shapes)


def _within(count: int, total: int, rate: float) -> bool:
    """Whether ``count`` of ``total`` fits ``rate`` within 4.5 binomial standard deviations."""
    sigma = (total * rate * (1 - rate)) ** 0.5
    return abs(count - total * rate) <= 4.5 * sigma + 1


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
                    prompt, params = pipeline_like_request(kind, lang, api, index)
                    text = generate_answer(prompt, chat=api == "chat", temperature=params[
                        "temperature"], top_p=params["top_p"], seed=params["seed"])
                    digest.update(text.encode("utf-8") + b"\x1e")
    assert digest.hexdigest() == CLEAN_DIGEST


@pytest.mark.parametrize(("kind", "api"), [(k, a) for k in ("bootstrap", "alpaca") for a in APIS])
def test_clean_style_offers_the_items_of_its_answers(openai_server: RunningServer, kind: str,
                                                     api: str) -> None:
    client = sdk_client(openai_server)
    for lang in LANGS:
        prompt, params = pipeline_like_request(kind, lang, api, 0)
        request_id, response = send(client, api, prompt, params)
        _, cut = send(client, api, prompt, {**params, "max_tokens": 60})
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


def test_quoted_items_are_offered_in_parentheses_in_lists_and_alpaca() -> None:
    """The clean generator's quoted punctuation item ('"…"') is written "(…)" in bootstrap and
    Alpaca answers: parsers unwrap quotes around a whole item, so a quoted item's offered text
    would never match the instruction the pipeline reads."""
    parenthesised: Counter[str] = Counter()
    for kind in ("bootstrap", "alpaca"):
        for lang in LANGS:
            for answer in _answers(kind, lang, "chat", 300):
                for _, item in answer.items:
                    assert unwrap(item) == item, (kind, lang, item)
                    parenthesised[kind] += item.startswith("(") and item.endswith(")")
    assert parenthesised["bootstrap"] and parenthesised["alpaca"], parenthesised


def test_latency_is_heavy_tailed_deterministic_and_scaled() -> None:
    delays = [messy_latency_ms(f"{i:064x}", 0.0) for i in range(20_000)]
    assert delays == [messy_latency_ms(f"{i:064x}", 0.0) for i in range(20_000)]
    tail = [d for d in delays if d >= 100]
    assert 2.0 < sum(delays) / len(delays) < 8.0
    assert _within(len(tail), len(delays), 0.01) and max(delays) <= 300
    assert sorted(delays)[len(delays) // 2] < 4.0
    assert messy_latency_ms("ab" * 32, 40.0) == pytest.approx(10 * messy_latency_ms("ab" * 32,
                                                                                   4.0))


