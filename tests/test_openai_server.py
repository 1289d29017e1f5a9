"""Tests of the loopback OpenAI-compatible test server (tests/servers/openai_server.py).

Why: every other test and benchmark trusts this server to behave like a real endpoint seen
through the real ``openai`` client, to be deterministic, to inject faults exactly as
documented, and to produce instruction data diverse enough for the pipeline's filters. These
tests pin those promises. Prompts are rendered from the real template files.
"""

from __future__ import annotations

import difflib
import http.client
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jinja2
import openai
import pytest

from selfinstruct.llm import Completion, Request
from selfinstruct.parsing import parse_instances
from selfinstruct.prompts import PromptSet
from selfinstruct.quality import (
    Item,
    _first_line,
    check_label_consistency,
    judge,
    parse_judgement,
    same_label,
)
from tests.servers import instances, instructions, judge_label, vocab_en, vocab_ja
from tests.servers import openai_server as srv
from tests.servers.openai_server import (
    FAULT_KINDS,
    RunningServer,
    apply_stop_and_max_tokens,
    count_tokens,
    detect_prompt,
    generate_answer,
    start_server,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "prompts"
BOOTSTRAP_STOP_COMPLETIONS = ["\n\n", "\n16", "16.", "16 ."]
BOOTSTRAP_STOP_CHAT = ["\n16.", "16."]
ALPACA_STOP = ["\n20", "20.", "20 ."]

EN_INSTRUCTIONS = [
    "Is there anything I can eat for breakfast that does not include eggs but has protein?",
    "What is the relation between the given pairs?",
    "Generate a one-sentence description for each of the following people.",
    "Describe a situation in which the given stereotype can harm you.",
    "Generate an appropriate subjective title for the following email.",
    "How do you answer this question in a job interview?",
    "Brainstorm a list of possible New Year's resolutions.",
    "Explain the following idiom to me, and try to give me some examples.",
    "Generate a haiku using the following keywords.",
    "Design an outline for a blog post based on the given information.",
    "Come up with some creative arguments to persuade a friend to exercise.",
    "Suggest some practical exercises to improve concentration.",
    "Find the four smallest perfect numbers.",
    "Write a letter to your landlord asking to fix the heating.",
    "Make a list of the pros and cons of the given decision.",
    "Tell me the first person to land on the Moon.",
    "Answer the following question with a short explanation.",
    "Rewrite the given sentence in the passive voice.",
    "Classify the sentiment of the sentence into positive, negative or mixed.",
    "Is the following statement true or false?",
    "Solve the equation and show your work.",
    "Correct the grammatical errors in the given text.",
    "Give me a recipe for a vegan dessert.",
    "Translate the sentence into French.",
    "Summarize the article in two sentences.",
    "Write a short story about a lost umbrella.",
    "Which exercises are best for reducing back pain?",
    "Identify the odd one out in the given list.",
    "Sort the given numbers in ascending order.",
    "Create a funny slogan for a bakery.",
]
JA_INSTRUCTIONS = [
    "朝食におすすめの、卵を使わない高たんぱくな料理を教えてください。",
    "次の二つの単語の関係を説明してください。",
    "与えられた人物について一文で紹介文を書いてください。",
    "次のメールに適切な件名を付けてください。",
    "就職面接でこの質問にどう答えればよいですか？",
    "新年の抱負の候補をいくつか挙げてください。",
    "次のことわざの意味を説明し、使用例を示してください。",
    "与えられたキーワードを使って俳句を作ってください。",
    "友人に運動を勧める説得力のある理由を考えてください。",
    "集中力を高める実践的な方法を提案してください。",
    "大家に暖房の修理を依頼する手紙を書いてください。",
    "次の決断の長所と短所を挙げてください。",
    "月面に初めて降り立った人物は誰ですか？",
    "次の文を受け身の形に書き換えてください。",
    "次の文の感情を肯定的か否定的かに分類してください。",
    "次の記述は正しいですか、誤っていますか？",
    "方程式を解き、途中の計算も示してください。",
    "次の文章の文法の誤りを直してください。",
    "動物性食品を使わないデザートの作り方を教えて。",
    "この文をフランス語に翻訳してください。",
    "記事を二文で要約してください。",
    "なくした傘をめぐる短い物語を書いてください。",
    "腰痛の改善に役立つ運動はどれですか？",
    "次のリストの中で仲間外れのものを選んでください。",
    "与えられた数を小さい順に並べてください。",
    "パン屋のための面白いキャッチコピーを作ってください。",
    "梅雨の季節を快適に過ごす工夫を三つ教えてください。",
    "東京から京都への旅行の行程を立ててください。",
    "子供に虹ができる理由を説明してください。",
    "来週の会議の議題案をまとめてください。",
]
EN_BLACKLIST = ("image", "graph", "picture", "file", "map", "draw", "plot", "go to", "video",
                "audio", "music", "flowchart", "diagram")
JA_BLACKLIST = ("画", "図", "描", "絵", "写真", "映像", "音声", "音楽", "地図", "ファイル",
                "グラフ", "撮影", "イラスト")


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_server() as running:
        yield running


@pytest.fixture()
def fresh() -> Iterator[RunningServer]:
    """A server of its own, for tests that assert exact counters."""
    with start_server() as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def _examples(lang: str) -> list[dict[str, Any]]:
    if lang == "en":
        return [
            {"instruction": "Sort the numbers in ascending order.", "is_classification": False,
             "instances": [{"input": "3, 1, 2", "output": "1, 2, 3"}]},
            {"instruction": "Is the review positive or negative?", "is_classification": True,
             "instances": [{"input": "Great food!", "output": "Positive"},
                           {"input": "Cold soup.", "output": "Negative"}]},
            {"instruction": "Tell me a joke.", "is_classification": False,
             "instances": [{"input": "", "output": "Why did the chicken cross the road?"}]},
        ]
    return [
        {"instruction": "数を小さい順に並べてください。", "is_classification": False,
         "instances": [{"input": "3, 1, 2", "output": "1, 2, 3"}]},
        {"instruction": "このレビューが肯定的か否定的か判定してください。",
         "is_classification": True,
         "instances": [{"input": "美味しかった！", "output": "肯定的"},
                       {"input": "スープが冷めていた。", "output": "否定的"}]},
        {"instruction": "冗談を一つ言ってください。", "is_classification": False,
         "instances": [{"input": "", "output": "布団が吹っ飛んだ。"}]},
    ]


def _render(env: jinja2.Environment, lang: str, name: str, **context: Any) -> str:
    return env.get_template(f"{lang}/{name}.j2").render(**context)


def _instructions(lang: str) -> list[str]:
    return EN_INSTRUCTIONS if lang == "en" else JA_INSTRUCTIONS


def _ask(
    client: openai.OpenAI, api: str, prompt: str, **kwargs: Any
) -> tuple[str, str]:
    """Send ``prompt`` the way the pipeline does; return (text, finish_reason)."""
    if api == "chat":
        chat = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": prompt}], **kwargs
        )
        return chat.choices[0].message.content or "", chat.choices[0].finish_reason
    completion = client.completions.create(model="test-model", prompt=prompt, **kwargs)
    return completion.choices[0].text, completion.choices[0].finish_reason


def _parse_numbered(text: str) -> list[str]:
    """A tolerant list parser, like the pipeline's must be (bold numbers, preambles)."""
    items = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:\*\*)?\d+\s*\.(?:\*\*)?\s*(.+)$", line)
        if m:
            items.append(m.group(1).strip())
    return items


def _raw(
    server: RunningServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        payload = None if body is None else (
            body if isinstance(body, bytes) else json.dumps(body).encode()
        )
        hdrs = {"Authorization": "Bearer test", "Content-Type": "application/json"}
        hdrs.update(headers or {})
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


CHAT_BODY = {"model": "test-model", "messages": [{"role": "user", "content": "Say hello."}]}


# --------------------------------------------------------------------------------------------
# Prompt kinds through the real client, both APIs, both languages
# --------------------------------------------------------------------------------------------

LANGS = ("en", "ja")
APIS = ("completions", "chat")


@pytest.mark.parametrize("lang", LANGS)
def test_every_template_is_recognised(env: jinja2.Environment, lang: str) -> None:
    ex = _examples(lang)
    rendered = {
        "bootstrap": _render(env, lang, "bootstrap", instructions=_instructions(lang)[:8]),
        "classify": _render(env, lang, "classify", examples=ex, instruction="x"),
        "instances_input_first": _render(env, lang, "instances_input_first", examples=ex,
                                         instruction="x"),
        "instances_output_first": _render(env, lang, "instances_output_first", examples=ex,
                                          instruction="x"),
        "alpaca": _render(env, lang, "alpaca", num_tasks=20, tasks=[
            {"instruction": "a", "input": "", "output": "b"}]),
        "judge": _render(env, lang, "judge", labels=PromptSet(lang).labels, instruction="x",
                         input="", output="y"),
        "label": _render(env, lang, "label", labels=PromptSet(lang).labels, instruction="x",
                         input="z", options=["a", "b"]),
    }
    for kind, prompt in rendered.items():
        assert detect_prompt(prompt) == (kind, lang)
    assert detect_prompt("Hello there")[0] == "generic"


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_bootstrap(client: openai.OpenAI, env: jinja2.Environment, lang: str, api: str) -> None:
    in_context = _instructions(lang)[:8]
    prompt = _render(env, lang, "bootstrap", instructions=in_context)
    assert prompt.endswith("\n9.")
    stop = BOOTSTRAP_STOP_CHAT if api == "chat" else BOOTSTRAP_STOP_COMPLETIONS
    text, finish = _ask(client, api, prompt, temperature=0.7, top_p=0.5, max_tokens=1024,
                        stop=stop)
    assert finish == "stop"
    assert "16." not in text
    if api == "completions":
        assert text.startswith(" ") and not text.startswith("  ")
        items = [text.split("\n")[0].strip(), *_parse_numbered(text)]
        assert re.search(r"^10\. ", text, re.MULTILINE)
    else:
        items = _parse_numbered(text)
    assert 3 <= len(items) <= 8
    assert all(item for item in items)


def test_bootstrap_respects_the_requested_number(server: RunningServer) -> None:
    prompt = "Come up with a series of tasks:\n1. Tell a joke.\n2. Name a color.\n3."
    text = generate_answer(prompt, chat=False, temperature=0.7)
    assert text.startswith(" ")
    assert re.search(r"^4\. ", text, re.MULTILINE)
    assert not re.search(r"^3\. ", text, re.MULTILINE)


def test_chat_bootstrap_format_variations_are_deterministic_and_present(
    env: jinja2.Environment,
) -> None:
    styles: Counter[str] = Counter()
    for i in range(200):
        ctx = random.Random(i).sample(EN_INSTRUCTIONS, 8)
        text = generate_answer(_render(env, "en", "bootstrap", instructions=ctx), chat=True)
        assert text == generate_answer(
            _render(env, "en", "bootstrap", instructions=ctx), chat=True
        )
        if text.startswith("Here are more tasks:"):
            styles["preamble"] += 1
        elif text.startswith("**"):
            styles["bold"] += 1
        elif text.startswith("1. "):
            styles["restart"] += 1
        else:
            assert text.startswith("9. ")
            styles["plain"] += 1
        assert len(_parse_numbered(text)) >= 7
    assert all(styles[k] >= 4 for k in ("preamble", "bold", "restart")), styles
    assert 0.7 <= styles["plain"] / 200 <= 0.9, styles


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_classify(client: openai.OpenAI, env: jinja2.Environment, lang: str, api: str) -> None:
    ex = _examples(lang)
    if lang == "en":
        cases = {"Classify the following tweet as sarcastic or sincere.": "Yes",
                 "Write a poem about autumn leaves.": "No"}
    else:
        cases = {"次のツイートが皮肉か本気かを判定してください。": "はい",
                 "秋の落ち葉についての詩を書いてください。": "いいえ"}
    for instruction, expected in cases.items():
        prompt = _render(env, lang, "classify", examples=ex, instruction=instruction)
        text, finish = _ask(client, api, prompt, temperature=0, max_tokens=16)
        assert finish == "stop"
        if api == "completions":
            assert text == f" {expected}"
        else:
            assert text.startswith(expected)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_instances_input_first(
    client: openai.OpenAI, env: jinja2.Environment, lang: str, api: str
) -> None:
    lab = {"en": ("Example", "Input", "Output"), "ja": ("例", "入力", "出力")}[lang]
    instruction = (
        "Give three tips for better sleep." if lang == "en" else "よく眠るためのコツを三つ教えて。"
    )
    prompt = _render(env, lang, "instances_input_first", examples=_examples(lang),
                     instruction=instruction)
    text, finish = _ask(client, api, prompt, temperature=0, max_tokens=1024)
    assert finish == "stop"
    blocks = re.split(rf"(?m)^{lab[0]} \d+\n", text.strip())
    blocks = [b for b in blocks if b.strip()]
    assert 1 <= len(blocks) <= 4
    assert text.strip().startswith(f"{lab[0]} 1\n")
    for block in blocks:
        assert re.search(rf"(?m)^{lab[2]}:", block)


def test_instances_cover_no_input_and_bad_instances(env: jinja2.Environment) -> None:
    """Over many tasks: some no-input examples, and each instance-filter case occurs."""
    seen: Counter[str] = Counter()
    for i in range(600):
        rng = random.Random(i)
        pairs = instances.instance_pairs(instructions.en_good_instruction(rng), "en", rng)
        for inp, out, category in pairs:
            seen[category] += 1
            seen["no_input" if not inp else "with_input"] += 1
            if category == "input_equals_output":
                assert inp == out
            if category == "empty_output":
                assert out == ""
            if category == "ends_with_colon":
                assert out.endswith(":")
    total = seen["with_input"] + seen["no_input"]
    assert 0.12 <= seen["no_input"] / total <= 0.35, seen
    for category, rate in (("input_equals_output", 0.03), ("empty_output", 0.03),
                           ("ends_with_colon", 0.02)):
        assert rate / 2 <= seen[category] / total <= rate * 2, seen


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_instances_output_first(
    client: openai.OpenAI, env: jinja2.Environment, lang: str, api: str
) -> None:
    if lang == "en":
        instruction, label_word, input_word = (
            "Classify the following review of a bakery as positive, negative, or neutral.",
            "Class label", "Input")
        allowed = {"Positive", "Negative", "Neutral"}
    else:
        instruction, label_word, input_word = (
            "次のパン屋のレビューを「肯定的」「否定的」「中立」のいずれかに分類してください。",
            "クラスラベル", "入力")
        allowed = {"肯定的", "否定的", "中立"}
    prompt = _render(env, lang, "instances_output_first", examples=_examples(lang),
                     instruction=instruction)
    text, _ = _ask(client, api, prompt, temperature=0, max_tokens=1024)
    labels = re.findall(rf"(?m)^{label_word}: (.+)$", text)
    inputs = re.findall(rf"(?m)^{input_word}: (.+)$", text)
    assert 2 <= len(labels) <= 3
    assert len(inputs) == len(labels)
    assert set(labels) <= allowed
    assert all(inputs)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_alpaca(client: openai.OpenAI, env: jinja2.Environment, lang: str, api: str) -> None:
    words = {"en": ("Instruction", "Input", "Output"), "ja": ("指示", "入力", "出力")}[lang]
    tasks = [{"instruction": i, "input": "", "output": "ok"} for i in _instructions(lang)[:3]]
    prompt = _render(env, lang, "alpaca", num_tasks=20, tasks=tasks)
    assert prompt.endswith(f"4. {words[0]}:")
    text, finish = _ask(client, api, prompt, temperature=1.0, top_p=1.0, max_tokens=3072,
                        stop=ALPACA_STOP)
    assert finish == "stop"
    if api == "completions":
        assert text.startswith(" ")
        assert f"\n4. {words[1]}:\n" in text
    else:
        assert text.startswith(f"###\n4. {words[0]}: ")
    numbers = [int(n) for n in re.findall(rf"(?m)^(\d+)\. {words[0]}:", text)]
    assert numbers == list(range(4 if api == "chat" else 5, 20))
    assert len(re.findall(rf"(?m)^\d+\. {words[2]}:\n", text)) == 16
    assert "<noinput>" in text


@pytest.mark.parametrize("api", APIS)
def test_generic_prompt(client: openai.OpenAI, api: str) -> None:
    text, finish = _ask(client, api, "What is your name?")
    assert text and finish == "stop"


# --------------------------------------------------------------------------------------------
# Quality stage: the LLM judge and the label-consistency check (selfinstruct.quality)
# --------------------------------------------------------------------------------------------
# Prompts are rendered by the pipeline's own PromptSet and answers read by its own parsers,
# so a drift between the templates, the server and selfinstruct.quality fails here.

JUDGE_FIELDS = {"en": ("Clarity", "Correctness"), "ja": ("明確さ", "正確さ")}
CLS_INSTRUCTION = {
    "en": "Classify the following review of a bakery as positive, negative, or neutral.",
    "ja": "次のパン屋のレビューを「肯定的」「否定的」「中立」のいずれかに分類してください。",
}
CLS_LABELS = {"en": ("Positive", "Negative", "Neutral"), "ja": ("肯定的", "否定的", "中立")}
# The pipeline's request parameters (selfinstruct.quality.judge / check_label_consistency).
JUDGE_PARAMS: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 32}
LABEL_PARAMS: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 16,
                                "stop": ["\n"]}


@pytest.fixture(scope="module")
def prompt_sets() -> dict[str, PromptSet]:
    return {lang: PromptSet(lang) for lang in LANGS}


def _is_classification(instruction: str, lang: str) -> bool:
    if lang == "en":
        return vocab_en.EN_CLASSIFICATION_RE.search(instruction) is not None
    return any(k in instruction for k in vocab_ja.JA_CLASSIFICATION_KEYWORDS)


def _good_instructions(lang: str, seed: int, count: int, *, classification: bool) -> list[str]:
    """Server-made instructions (only classification ones, or only the others)."""
    rng = random.Random(seed)
    make = instructions.en_good_instruction if lang == "en" else instructions.ja_good_instruction
    found: list[str] = []
    while len(found) < count:
        text = make(rng)
        if _is_classification(text, lang) == classification and text not in found:
            found.append(text)
    return found


def _judge_cases(lang: str) -> list[tuple[str, str, str]]:
    if lang == "en":
        return [("Summarize the text in one sentence.", "Bees make honey from nectar.",
                 "Bees turn nectar into honey."),
                ("Tell me a joke.", "", ""),
                ("Fix the spelling.", "Teh cat sat.", "Teh cat sat.")]
    return [("次の文を一文で要約してください。", "蜂は花の蜜から蜂蜜を作る。",
             "蜂は蜜を蜂蜜に変える。"),
            ("冗談を一つ言ってください。", "", ""),
            ("次の文の誤字を直してください。", "猫がすわつた。", "猫がすわつた。")]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_judge(client: openai.OpenAI, prompt_sets: dict[str, PromptSet], lang: str,
               api: str) -> None:
    """Exactly the two rubric lines; empty or copied outputs get correctness 1."""
    first, second = JUDGE_FIELDS[lang]
    for k, (instruction, inp, out) in enumerate(_judge_cases(lang)):
        prompt = prompt_sets[lang].render("judge", instruction=instruction, input=inp,
                                          output=out)
        text, finish = _ask(client, api, prompt, **JUDGE_PARAMS)
        assert finish == "stop"
        if api == "completions":
            assert text.startswith("\n")  # the rubric ends with its own format line
            text = text[1:]
        assert re.fullmatch(rf"{first}: [1-5]\n{second}: [1-5]", text), text
        scores = parse_judgement(text)
        assert scores == srv.judge_scores(instruction, inp, out)
        if k > 0:  # empty output; output == input
            assert scores is not None and scores[1] == 1


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_label_consistency(client: openai.OpenAI, prompt_sets: dict[str, PromptSet], lang: str,
                           api: str) -> None:
    """The label of a generated input is the label generation paired with it."""
    ps = prompt_sets[lang]
    instruction = CLS_INSTRUCTION[lang]
    generated, _ = _ask(client, api, ps.render("instances_output_first",
                                                examples=_examples(lang), instruction=instruction),
                        temperature=0, max_tokens=1024)
    instances = parse_instances(generated, ps.labels, output_first=True, truncated=False)
    assert len(instances) >= 2
    options = sorted({inst.output for inst in instances})
    for inst in instances:
        assert srv.label_for_input(instruction, lang, inst.input) == inst.output
        prompt = ps.render("label", instruction=instruction, input=inst.input,
                           options=options if len(options) > 1 else [])
        text, finish = _ask(client, api, prompt, **LABEL_PARAMS)
        assert finish == "stop" and "\n" not in text
        if api == "completions":
            assert text.startswith(" ") and not text.startswith("  ")
        answer = _first_line(text, ps.labels.class_label)
        assert any(same_label(answer, label) for label in CLS_LABELS[lang]), text
    # An input the server did not generate: the first label of the task's label set.
    unknown = "Great food!" if lang == "en" else "美味しかった！"
    prompt = ps.render("label", instruction=instruction, input=unknown, options=[])
    text, _ = _ask(client, api, prompt, **LABEL_PARAMS)
    first_label = CLS_LABELS[lang][0]
    if api == "completions":
        assert text == f" {first_label}"
    else:
        assert same_label(_first_line(text, ps.labels.class_label), first_label), text
    no_input = ps.render("label", instruction=instruction, input="", options=[])
    assert judge_label.label_prompt(no_input, lang) == (instruction, [], "")


def test_label_prompt_parsing_keeps_multiline_inputs(prompt_sets: dict[str, PromptSet]) -> None:
    for lang, tricky in (("en", "line one\nInput: line two"), ("ja", "一行目\n入力: 二行目")):
        prompt = prompt_sets[lang].render("label", instruction="Task x", input=tricky,
                                          options=["A", "B"])
        assert judge_label.label_prompt(prompt, lang) == ("Task x", ["A", "B"], tricky)
        judge_prompt = prompt_sets[lang].render("judge", instruction="Task x", input=tricky,
                                                output="out\n\nmore")
        assert judge_label.judge_example(judge_prompt, lang) == ("Task x", tricky, "out\n\nmore")


def test_named_labels_of_a_generic_classification_task_stay_distinct() -> None:
    labels = instances.label_set("Classify the following tweet as sarcastic or sincere.", "en",
                            random.Random(0))
    assert [label for label, _ in labels] == ["Sarcastic", "Sincere"]


def test_quality_answers_are_deterministic_and_cut(
    client: openai.OpenAI, prompt_sets: dict[str, PromptSet]
) -> None:
    """Pure functions of the request; stop, max_tokens and usage work as for every kind."""
    ps = prompt_sets["en"]
    instruction, inp, out = _judge_cases("en")[0]
    judge_prompt = ps.render("judge", instruction=instruction, input=inp, output=out)
    full, _ = _ask(client, "chat", judge_prompt, **JUDGE_PARAMS)
    assert _ask(client, "chat", judge_prompt, **JUDGE_PARAMS)[0] == full
    # Like a temperature-0 judge, the scores depend on the example only.
    assert _ask(client, "chat", judge_prompt, temperature=1.0, seed=9)[0] == full
    cut, reason = _ask(client, "chat", judge_prompt, max_tokens=2)
    assert (cut, reason) == (full.split("\n")[0], "length")
    assert _ask(client, "chat", judge_prompt, stop=["\n"]) == (full.split("\n")[0], "stop")
    ja_prompt = prompt_sets["ja"].render("judge", instruction="冗談を言って。", input="",
                                         output="布団が吹っ飛んだ。")
    ja_cut, reason = _ask(client, "completions", ja_prompt, max_tokens=3)
    assert (ja_cut, reason) == ("\n明確さ", "length")
    chat = client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": judge_prompt}])
    assert chat.usage is not None
    assert chat.usage.completion_tokens == count_tokens(full) == 4
    assert chat.usage.prompt_tokens == count_tokens(judge_prompt)

    # The label answer is sampled: stable per request, varying with the seed.
    instruction = CLS_INSTRUCTION["en"]
    template = vocab_en.EN_LABEL_SETS[0][1][1][1]  # the "Negative" input
    label_prompt = ps.render("label", instruction=instruction, input=template.format(
        topic="sourdough baking"), options=["Negative", "Neutral", "Positive"])
    answers = [_ask(client, "completions", label_prompt, seed=seed, **LABEL_PARAMS)[0]
               for seed in range(40)]
    assert answers == [_ask(client, "completions", label_prompt, seed=seed, **LABEL_PARAMS)[0]
                       for seed in range(40)]
    counts = Counter(answers)
    assert counts[" Negative"] >= 32 and 1 <= len(answers) - counts[" Negative"] <= 8, counts
    assert set(counts) <= {" Negative", " Neutral", " Positive"}
    three = client.completions.create(model="test-model", prompt=label_prompt, n=3, seed=1,
                                      **LABEL_PARAMS)
    assert three.choices[0].text == answers[1]  # choice 0 of n is the n=1 answer
    assert {c.text for c in three.choices} <= set(counts) | {" Neutral", " Positive"}


@pytest.mark.parametrize("lang", LANGS)
def test_judge_and_label_rates(prompt_sets: dict[str, PromptSet], lang: str) -> None:
    """~10 % low judge scores, correctness 1 for degenerate rows, ~8 % label disagreement.

    Over the server's own instances (as the pipeline would judge and check them), through
    generate_answer to stay fast; the HTTP path is the same function.
    """
    ps = prompt_sets[lang]
    judged = low = degenerate = 0
    scores: Counter[int] = Counter()
    for n, instruction in enumerate(_good_instructions(lang, 5, 500, classification=False)):
        for inp, out, category in instances.instance_pairs(instruction, lang, random.Random(n)):
            prompt = ps.render("judge", instruction=instruction, input=inp, output=out)
            chat = parse_judgement(generate_answer(prompt, chat=True, temperature=0.0))
            assert chat is not None
            assert parse_judgement(generate_answer(prompt, chat=False, seed=n)) == chat
            if category in ("empty_output", "input_equals_output"):
                degenerate += 1
                assert chat[1] == 1, (inp, out)
                continue
            judged += 1
            low += min(chat) <= 2
            scores.update(chat)
    assert degenerate >= 20
    assert 0.07 <= low / judged <= 0.13, (low, judged)
    assert (scores[4] + scores[5]) / sum(scores.values()) >= 0.85, scores

    checked = disagreed = 0
    for n, instruction in enumerate(_good_instructions(lang, 6, 250, classification=True)):
        labels = [label for label, _ in instances.label_set(instruction, lang, random.Random(0))]
        for inp_label, inp in instances.label_pairs(instruction, lang, random.Random(n)):
            assert srv.label_for_input(instruction, lang, inp) == inp_label, (instruction, inp)
            prompt = ps.render("label", instruction=instruction, input=inp, options=[])
            answer = _first_line(generate_answer(prompt, chat=True, temperature=0.7, seed=n),
                                 ps.labels.class_label)
            assert any(same_label(answer, label) for label in labels), (answer, labels)
            checked += 1
            disagreed += not same_label(answer, inp_label)
    assert checked >= 500
    assert 0.05 <= disagreed / checked <= 0.11, (disagreed, checked)


class _ClientCalls:
    """The pipeline's make_request/complete pair over the real openai client (no journal).

    Each nonce becomes a request seed, as engine.dispatch.Dispatcher.request derives one from
    run seed + nonce.
    """

    def __init__(self, client: openai.OpenAI, api: str) -> None:
        self.client, self.api = client, api

    def make_request(self, stage: str, prompt: str, params: dict, nonce: str) -> Request:
        return Request(stage, prompt, params, nonce)

    def complete(self, requests: list[Request]) -> list[Completion]:
        def one(request: Request) -> Completion:
            seed = int(srv.fingerprint_of(request.nonce)[:8], 16)
            text, finish = _ask(self.client, self.api, request.prompt, seed=seed,
                                **request.params)
            return Completion(text, finish)

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, requests))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("lang", LANGS)
def test_quality_stage_end_to_end(client: openai.OpenAI, prompt_sets: dict[str, PromptSet],
                                  lang: str, api: str) -> None:
    """Generated instances -> selfinstruct.quality's judge and consistency check -> drops.

    Every answer parses; the only drops are the designed ones (low scores, disagreements),
    and they are a minority, so the quality stage thins the data without emptying it.
    """
    ps = prompt_sets[lang]
    calls = _ClientCalls(client, api)

    def generate(template: str, instructions: list[str], output_first: bool) -> list[Item]:
        prompts = [ps.render(template, examples=_examples(lang), instruction=i)
                   for i in instructions]
        answers = calls.complete([Request("gen", p, {"temperature": 0, "max_tokens": 1024}, p)
                                  for p in prompts])
        return [Item(f"t{n}-{k}", instruction, inst.input, inst.output)
                for n, (instruction, answer) in enumerate(zip(instructions, answers, strict=True))
                for k, inst in enumerate(parse_instances(answer.text, ps.labels,
                                                         output_first=output_first,
                                                         truncated=False))]

    cls_items = generate("instances_output_first",
                         _good_instructions(lang, 7, 40, classification=True), True)
    verdicts = check_label_consistency(cls_items, prompts=ps, make_request=calls.make_request,
                                       complete=calls.complete)
    drops = [v for v in verdicts if v is not None]
    assert {d.reason for d in drops} <= {"label_disagreement"}
    assert 1 <= len(drops) <= 0.2 * len(cls_items), (len(drops), len(cls_items))

    items = generate("instances_input_first",
                     _good_instructions(lang, 8, 40, classification=False), False)
    results = judge(items, prompts=ps, make_request=calls.make_request, complete=calls.complete)
    reasons = Counter(r.drop.reason for r in results if r.drop is not None)
    assert set(reasons) <= {"low_judge_score"}, reasons
    assert all(r.clarity is not None and r.correctness is not None for r in results)
    assert 1 <= reasons["low_judge_score"] <= 0.35 * len(items), (reasons, len(items))
    for item, result in zip(items, results, strict=True):
        if not item.output or item.output == item.input:
            assert result.correctness == 1 and result.drop is not None


# --------------------------------------------------------------------------------------------
# Protocol
# --------------------------------------------------------------------------------------------


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["test-model"]


def test_response_schema_and_request_id(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="my-model", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.headers.get("x-request-id", "").startswith("req_")
    chat = raw.parse()
    assert chat.id.startswith("chatcmpl-") and chat.object == "chat.completion"
    assert chat.model == "my-model" and chat.choices[0].message.role == "assistant"
    assert chat.choices[0].logprobs is None
    usage = chat.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == count_tokens(chat.choices[0].message.content or "")
    completion = client.completions.create(model="m2", prompt="Hi")
    assert completion.id.startswith("cmpl-") and completion.object == "text_completion"
    assert completion.model == "m2"


def test_n_choices_and_prompt_lists(client: openai.OpenAI, env: jinja2.Environment) -> None:
    prompt = _render(env, "en", "bootstrap", instructions=EN_INSTRUCTIONS[:8])
    one = client.completions.create(model="test-model", prompt=prompt, temperature=0.7)
    three = client.completions.create(model="test-model", prompt=prompt, temperature=0.7, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.choices[0].text == one.choices[0].text
    assert len({c.text for c in three.choices}) == 3
    chat = client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": prompt}], n=2
    )
    assert len(chat.choices) == 2
    listed = client.completions.create(model="test-model", prompt=["Hi", prompt], n=2)
    assert [c.index for c in listed.choices] == [0, 1, 2, 3]


def test_determinism(client: openai.OpenAI, env: jinja2.Environment) -> None:
    prompt = _render(env, "ja", "bootstrap", instructions=JA_INSTRUCTIONS[:8])
    args = {"temperature": 0.7, "top_p": 0.5, "max_tokens": 1024}
    a = _ask(client, "completions", prompt, **args)
    b = _ask(client, "completions", prompt, **args)
    assert a == b
    assert _ask(client, "completions", prompt, seed=7, **args) != a
    assert _ask(client, "completions", prompt, temperature=1.0) != a
    assert _ask(client, "chat", prompt, **args) == _ask(client, "chat", prompt, **args)


def test_stop_and_max_tokens_are_honoured(client: openai.OpenAI, env: jinja2.Environment) -> None:
    prompt = _render(env, "en", "bootstrap", instructions=EN_INSTRUCTIONS[8:16])
    full, _ = _ask(client, "completions", prompt, temperature=0.7)
    stopped, reason = _ask(client, "completions", prompt, temperature=0.7, stop=["\n12."])
    assert reason == "stop" and "\n12." in full and full.startswith(stopped)
    assert stopped == full[: full.index("\n12.")]
    short, reason = _ask(client, "completions", prompt, temperature=0.7, max_tokens=5)
    assert reason == "length" and count_tokens(short) == 5 and full.startswith(short)
    ja_prompt = _render(env, "ja", "bootstrap", instructions=JA_INSTRUCTIONS[:8])
    ja_full, _ = _ask(client, "chat", ja_prompt)
    ja_short, reason = _ask(client, "chat", ja_prompt, max_tokens=7)
    assert reason == "length" and ja_full.startswith(ja_short) and count_tokens(ja_short) == 7


def test_token_rule_and_stop_helper() -> None:
    assert count_tokens("Hello,  world!") == 2
    assert count_tokens("日本語です。") == 6
    assert count_tokens("AI は便利") == 4
    assert apply_stop_and_max_tokens("a b\n16. c", ["16.", "\n16"], None) == ("a b", "stop")
    assert apply_stop_and_max_tokens("one two three", None, 2) == ("one two", "length")
    assert apply_stop_and_max_tokens("one two", None, 2) == ("one two", "stop")


def test_chat_content_parts_are_accepted(client: openai.OpenAI, env: jinja2.Environment) -> None:
    prompt = _render(env, "en", "classify", examples=_examples("en"),
                     instruction="Decide whether the email is spam.")
    chat = client.chat.completions.create(
        model="test-model",
        messages=[{"role": "system", "content": "Be terse."},
                  {"role": "user", "content": [{"type": "text", "text": prompt}]}],
    )
    assert chat.choices[0].message.content == "Yes" or (
        chat.choices[0].message.content or ""
    ).startswith("Yes")


def test_errors(server: RunningServer) -> None:
    status, _, body = _raw(server, "POST", "/v1/chat/completions", CHAT_BODY,
                           headers={"Authorization": ""})
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    status, headers, body = _raw(server, "GET", "/nope")
    error = json.loads(body)["error"]
    assert status == 404 and set(error) >= {"message", "type", "code"}
    assert "x-request-id" in headers
    status, _, body = _raw(server, "POST", "/v1/chat/completions", {**CHAT_BODY, "stream": True})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, _ = _raw(server, "POST", "/v1/completions", b"{not json")
    assert status == 400
    status, _, _ = _raw(server, "POST", "/v1/completions", {"prompt": "x"})
    assert status == 400
    status, _, _ = _raw(server, "GET", "/v1/chat/completions")
    assert status == 405


def test_openai_client_maps_401(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                           default_headers={"Authorization": "Basic abc"})
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


# --------------------------------------------------------------------------------------------
# Counters and /_stats
# --------------------------------------------------------------------------------------------


def test_counters_stats_and_reset(fresh: RunningServer) -> None:
    client = openai.OpenAI(base_url=fresh.base_url, api_key="k", max_retries=0)
    for _ in range(2):
        client.completions.create(model="test-model", prompt="same")
    client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "x"}])
    client.models.list()
    stats = fresh.stats()
    assert stats["requests_total"] == 4
    assert stats["requests_by_endpoint"] == {"/v1/completions": 2, "/v1/chat/completions": 1,
                                             "/v1/models": 1}
    assert sorted(stats["fingerprints"].values()) == [1, 2]
    assert stats["max_fingerprint_count"] == 2 and stats["max_success_count"] == 2
    assert stats["successes_total"] == 4 and stats["faults_total"] == 0
    assert stats["completion_tokens"] > 0
    logged = fresh.requests()
    assert [r["path"] for r in logged][:2] == ["/v1/completions"] * 2
    assert logged[0]["body"]["prompt"] == "same" and logged[0]["outcome"] == "ok"
    status, _, body = _raw(fresh, "GET", "/_stats", headers={"Authorization": ""})
    assert status == 200
    over_http = json.loads(body)
    assert over_http["requests_total"] == 4 and over_http["fingerprints"] == stats["fingerprints"]
    status, _, _ = _raw(fresh, "POST", "/_reset")
    assert status == 200
    assert fresh.stats()["requests_total"] == 0 and fresh.stats()["fingerprints"] == {}


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def _faulty(kind: str, **kwargs: Any) -> RunningServer:
    options: dict[str, Any] = {"fault_rate": 1.0, "fault_kinds": [kind], "hang_seconds": 0.3}
    return start_server(**(options | kwargs))


@pytest.mark.parametrize("kind,status", [("429", 429), ("500", 500), ("502", 502),
                                         ("503", 503)])
def test_status_faults_then_success_on_third_attempt(kind: str, status: int) -> None:
    with _faulty(kind) as running:
        for _ in range(2):
            got, _, body = _raw(running, "POST", "/v1/chat/completions", CHAT_BODY)
            assert got == status and "error" in json.loads(body)
        got, _, body = _raw(running, "POST", "/v1/chat/completions", CHAT_BODY)
        assert got == 200 and json.loads(body)["choices"]
        stats = running.stats()
        assert stats["faults_by_kind"] == {kind: 2} and stats["successes_total"] == 1
        assert stats["max_success_count"] == 1 and stats["max_fingerprint_count"] == 3


def test_retry_after_header_is_configurable() -> None:
    with _faulty("429_retry_after") as running:
        status, headers, _ = _raw(running, "POST", "/v1/chat/completions", CHAT_BODY)
        assert status == 429 and headers["retry-after"] == "1"
    with _faulty("429_retry_after", retry_after=2.5) as running:
        _, headers, _ = _raw(running, "POST", "/v1/chat/completions", CHAT_BODY)
        assert headers["retry-after"] == "2.5"


def test_openai_client_exceptions_and_retries() -> None:
    for kind, exc in (("429", openai.RateLimitError), ("500", openai.InternalServerError),
                      ("503", openai.InternalServerError), ("reset", openai.APIConnectionError),
                      ("truncated_body", openai.APIConnectionError)):
        with _faulty(kind) as running:
            client = openai.OpenAI(base_url=running.base_url, api_key="k", max_retries=0)
            with pytest.raises(exc):
                client.completions.create(model="test-model", prompt="hello")
    with _faulty("hang", hang_seconds=2) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="k", max_retries=0,
                               timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.completions.create(model="test-model", prompt="hello")
    # Retry-After of 10 ms: the client's own retries get through after two faults.
    with _faulty("429_retry_after", retry_after=0.01) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="k", max_retries=2)
        answer = client.completions.create(model="test-model", prompt="hello")
        assert answer.choices[0].text
        stats = running.stats()
        assert stats["faults_total"] == 2 and stats["successes_total"] == 1


def test_reset_and_hang_close_without_response() -> None:
    with _faulty("reset") as running, pytest.raises(ConnectionError):
        _raw(running, "POST", "/v1/completions", {"model": "m", "prompt": "x"})
    with _faulty("hang") as running:
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        payload = json.dumps({"model": "m", "prompt": "x"}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        started = time.monotonic()
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        sock.close()
        assert data == b"" and 0.25 <= time.monotonic() - started < 3
        assert running.stats()["faults_by_kind"] == {"hang": 1}


def test_close_is_prompt_while_a_handler_hangs() -> None:
    running = start_server(fault_rate=1.0, fault_kinds=["hang"], hang_seconds=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            _raw(running, "POST", "/v1/completions", {"model": "m", "prompt": "x"}, timeout=10)
        except (ConnectionError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while running.stats()["faults_total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    running.close()
    thread.join(5)
    assert time.monotonic() - started < 1.0 and not thread.is_alive() and errors


def test_body_faults() -> None:
    body = {"model": "m", "prompt": "Come up with a series of tasks:\n1. Sing.\n2."}
    with _faulty("truncated_body") as running, pytest.raises(http.client.IncompleteRead):
        _raw(running, "POST", "/v1/completions", body)
    with _faulty("non_json") as running:
        status, headers, raw = _raw(running, "POST", "/v1/completions", body)
        assert status == 200 and headers["content-type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
    with _faulty("empty_choices") as running:
        assert json.loads(_raw(running, "POST", "/v1/completions", body)[2])["choices"] == []
    with _faulty("length") as running:
        choice = json.loads(_raw(running, "POST", "/v1/completions", body)[2])["choices"][0]
        assert choice["finish_reason"] == "length" and choice["text"]
        full = generate_answer(body["prompt"], chat=False, model="m")
        assert full.startswith(choice["text"]) and len(choice["text"]) < len(full)
    with _faulty("garbage") as running:
        choice = json.loads(_raw(running, "POST", "/v1/completions", body)[2])["choices"][0]
        words = choice["text"].split()
        assert len(words) >= 10
        assert all(re.fullmatch("(?:" + "|".join(vocab_ja.JUNK_SYLLABLES) + ")+", w) for w in words)
        assert running.stats()["faults_by_kind"] == {"garbage": 1}
        assert running.stats()["successes_total"] == 0


def test_fault_plan_is_deterministic_and_bounded() -> None:
    plan = srv.FaultPlan(rate=0.3, kinds=FAULT_KINDS, seed=42)
    fps = [srv.fingerprint_of({"i": i}) for i in range(2000)]
    first = [plan.decide(fp, 0) for fp in fps]
    assert first == [plan.decide(fp, 0) for fp in fps]
    rate = sum(k is not None for k in first) / len(first)
    assert 0.25 <= rate <= 0.35
    assert set(first) - {None} == set(FAULT_KINDS)
    assert all(plan.decide(fp, 2) is None for fp in fps)
    assert first != [srv.FaultPlan(rate=0.3, kinds=FAULT_KINDS, seed=43).decide(fp, 0)
                     for fp in fps]
    # Same seed, same requests -> same faults, whatever the server instance.
    outcomes = []
    for _ in range(2):
        with start_server(fault_rate=0.5, fault_seed=3, fault_kinds="429,500") as running:
            outcomes.append([
                _raw(running, "POST", "/v1/completions", {"model": "m", "prompt": str(i)})[0]
                for i in range(30)
            ])
    assert outcomes[0] == outcomes[1] and {429, 500, 200} == set(outcomes[0])


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        start_server(fault_kinds=["teapot"])
    with pytest.raises(ValueError):
        start_server(fault_rate=1.5)
    with pytest.raises(ValueError):
        start_server(host="0.0.0.0")


# --------------------------------------------------------------------------------------------
# Concurrency and the command line
# --------------------------------------------------------------------------------------------


def test_concurrency_with_latency() -> None:
    with start_server(latency_ms=100) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="k", max_retries=0)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            texts = list(pool.map(
                lambda i: client.completions.create(model="test-model", prompt=f"p{i}")
                .choices[0].text, range(32)))
        elapsed = time.monotonic() - started
        assert len(texts) == 32 and elapsed < 1.6, elapsed
        assert running.stats()["max_in_flight"] >= 16

    with start_server(latency_ms=300) as running:
        barrier = threading.Barrier(64)

        def one(i: int) -> int:
            barrier.wait()
            return _raw(running, "POST", "/v1/completions", {"model": "m", "prompt": str(i)})[0]

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = list(pool.map(one, range(64)))
        assert statuses == [200] * 64
        assert time.monotonic() - started < 2.5
        assert running.stats()["max_in_flight"] >= 48


def test_command_line_ready_line_and_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.openai_server", "--port", "0", "--latency-ms", "1",
         "--fault-kinds", "429,500", "--fault-rate", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        m = re.fullmatch(r"READY (http://127\.0\.0\.1:(\d+)/v1)", line)
        assert m, line
        client = openai.OpenAI(base_url=m.group(1), api_key="k", max_retries=0)
        assert client.completions.create(model="test-model", prompt="hi").choices[0].text
        # Errors raised by the batch store and by validation keep their status and code when
        # the server runs as ``__main__``: one class identity, not a 500 "test server bug".
        with pytest.raises(openai.NotFoundError) as missing:
            client.batches.retrieve("batch-nope")
        assert missing.value.code == "batch_not_found"
        with pytest.raises(openai.BadRequestError, match="n must be an integer"):
            client.completions.create(model="test-model", prompt="hi", n=0)
        proc.terminate()
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0 and out == "" and err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------
# Content quality: diversity and deliberate rejects
# --------------------------------------------------------------------------------------------


def test_bad_item_rates_match_the_documented_mix() -> None:
    for lang in LANGS:
        rng = random.Random(lang)
        cats = Counter(
            srv.generate_instruction(lang, rng, ["Tell me a story about a dragon."])[1]
            for _ in range(8000)
        )
        for name, rate in instructions.BAD_ITEM_RATES:
            assert abs(cats[name] / 8000 - rate) < 0.012, (lang, name, cats)


@pytest.mark.parametrize("lang", LANGS)
def test_good_items_avoid_blacklists_and_keep_classification_consistent(lang: str) -> None:
    rng = random.Random(1)
    cls = 0
    for _ in range(3000):
        if lang == "en":
            text = instructions.en_good_instruction(rng)
            assert not any(word in text.lower() for word in EN_BLACKLIST), text
            assert text[0].isascii() and text[0].isupper() and 5 <= len(text.split()) <= 40
            assert "  " not in text and not re.search(r" [.,?]", text), text
            cls += vocab_en.EN_CLASSIFICATION_RE.search(text) is not None
        else:
            text = instructions.ja_good_instruction(rng)
            assert not any(word in text for word in JA_BLACKLIST), text
            assert 10 <= len(text) <= 80 and "プログラム" not in text
            cls += any(k in text for k in vocab_ja.JA_CLASSIFICATION_KEYWORDS)
        assert not re.search(r"[\[\]{}]", text), text
    assert 0.07 <= cls / 3000 <= 0.2


def _degenerate(item: str, lang: str, in_context: list[str]) -> str | None:
    if lang == "en":
        if len(item.split()) <= 3:
            return "short"
        if any(re.search(rf"\b{w}s?\b", item, re.I) for w in EN_BLACKLIST):
            return "blacklist"
        if item.startswith("Write a program"):
            return "program"
    else:
        if len(item) <= 6:
            return "short"
        if any(w in item for w in JA_BLACKLIST) or "プログラム" in item:
            return "blacklist"
    if not item[0].isalnum() and not re.match(r"[\u3040-\u9fff]", item):
        return "punctuation"
    if item in in_context:
        return "copy"
    for other in in_context:
        matcher = difflib.SequenceMatcher(None, item, other)  # cheap upper bounds first
        if matcher.real_quick_ratio() > 0.85 and matcher.quick_ratio() > 0.85 and (
            matcher.ratio() > 0.85
        ):
            return "near_duplicate"
    return None


def _features(item: str, lang: str) -> frozenset[str]:
    if lang == "en":
        return frozenset(re.findall(r"[a-z0-9]+", item.lower()))
    chars = re.sub(r"[、。？！\s]", "", item)
    return frozenset(chars[i : i + 2] for i in range(len(chars) - 1))


def _too_similar(feats: frozenset[str], others: list[frozenset[str]]) -> bool:
    size = len(feats)
    for other in others:
        common = len(feats & other)
        if common > 0.6 * (size + len(other) - common):  # Jaccard > 0.6
            return True
    return False


@pytest.mark.parametrize("lang", LANGS)
def test_bootstrap_rounds_yield_diverse_items(env: jinja2.Environment, lang: str) -> None:
    """40 rounds x 8 realistic prompts (6 seeds + 2 machine items), as the pipeline sends.

    Counts the share of parsed items that are non-degenerate and novel: not an exact repeat,
    and with a word-set (en) / character-bigram (ja) Jaccard <= 0.6 against every item kept
    in the last 150. The server's deliberate rejects (~24 %) bound it from above.
    """
    seeds = _instructions(lang)
    template = env.get_template(f"{lang}/bootstrap.j2")
    rng = random.Random(0)
    pool: list[str] = []
    recent: list[frozenset[str]] = []
    seen: set[str] = set(seeds)
    reasons: Counter[str] = Counter()
    parsed = 0
    for _ in range(40):
        for _ in range(8):
            ctx = rng.sample(seeds, 6) + (rng.sample(pool, 2) if len(pool) >= 2 else
                                          rng.sample(seeds, 2))
            rng.shuffle(ctx)
            full = generate_answer(template.render(instructions=ctx), chat=False,
                                   temperature=0.7, top_p=0.5)
            text, finish = apply_stop_and_max_tokens(full, BOOTSTRAP_STOP_COMPLETIONS, 1024)
            assert finish == "stop"
            items = [text.split("\n")[0].strip(), *_parse_numbered(text)]
            for item in items:
                parsed += 1
                reason = _degenerate(item, lang, ctx)
                if reason is None and item in seen:
                    reason = "repeat"
                feats = _features(item, lang)
                if reason is None and _too_similar(feats, recent[-150:]):
                    reason = "similar"
                reasons[reason or "kept"] += 1
                seen.add(item)
                if reason is None:
                    pool.append(item)
                    recent.append(feats)
    kept = reasons["kept"] / parsed
    assert parsed >= 40 * 8 * 6
    assert kept >= 0.6, reasons
    for bad in ("copy", "near_duplicate", "blacklist", "short", "punctuation"):
        assert reasons[bad] >= parsed * 0.01, (bad, reasons)
    assert len(pool) >= (250 if lang == "en" else 150)
