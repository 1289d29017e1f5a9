"""A deterministic OpenAI-compatible HTTP server for tests and benchmarks.

Why this exists: the project's tests must exercise the real ``openai`` client over real HTTP
(retries, timeouts, connection pooling, error mapping), never mocks. A real model is slow and
random; this server is fast, a pure function of the request, and speaks exactly the prompt
formats in ``prompts/{en,ja}/*.j2`` so every pipeline stage (bootstrap, classification,
instances, Alpaca) gets answers shaped like a real model's, including deliberately bad items
that the filters must drop. It also injects faults deterministically and counts everything so
tests can assert "no request was sent twice". Standard library only: starts in milliseconds.

Use::

    with start_server(latency_ms=50, fault_rate=0.2, fault_kinds="429,500") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=2)
        ...
        assert server.stats()["max_success_count"] == 1  # nothing answered twice

    $ python -m tests.servers.openai_server --port 0 --fault-rate 0.1 --fault-kinds 429,reset
    READY http://127.0.0.1:41234/v1          (exactly one line; serves until SIGTERM/SIGINT)

HTTP: ``POST /v1/chat/completions``, ``POST /v1/completions`` (``stream: true`` -> 400),
``GET /v1/models`` (``test-model``), ``GET /_stats``, ``POST /_reset``. Every ``/v1`` call
needs ``Authorization: Bearer <anything>`` (else 401); unknown paths give 404; errors have
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``; every response carries
``x-request-id``. ``n`` > 1 returns n choices (choice i is seeded with i); a completions
``prompt`` may be a list of strings.

Prompt kinds are recognised by the template's fixed first line (en and ja): bootstrap,
classify, instances_input_first, instances_output_first, alpaca, and the quality stage's
judge and label (``selfinstruct.quality``); anything else gets a short generic answer.
Completions answers continue the prompt (" Rewrite ...\n10. ...", " Yes", "\nExample 1\n...",
" Positive"); chat answers are complete (about 20 % of chat bootstrap lists have a preamble,
``**9.**`` numbering or restart at "1."). About 24 % of generated instructions are
deliberately bad (see ``_BAD_ITEM_RATES``: copies and near-copies of in-context instructions,
blacklisted, too short, "Write a program", leading punctuation); instance answers contain
input == output, empty outputs and outputs ending with ":" at low rates.

Quality stage. judge: exactly ``Clarity: N\nCorrectness: N`` (ja ``明確さ: N\n正確さ: N``),
scored by :func:`judge_scores` from the example alone (like a temperature-0 judge: seed and
sampling parameters do not matter): mostly 4-5, ~10 % (``JUDGE_LOW_RATE``) with a 1 or 2 in one
score, and correctness 1 when the output is empty or equals the input. label (consistency):
the label that output-first generation paired with that input (:func:`label_for_input` matches
the input back to its label's template), but for ~8 % of requests (``LABEL_DISAGREE_RATE``,
drawn from the request like any sample) another label of those offered, else of the task's
label set; an input the server did not generate gets the first label of the task's set.

Determinism: an answer is a pure function of (endpoint kind, prompt text or messages, model,
temperature, top_p, seed, choice index); ``stop`` and ``max_tokens`` then cut that same text,
as they would cut a real model's output sampled with a fixed seed. So a shorter ``max_tokens``
yields a prefix of the longer answer, and finish_reason is "length" exactly when it cut.

Token rule (``max_tokens`` and ``usage``): every CJK character (kana, kanji, CJK and
full-width punctuation) is one token; every other maximal run of non-space characters is one
token. ``count_tokens("Hello world")`` is 2, ``count_tokens("日本語です")`` is 5.

Faults (``fault_rate`` in [0, 1], ``fault_kinds`` a subset of :data:`FAULT_KINDS`, default
:data:`DEFAULT_FAULT_KINDS`; only the two generation endpoints are faulted):

==================  =========================================================================
``429``             429 rate_limit_exceeded (openai: RateLimitError)
``429_retry_after`` the same with ``Retry-After: <retry_after>`` (default 1 s)
``500/502/503``     server errors (openai: InternalServerError)
``reset``           TCP RST, no response (openai: APIConnectionError)
``hang``            nothing for ``hang_seconds`` (default 30), then close (a client timeout)
``empty_choices``   200 with ``choices: []``
``length``          200, answer cut to half its tokens, finish_reason "length"
``truncated_body``  200 whose Content-Length exceeds the bytes sent; then close
``non_json``        200 with a text/html body (openai returns it as a ``str``)
``garbage``         200, valid JSON, text is random junk words
==================  =========================================================================

The decision for one attempt is a pure function of (``fault_seed``, request fingerprint =
sha256 of the canonical JSON body, how many times that fingerprint was seen before since the
last reset): see :class:`FaultPlan`. Only the first ``max_faults_per_request`` (default 2)
sends of a fingerprint can be faulted, so a client that retries the identical request that
many times always gets its answer, and two runs with the same seed fault the same requests.

Styles (``style`` / ``--style``, see docs/test-server.md): ``clean`` (the default, everything
above), ``messy`` (what real chat and completion models write: markdown lists and labels,
chatty verdicts, defective items, unreadable answers, heavy-tailed latency; built over the clean
content by tests/servers/messy_lists.py and messy_fields.py) and ``recorded`` (real answers of
the embedded model replayed from tests/fixtures/recorded_real.jsonl, tests/servers/recorded.py).
``RunningServer.offered()`` tells what every answered choice offered, for accounting tests.

Stats (``RunningServer.stats()`` == ``GET /_stats``): ``requests_total``,
``requests_by_endpoint``, ``fingerprints`` (attempts per body) and ``max_fingerprint_count``,
``successes_total``, ``successes_by_endpoint``, ``success_fingerprints`` (non-faulted 200
answers per body) and ``max_success_count``, ``faults_total``, ``faults_by_kind``,
``errors_by_status``, ``in_flight``, ``max_in_flight``, ``prompt_tokens``,
``completion_tokens``. ``RunningServer.requests()`` returns the last 10,000 request bodies
with their outcome. ``reset()`` / ``POST /_reset`` clears all of it.

Batch API (``--batch-api`` mode of selfinstruct): ``POST /v1/files`` (multipart upload,
``purpose=batch``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``POST /v1/batches``,
``GET /v1/batches`` (newest first, ``limit``/``after``), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``, with OpenAI's object shapes. A batch is ``validating`` when
created and moves on only when it is retrieved: ``in_progress`` until the ``batch_polls``-th
retrieve (default 2) or until ``batch_seconds`` have passed since its creation, whichever comes
first, then ``completed`` — so a test controls how long a batch stays pending by how often it
polls. On completion every line gets exactly the answer the direct endpoint gives to the same
body; the output file holds ``{"id", "custom_id", "response": {"status_code": 200,
"request_id", "body"}, "error": null}`` lines. Per-line failures (``batch_error_rate``, kinds in
:data:`BATCH_ERROR_KINDS`, chosen by the same :class:`FaultPlan` rule over the line's body
fingerprint and how many times that body was seen in earlier batches) go to the error file as a
non-200 ``response`` (``400``, ``429``, ``500``) or as ``"response": null, "error": {"code":
"batch_expired", ...}`` (``expired``). An input file with a bad line fails the batch
(``failed``, ``errors.data``); a cancelled batch answers nothing. Stats add ``files_created``,
``batches_created``, ``batch_requests_total`` (lines processed), ``batch_successes_total``,
``batch_errors_by_kind`` and ``batch_fingerprints`` (lines per body); answered lines also count
in ``success_fingerprints`` and the token totals, so ``max_success_count == 1`` still means
"nothing was answered twice", across direct requests and batches alike.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import functools
import hashlib
import ipaddress
import itertools
import json
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.vocab_en import (
    _EN_CLASSIFICATION_RE,
    EN_AUDIENCE_LEADS,
    EN_AUDIENCES,
    EN_BLACKLISTED,
    EN_CLASSIFICATION_FRAMES,
    EN_CLASSIFICATION_TAILS,
    EN_CONSTRAINTS,
    EN_FILLERS,
    EN_FORMATS,
    EN_IMPERATIVE_FRAMES,
    EN_INPUTS,
    EN_LABEL_SETS,
    EN_LANGUAGES,
    EN_NUMBERS,
    EN_OUTPUTS,
    EN_PROGRAMS,
    EN_QUESTION_FRAMES,
    EN_TOO_SHORT,
    EN_TOPICS,
    EN_WRAPPERS,
)
from tests.servers.vocab_ja import (
    GENERIC_ANSWERS_EN,
    GENERIC_ANSWERS_JA,
    JA_ASPECTS,
    JA_AUDIENCE_OPENERS,
    JA_AUDIENCES,
    JA_BLACKLISTED,
    JA_CLASSIFICATION_FRAMES,
    JA_CLASSIFICATION_KEYWORDS,
    JA_CONSTRAINTS,
    JA_CREATIVE_COUNTS,
    JA_CREATIVE_FORMS,
    JA_CREATIVE_LINKS,
    JA_CREATIVE_VERBS,
    JA_DOC_VERBS,
    JA_DOCUMENTS,
    JA_ENDINGS,
    JA_EVENTS,
    JA_EXTRACTS,
    JA_INPUTS,
    JA_LABEL_SETS,
    JA_NEAR_DUP_CHARS,
    JA_NOUN_ENDINGS,
    JA_OUTPUTS,
    JA_PROGRAMS,
    JA_PURPOSES,
    JA_QUESTION_FRAMES,
    JA_TEXT_TASKS,
    JA_TEXTS,
    JA_TOO_SHORT,
    JA_TOPICS,
    JA_VERBS,
    JA_VIEWPOINTS,
    JUNK_SYLLABLES,
)

__all__ = [
    "BATCH_ERROR_KINDS",
    "BOOTSTRAP_HEADERS",
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "JUDGE_LOW_RATE",
    "LABEL_DISAGREE_RATE",
    "MODEL_IDS",
    "NO_INPUT",
    "STYLES",
    "FaultPlan",
    "RunningServer",
    "ServerOptions",
    "apply_stop_and_max_tokens",
    "count_tokens",
    "detect_prompt",
    "fingerprint_of",
    "generate_answer",
    "generate_instruction",
    "judge_scores",
    "label_for_input",
    "main",
    "start_server",
]

MODEL_IDS: tuple[str, ...] = ("test-model",)
# Answer styles (tests/servers/styles.py): the prompt's own format, what real models write,
# and replayed real answers of the embedded model.
STYLES: tuple[str, ...] = ("clean", "messy", "recorded")

# --------------------------------------------------------------------------------------------
# Tokens, stop sequences, max_tokens
# --------------------------------------------------------------------------------------------

_CJK = (
    "\u3000-\u303f"  # CJK symbols and punctuation (、。「」)
    "\u3040-\u309f"  # hiragana
    "\u30a0-\u30ff"  # katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # half-width and full-width forms (？！：)
)
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def count_tokens(text: str) -> int:
    """Count tokens with the documented cheap rule (one per CJK char, one per other word).

    A real tokenizer is not needed: tests only need a stable, monotone measure so that
    ``max_tokens`` truncation and ``usage`` are predictable in both English and Japanese.
    """
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def _truncate_tokens(text: str, max_tokens: int) -> str:
    """Return the prefix of ``text`` holding exactly ``max_tokens`` tokens (original spacing)."""
    if max_tokens <= 0:
        return ""
    end = 0
    for i, match in enumerate(_TOKEN_RE.finditer(text)):
        if i == max_tokens:
            return text[:end]
        end = match.end()
    return text


def apply_stop_and_max_tokens(
    text: str, stop: Sequence[str] | None, max_tokens: int | None
) -> tuple[str, str]:
    """Cut ``text`` like the OpenAI API: at the first stop string (excluded), then at max_tokens.

    Returns ``(text, finish_reason)``; the reason is ``"length"`` only when ``max_tokens``
    removed something, which is what the pipeline's "drop truncated answers" filter keys on.
    """
    cut = len(text)
    for s in stop or ():
        if s:
            pos = text.find(s)
            if pos != -1 and pos < cut:
                cut = pos
    text = text[:cut]
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return _truncate_tokens(text, max_tokens), "length"
    return text, "stop"



# --------------------------------------------------------------------------------------------
# Prompt detection
# --------------------------------------------------------------------------------------------

BOOTSTRAP_HEADERS: dict[str, str] = {
    "en": "Come up with a series of tasks:",
    "ja": "さまざまなタスクを考えてください:",
}
_HEADERS: tuple[tuple[str, str, str], ...] = (
    ("bootstrap", "en", "Come up with a series of tasks:"),
    ("bootstrap", "ja", "さまざまなタスクを考えてください:"),
    ("classify", "en", "Can the following task be regarded as a classification task"),
    ("classify", "ja", "次のタスクは、出力が有限個のラベルのどれかになる分類タスクとみなせますか"),
    ("instances_input_first", "en", "Come up with examples for the following tasks."),
    ("instances_input_first", "ja", "次のタスクの例を考えてください。"),
    ("instances_output_first", "en", "Given the classification task definition and the class"),
    ("instances_output_first", "ja", "分類タスクの定義とクラスラベルが与えられます。"),
    ("alpaca", "en", "You are asked to come up with a set of"),
    ("alpaca", "ja", "言語モデルに与える多様なタスク指示を"),
    ("judge", "en", "Rate the following instruction-tuning example."),
    ("judge", "ja", "次の指示チューニング用の例を評価してください。"),
    ("label", "en", "Classify the input of the following task. Answer with the class label only."),
    ("label", "ja", "次のタスクの入力を分類してください。クラスラベルだけを答えてください。"),
)
NO_INPUT = "<noinput>"  # labels.json's no_input: what the templates show for an empty input
_LABELS: dict[str, dict[str, str]] = {
    "en": {"task": "Task", "example": "Example", "input": "Input", "output": "Output",
           "class_label": "Class label", "instruction": "Instruction"},
    "ja": {"task": "タスク", "example": "例", "input": "入力", "output": "出力",
           "class_label": "クラスラベル", "instruction": "指示"},
}


def detect_prompt(text: str) -> tuple[str, str]:
    """Return ``(kind, lang)`` from the template's fixed first line; ``("generic", lang)`` else.

    Recognising the first line (not keywords anywhere) mirrors how the templates are built and
    keeps a user message that merely quotes a template from being misread.
    """
    head = text.lstrip()
    for kind, lang, header in _HEADERS:
        if head.startswith(header):
            return kind, lang
    return "generic", ("ja" if re.search(rf"[{_CJK}]", text[:200]) else "en")


def _last_task(text: str, lang: str) -> str:
    """The instruction of the last ``Task:`` line: the one the model is asked about."""
    label = _LABELS[lang]["task"]
    matches = re.findall(rf"^{re.escape(label)}:[ \t]*(.*)$", text, flags=re.MULTILINE)
    return matches[-1].strip() if matches else ""


def _bootstrap_items(text: str) -> tuple[list[str], int]:
    """In-context instructions of a bootstrap prompt and the number the model must continue."""
    items = [m.group(2).strip() for m in re.finditer(r"^(\d+)\.[ \t]+(\S.*)$", text, re.M)]
    tail = re.findall(r"^(\d+)\.[ \t]*$", text, flags=re.MULTILINE)
    start = int(tail[-1]) if tail else len(items) + 1
    return items, start


def _alpaca_items(text: str, lang: str) -> tuple[list[str], int, int]:
    """In-context instructions, next item number and requested total of an Alpaca prompt."""
    word = _LABELS[lang]["instruction"]
    found = re.findall(rf"^(\d+)\.[ \t]*{re.escape(word)}:[ \t]*(.*)$", text, flags=re.MULTILINE)
    items = [instr.strip() for _, instr in found if instr.strip()]
    start = int(found[-1][0]) if found and not found[-1][1].strip() else len(items) + 1
    total_re = r"set of (\d+)" if lang == "en" else r"指示を(\d+)個"
    total = re.search(total_re, text)
    return items, start, int(total.group(1)) if total else 20


# --------------------------------------------------------------------------------------------
# Instruction generation
# --------------------------------------------------------------------------------------------


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_ALT_RE = re.compile(r"\[([^\[\]]*)\]")


def _expand(template: str, rng: random.Random) -> str:
    """Replace every ``[a|b|c]`` group by one alternative (an empty alternative is allowed)."""
    return _ALT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), template)


_ARTICLE_RE = re.compile(r"\b([Aa]n?) ([A-Za-z][\w'-]*)")
_CONSONANT_SOUND = ("eu", "one", "uni", "use", "usu", "ur")  # "a eulogy", "a one-day"
_VOWEL_SOUND = ("hour", "honest", "FAQ")


def _fix_article(match: re.Match[str]) -> str:
    """Choose "a" or "an" by the next word's sound, so slot filling stays grammatical."""
    article, word = match.group(1), match.group(2)
    low = word.lower()
    vowel = (low[0] in "aeiou" and not low.startswith(_CONSONANT_SOUND)) or word.startswith(
        _VOWEL_SOUND
    ) or low.startswith(("urg", "urb"))
    fixed = "an" if vowel else "a"
    return f"{fixed.capitalize() if article[0].isupper() else fixed} {word}"


def _en_good_instruction(rng: random.Random) -> str:
    """A plausible, grammatical English instruction assembled from independent slots."""
    topic = rng.choice(EN_TOPICS)
    topic2 = rng.choice([t for t in EN_TOPICS if t != topic])
    roll = rng.random()
    if roll < 0.15:
        frame = rng.choice(EN_CLASSIFICATION_FRAMES) + rng.choice(EN_CLASSIFICATION_TAILS)
        imperative = False
    elif roll < 0.35:
        frame, imperative = rng.choice(EN_QUESTION_FRAMES), False
    else:
        frame, imperative = rng.choice(EN_IMPERATIVE_FRAMES), True
    lead = rng.choice(EN_AUDIENCE_LEADS) if imperative else "for {a}"
    aud = " " + lead.format(a=rng.choice(EN_AUDIENCES)) if rng.random() < 0.55 else ""
    cons = " " + rng.choice(EN_CONSTRAINTS) if rng.random() < 0.55 else ""
    text = _expand(frame, rng).format(
        topic=topic, topic2=topic2, aud=aud, cons=cons, fmt=rng.choice(EN_FORMATS),
        n=rng.choice(EN_NUMBERS), lang=rng.choice(EN_LANGUAGES),
    )
    if len(text.split()) < 5:  # "Explain inflation." would fail the length filter
        text = f"{text[:-1]} {rng.choice(EN_CONSTRAINTS)}{text[-1]}"
    text = _ARTICLE_RE.sub(_fix_article, text)
    if imperative and rng.random() < 0.1:
        text = rng.choice(EN_WRAPPERS).format(x=text[0].lower() + text[1:-1])
    return text


def _ja_good_instruction(rng: random.Random) -> str:
    """A plausible Japanese instruction whose characters vary a lot from slot to slot.

    Several clause structures, each built from kanji-heavy vocabularies and ``[a|b]``
    alternations, keep the character-level ROUGE-L between two random instructions low
    (typically 0.15-0.35), so a 0.5 threshold still accepts most of them.
    """
    t = rng.choice(JA_TOPICS)
    t2 = rng.choice([x for x in JA_TOPICS if x != t])
    a = rng.choice(JA_AUDIENCES)
    asp = rng.choice(JA_ASPECTS)
    verb = rng.choice(JA_VERBS)
    end = rng.choice(JA_ENDINGS)
    ctx_roll = rng.random()
    opener = ""
    if ctx_roll < 0.3:
        opener = rng.choice(JA_AUDIENCE_OPENERS).format(a=a)
    elif ctx_roll < 0.6:
        opener = rng.choice(JA_PURPOSES) + "、"
    cons = rng.choice(JA_CONSTRAINTS) if rng.random() < 0.45 else ""
    roll = rng.random()
    if roll < 0.10:
        doc = rng.choice(("レビュー", "口コミ", "投稿", "文", "感想", "発言"))
        return _expand(rng.choice(JA_CLASSIFICATION_FRAMES), rng).format(t=t, doc=doc, end=end)
    if roll < 0.26:
        return _expand(rng.choice(JA_QUESTION_FRAMES), rng).format(t=t, t2=t2, a=a, asp=asp)
    if roll < 0.50:
        return f"{opener}{t}の{asp}を{cons}{verb}{end}"
    if roll < 0.58:
        link = rng.choice(("に関する", "についての", "をめぐる", "における"))
        return f"{opener}{t}{link}{asp}の{verb}を{rng.choice(JA_NOUN_ENDINGS)}"
    if roll < 0.72:
        count = rng.choice(JA_CREATIVE_COUNTS)
        form = rng.choice(JA_CREATIVE_FORMS)
        link = rng.choice(JA_CREATIVE_LINKS)
        return f"{opener}{t}{link}{form}を{count}{rng.choice(JA_CREATIVE_VERBS)}{end}"
    if roll < 0.82:
        event, doc = rng.choice(JA_EVENTS), rng.choice(JA_DOCUMENTS)
        link = rng.choice(("向けの", "を対象とした", "のための", "が参加する"))
        return f"{a}{link}{t}{event}の{doc}を{cons}{rng.choice(JA_DOC_VERBS)}{end}"
    if roll < 0.92:
        text = rng.choice(JA_TEXTS)
        where = rng.choice(("次の", "以下の", "与えられた", "この", "下記の"))
        if rng.random() < 0.5:
            return f"{opener}{where}{t}の{text}を{rng.choice(JA_TEXT_TASKS)}{end}"
        verb = rng.choice(("抽出", "列挙", "特定"))
        return f"{opener}{where}{t}の{text}から{rng.choice(JA_EXTRACTS)}を{verb}{end}"
    return f"{opener}{t}と{t2}を{rng.choice(JA_VIEWPOINTS)}の観点で{cons}比較{end}"


def _near_duplicate(original: str, lang: str, rng: random.Random) -> str:
    """Change one word (en) or two characters (ja): ROUGE-L stays far above any threshold."""
    if lang == "ja":
        if len(original) < 4:
            return original + "ね"
        pos = rng.randrange(0, len(original) - 2)
        repl = rng.choice(JA_NEAR_DUP_CHARS) + rng.choice(JA_NEAR_DUP_CHARS)
        return original[:pos] + repl + original[pos + 2 :]
    words = original.split()
    if len(words) < 2:
        return original + " " + rng.choice(EN_FILLERS)
    i = rng.randrange(1, len(words))
    tail = re.sub(r"^[A-Za-z0-9'\-]+", "", words[i])
    words[i] = rng.choice(EN_FILLERS) + tail
    return " ".join(words)


# Cumulative thresholds for the deliberately bad items (see generate_instruction).
_BAD_ITEM_RATES: tuple[tuple[str, float], ...] = (
    ("copy", 0.08),
    ("near_duplicate", 0.05),
    ("blacklisted", 0.04),
    ("too_short", 0.03),
    ("program", 0.02),
    ("punctuation", 0.02),
)


def generate_instruction(
    lang: str, rng: random.Random, in_context: Sequence[str]
) -> tuple[str, str]:
    """Return ``(instruction, category)``; category is ``"good"`` or the bad-item kind.

    About 24 % of items are deliberately bad, in the proportions of ``_BAD_ITEM_RATES``, so
    that exact dedup, ROUGE-L near-duplicate rejection, the keyword blacklist, the length
    filter, the "Write a program" filter and the punctuation filter all see real traffic.
    """
    roll = rng.random()
    acc = 0.0
    category = "good"
    for name, rate in _BAD_ITEM_RATES:
        acc += rate
        if roll < acc:
            category = name
            break
    if category in ("copy", "near_duplicate") and not in_context:
        category = "good"
    topic = rng.choice(EN_TOPICS if lang == "en" else JA_TOPICS)
    if category == "copy":
        return rng.choice(list(in_context)), category
    if category == "near_duplicate":
        return _near_duplicate(rng.choice(list(in_context)), lang, rng), category
    if category == "blacklisted":
        frames = EN_BLACKLISTED if lang == "en" else JA_BLACKLISTED
        return rng.choice(frames).format(topic=topic, t=topic), category
    if category == "too_short":
        return rng.choice(EN_TOO_SHORT if lang == "en" else JA_TOO_SHORT), category
    if category == "program":
        frames = EN_PROGRAMS if lang == "en" else JA_PROGRAMS
        return rng.choice(frames).format(topic=topic, t=topic), category
    good = _en_good_instruction(rng) if lang == "en" else _ja_good_instruction(rng)
    if category == "punctuation":
        return (f"- {good}" if rng.random() < 0.5 else f'"{good}"'), category
    return good, "good"


# --------------------------------------------------------------------------------------------
# Instances and labels
# --------------------------------------------------------------------------------------------


_EN_PHRASE_STOP = frozenset({
    "for", "in", "to", "that", "and", "using", "with", "as", "into", "so", "from", "by",
    "without", "while", "or", "but", "which", "who", "is", "are", "was", "were", "be", "can",
    "should", "will",
})
_EN_VAGUE = frozenset({
    "the", "following", "given", "this", "these", "it", "them", "me", "you", "a", "an", "your",
    "my",
})
_EN_GENERIC_NOUNS = frozenset({
    "sentence", "phrase", "text", "word", "number", "list", "item", "statement", "question",
    "answer", "input", "output", "review", "email", "message", "paragraph", "story", "article",
    "example", "pair", "document", "task", "instruction",
})
_JA_MARKERS = ("について", "に関する", "に関して", "をめぐる", "における", "を題材", "をテーマ",
               "にちなんだ", "に着想")
_JA_PREFIXES = ("次の", "以下の", "与えられた", "この", "下記の")


def _find_topic(instruction: str, lang: str, rng: random.Random) -> str:
    """Best guess of what an instruction is about, so instance text stays on topic.

    Known vocabulary topics win; then a short phrase after "about/on/of/for" (en) or before
    "について/に関する/…" (ja); otherwise a vocabulary topic picked by ``rng``: for a generic
    task such as "Classify the sentence as positive or negative" any topic gives a sensible
    input, which is better than echoing words of the instruction.
    """
    if lang == "ja":
        hits = [t for t in JA_TOPICS if t in instruction]
        if hits:
            return max(hits, key=len)
        for marker in _JA_MARKERS:
            if marker in instruction:
                head = instruction.split(marker)[0]
                for prefix in _JA_PREFIXES:
                    head = head.removeprefix(prefix)
                head = re.split(r"[、。「」\s]", head)[-1]
                if 1 <= len(head) <= 12:
                    return head
        return rng.choice(JA_TOPICS)
    low = instruction.lower()
    hits = [t for t in EN_TOPICS if t.lower() in low]
    if hits:
        return max(hits, key=len)
    for m in re.finditer(r"\b(?:about|on|of|for|regarding)\s+([^.?!,:;]+)", instruction):
        words: list[str] = []
        for word in m.group(1).split():
            if word.lower() in _EN_PHRASE_STOP or len(words) == 4:
                break
            words.append(word)
        content = [w for w in words if w.lower() not in _EN_VAGUE]
        if content and not any(w.lower() in ("following", "given", "this") for w in words):
            return " ".join(words)
    # "Explain recursion to a child." -> "recursion"; generic objects ("the sentence") are not.
    obj: list[str] = []
    for word in re.findall(r"[A-Za-z0-9'\-]+", instruction)[1:]:
        if word.lower() in _EN_PHRASE_STOP or len(obj) == 3:
            break
        obj.append(word)
    content = [w for w in obj if w.lower() not in _EN_VAGUE]
    if content and not any(w.lower().rstrip("s") in _EN_GENERIC_NOUNS for w in content):
        return " ".join(obj)
    return rng.choice(EN_TOPICS)


def _needs_input(instruction: str, lang: str) -> bool:
    """Whether the instruction refers to a given text, so its examples must have an input."""
    if lang == "ja":
        return any(k in instruction for k in ("次の", "以下の", "与えられた", "下記の", "この"))
    return re.search(r"\b(following|given|this|these)\b", instruction, re.I) is not None


def _fill(template: str, topic: str) -> str:
    return template.format(topic=topic, Topic=_cap(topic), t=topic)


def _instance_pairs(
    instruction: str, lang: str, rng: random.Random
) -> list[tuple[str, str, str]]:
    """1-4 ``(input, output, category)`` triples for an input-first instance answer.

    Injects the instance-filter cases at low, deterministic rates: input identical to output
    (~3 %), empty output (~3 %), output ending with ":" (~2 %).
    """
    topic = _find_topic(instruction, lang, rng)
    inputs = EN_INPUTS if lang == "en" else JA_INPUTS
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    count = rng.choices((1, 2, 3, 4), weights=(15, 35, 30, 20))[0]
    no_input = not _needs_input(instruction, lang) and rng.random() < 0.3
    in_texts = rng.sample(inputs, count)
    pairs: list[tuple[str, str, str]] = []
    for i in range(count):
        inp = "" if no_input else _fill(in_texts[i], topic)
        out_templates = rng.sample(outputs, rng.choice((1, 1, 2)))
        sep = " " if lang == "en" else ""
        out = sep.join(_fill(t, topic) for t in out_templates)
        roll = rng.random()
        category = "good"
        if roll < 0.03:
            inp = inp or _fill(in_texts[i], topic)
            out, category = inp, "input_equals_output"
        elif roll < 0.06:
            out, category = "", "empty_output"
        elif roll < 0.08:
            lead = "Here is the answer" if lang == "en" else "答えは次のとおりです"
            out, category = f"{lead}:", "ends_with_colon"
        pairs.append((inp, out, category))
    return pairs


def _label_set(instruction: str, lang: str, rng: random.Random) -> list[tuple[str, str]]:
    """Labels named or implied by a classification instruction, each with an input template."""
    table = EN_LABEL_SETS if lang == "en" else JA_LABEL_SETS
    if lang == "ja":
        quoted = re.findall(r"「([^「」]{1,12})」", instruction)
        for triggers, labels in table:
            if any(t in instruction for t in triggers):
                return list(labels)
        if len(quoted) >= 2:
            return [(q, f"{{t}}について、「{q}」に当てはまる短い文。") for q in quoted]
        return list(table[0][1][:2])
    low = instruction.lower()
    for triggers, labels in table:
        if any(t in low for t in triggers):
            return list(labels)
    m = re.search(r"\b(?:as|into)\s+([A-Za-z\- ]+?)(?:,\s*|\s+)or\s+([A-Za-z\- ]+?)[.?]", low)
    if m:
        return [
            (_cap(lab), f"A short text about {{topic}} that is clearly {lab}.")
            for lab in (m.group(1).strip(), m.group(2).strip())
        ]
    return list(table[0][1][:2])


# Appended to the input of a repeated label, so two instances of one task never share an input.
_REPEAT_SUFFIX: dict[str, str] = {"en": " Really.", "ja": "本当に。"}


def _label_pairs(instruction: str, lang: str, rng: random.Random) -> list[tuple[str, str]]:
    """2-3 ``(label, input)`` pairs for an output-first (classification) answer."""
    topic = _find_topic(instruction, lang, rng)
    labels = _label_set(instruction, lang, rng)
    if len(labels) > 3:
        chosen = rng.sample(labels, rng.choice((2, 3)))
    elif len(labels) == 3:
        chosen = labels if rng.random() < 0.7 else rng.sample(labels, 2)
    else:
        chosen = list(labels)
        if rng.random() < 0.3:
            chosen.append(rng.choice(labels))
    out: list[tuple[str, str]] = []
    for i, (label, template) in enumerate(chosen):
        text = _fill(template, topic)
        if i >= len(labels):  # a repeated label gets a different input
            text = text + _REPEAT_SUFFIX[lang]
        out.append((label, text))
    return out


# --------------------------------------------------------------------------------------------
# Answers per prompt kind
# --------------------------------------------------------------------------------------------


def _bootstrap_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Continue the numbered list up to item 15 or 16 (the pipeline's stop cuts item 16).

    Completions continue after "N." with a leading space; ~3 % end early with a blank line
    (exercising the "\\n\\n" stop). Chat answers restate the list, ~20 % in another style.
    """
    in_context, start = _bootstrap_items(text)
    end = max(start, rng.choice((15, 16, 16)))
    items = [generate_instruction(lang, rng, in_context)[0] for _ in range(start, end + 1)]
    if not chat:
        lines = [f" {items[0]}"] + [f"{start + i}. {it}" for i, it in enumerate(items) if i]
        if rng.random() < 0.03 and len(lines) > 2:
            cut = rng.randrange(1, len(lines) - 1)
            note = "These tasks cover many skills." if lang == "en" else "以上です。"
            lines.insert(cut, f"\n{note}")
        return "\n".join(lines)
    style = rng.random()
    first = 1 if 0.14 <= style < 0.2 else start
    if 0.07 <= style < 0.14:
        lines = [f"**{first + i}.** {it}" for i, it in enumerate(items)]
    else:
        lines = [f"{first + i}. {it}" for i, it in enumerate(items)]
    if style < 0.07:
        preamble = "Here are more tasks:" if lang == "en" else "追加のタスクです:"
        return preamble + "\n\n" + "\n".join(lines)
    return "\n".join(lines)


def _classify_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Yes/No from keywords of the last task, so the label agrees with how items were built."""
    task = _last_task(text, lang)
    if lang == "ja":
        yes = any(k in task for k in JA_CLASSIFICATION_KEYWORDS)
        word = "はい" if yes else "いいえ"
        variants = ("はい。", "はい、分類タスクです。") if yes else (
            "いいえ。", "いいえ、分類タスクではありません。")
    else:
        yes = _EN_CLASSIFICATION_RE.search(task) is not None
        word = "Yes" if yes else "No"
        variants = ("Yes.", "Yes, it is a classification task.") if yes else (
            "No.", "No, it is not a classification task.")
    if not chat:
        return f" {word}"
    return rng.choice(variants) if rng.random() < 0.15 else word


def _instances_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """"Example i / Input / Output" blocks; completions start with the newline a model emits."""
    lab = _LABELS[lang]
    pairs = _instance_pairs(_last_task(text, lang), lang, rng)
    blocks = []
    for i, (inp, out, _) in enumerate(pairs, start=1):
        lines = [f"{lab['example']} {i}"]
        if inp:
            lines.append(f"{lab['input']}: {inp}")
        lines.append(f"{lab['output']}:" + (f" {out}" if out else ""))
        blocks.append("\n".join(lines))
    body = "\n\n".join(blocks)
    return body if chat else "\n" + body


def _output_first_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """"Class label / Input" pairs, labels taken from the task text when it names them."""
    lab = _LABELS[lang]
    pairs = _label_pairs(_last_task(text, lang), lang, rng)
    body = "\n".join(
        f"{lab['class_label']}: {label}\n{lab['input']}: {inp}" for label, inp in pairs
    )
    return body if chat else "\n" + body


def _alpaca_item(lang: str, rng: random.Random, in_context: Sequence[str]) -> tuple[str, str, str]:
    """One Alpaca triple; classification instructions get a labelled input and a label."""
    instruction, _ = generate_instruction(lang, rng, in_context)
    topic = _find_topic(instruction, lang, rng)
    is_cls = (
        _EN_CLASSIFICATION_RE.search(instruction) is not None
        if lang == "en"
        else any(k in instruction for k in JA_CLASSIFICATION_KEYWORDS)
    )
    inputs = EN_INPUTS if lang == "en" else JA_INPUTS
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    if is_cls:
        label, inp = rng.choice(_label_set(instruction, lang, rng))
        return instruction, _fill(inp, topic), label
    needs = _needs_input(instruction, lang) or rng.random() < 0.35
    inp = _fill(rng.choice(inputs), topic) if needs else NO_INPUT
    return instruction, inp, _fill(rng.choice(outputs), topic)


def _alpaca_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Items N..num_tasks in the "###" format; the pipeline's "\\n20" stop drops the last."""
    lab = _LABELS[lang]
    in_context, start, total = _alpaca_items(text, lang)
    end = max(start, total)
    chunks: list[str] = []
    for k in range(start, end + 1):
        instr, inp, out = _alpaca_item(lang, rng, in_context)
        rest = f"\n{k}. {lab['input']}:\n{inp}\n{k}. {lab['output']}:\n{out}"
        if k == start and not chat:
            chunks.append(f" {instr}{rest}")
        else:
            chunks.append(f"###\n{k}. {lab['instruction']}: {instr}{rest}")
    return "\n".join(chunks)


# --------------------------------------------------------------------------------------------
# Quality stage: the LLM judge and the label-consistency check (selfinstruct.quality)
# --------------------------------------------------------------------------------------------

# Share of examples the judge scores 1-2 on clarity or correctness, so that a threshold of 3
# drops some rows besides the degenerate ones (empty output, output == input).
JUDGE_LOW_RATE = 0.10
# Ordinary scores: mostly 4-5, now and then a 3 (which still passes a threshold of 3).
_JUDGE_SCORE_WEIGHTS: tuple[tuple[int, int], ...] = ((3, 1), (4, 8), (5, 11))
# Share of label-consistency answers that name another label than the generated one.
LABEL_DISAGREE_RATE = 0.08
# The judge template's field names and the first rubric line right after the example; the
# rubric is found from the end, so an output that itself holds blank lines stays whole.
_JUDGE_FIELDS: dict[str, tuple[str, str]] = {"en": ("Clarity", "Correctness"),
                                             "ja": ("明確さ", "正確さ")}
_JUDGE_RUBRIC: dict[str, str] = {"en": "\n\nScore two things from 1", "ja": "\n\n次の二点を"}
# The optional choices line of the label template and how its labels are joined.
_LABEL_OPTIONS: dict[str, tuple[str, str]] = {"en": ("Class labels", ", "),
                                              "ja": ("クラスラベルの候補", "、")}
_SLOT_RE = re.compile(r"\{(?:topic|Topic|t)\}")


def _judge_example(text: str, lang: str) -> tuple[str, str, str] | None:
    """``(instruction, input, output)`` of a judge prompt; ``None`` if it is not the template.

    ``<noinput>`` becomes "" again, so "output equals input" compares what the row holds.
    """
    lab = _LABELS[lang]
    end = text.rfind(_JUDGE_RUBRIC[lang])
    body = text if end == -1 else text[:end]
    match = re.search(
        rf"^{re.escape(lab['instruction'])}:[ \t]?(.*?)\n{re.escape(lab['input'])}:[ \t]?(.*?)"
        rf"\n{re.escape(lab['output'])}:[ \t]?(.*)\Z",
        body, flags=re.MULTILINE | re.DOTALL,
    )
    if match is None:
        return None
    instruction, inp, out = (g.strip() for g in match.groups())
    return instruction, "" if inp == NO_INPUT else inp, out


def judge_scores(instruction: str, input_: str, output: str) -> tuple[int, int]:
    """``(clarity, correctness)`` for one example: a pure function of the example alone.

    The pipeline asks the judge at temperature 0, so like a greedy model the scores ignore the
    seed and the sampling parameters: a resumed or re-seeded run judges a row the same way.
    About :data:`JUDGE_LOW_RATE` of examples get a 1 or 2 in one of the two scores; an empty
    output, or one that merely repeats the input, always gets correctness 1.
    """
    rng = _rng_for(["judge", instruction, input_, output])
    scores, weights = zip(*_JUDGE_SCORE_WEIGHTS, strict=True)
    clarity, correctness = rng.choices(scores, weights=weights, k=2)
    if rng.random() < JUDGE_LOW_RATE:
        low = rng.choice((1, 2))
        if rng.random() < 0.5:
            clarity = low
        else:
            correctness = low
    if not output.strip() or output.strip() == input_.strip():
        correctness = 1
    return clarity, correctness


def _judge_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """Exactly the two lines the rubric asks for; completions start on a new line.

    A prompt that is not the template's shape is still scored (from its whole text), because
    a real judge answers whatever it is given; the degenerate-output rule then cannot apply.
    """
    clarity, correctness = judge_scores(*(_judge_example(text, lang) or (text, "", text)))
    first, second = _JUDGE_FIELDS[lang]
    body = f"{first}: {clarity}\n{second}: {correctness}"
    return body if chat else "\n" + body


def _label_prompt(text: str, lang: str) -> tuple[str, list[str], str]:
    """``(instruction, offered labels, input)`` of a label-consistency prompt.

    The input runs from the first ``Input:`` line after the task to the closing
    ``Class label:`` line, so a multi-line input, even one holding "Input:", stays whole.
    """
    lab = _LABELS[lang]
    options_word, sep = _LABEL_OPTIONS[lang]
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[-1].strip().rstrip(":：") == lab["class_label"]:
        lines.pop()
    instruction: str | None = None
    options: list[str] = []
    inp = ""
    task_prefix, options_prefix, input_prefix = (
        f"{lab['task']}:", f"{options_word}:", f"{lab['input']}:")
    for i, line in enumerate(lines):
        if instruction is None:
            if line.startswith(task_prefix):
                instruction = line[len(task_prefix):].strip()
        elif not options and line.startswith(options_prefix):
            options = [o.strip() for o in line[len(options_prefix):].split(sep) if o.strip()]
        elif line.startswith(input_prefix):
            inp = "\n".join([line[len(input_prefix):], *lines[i + 1:]]).strip()
            break
    return instruction or "", options, "" if inp == NO_INPUT else inp


def _task_labels(instruction: str, lang: str) -> list[tuple[str, str]]:
    """The label set generation used for ``instruction``, rebuilt from the instruction alone.

    :func:`_label_set` draws nothing from its RNG, so a fixed one gives the very set the
    output-first answer drew its labels and input templates from.
    """
    return _label_set(instruction, lang, random.Random(0))


@functools.lru_cache(maxsize=512)
def _template_pattern(template: str, lang: str) -> re.Pattern[str]:
    """A regex matching every input ``_fill(template, topic)`` can give, for any topic.

    The topic may be a vocabulary topic or a phrase cut from the instruction (or, for generic
    tasks, a random one), so it is matched as a wildcard instead of being recomputed.
    """
    parts = [re.escape(part) for part in _SLOT_RE.split(template)]
    suffix = re.escape(_REPEAT_SUFFIX[lang])
    return re.compile("(.+?)".join(parts) + f"(?:{suffix})?", flags=re.DOTALL)


def label_for_input(instruction: str, lang: str, input_: str) -> str | None:
    """The label the output-first answer paired with ``input_``, or None if it made no such input.

    Output-first generation fills the input template of a label from :func:`_label_set`, which
    depends on the instruction only; matching the input back against those templates recovers
    the label for instances from both the output-first and the Alpaca answers.
    """
    text = input_.strip()
    for label, template in _task_labels(instruction, lang):
        if _template_pattern(template, lang).fullmatch(text):
            return label
    return None


def _label_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    """The class label of the input: the generated one, ~8 % of the time another one.

    The consistency check samples at a temperature above 0, so the disagreement is drawn from
    the request's RNG (prompt, seed, choice index ...): a different seed may flip a verdict,
    as a real second sample would. The other label comes from the labels offered in the
    prompt, else from the task's label set. An input this server did not generate gets the
    first label of the task's label set. Completions continue "Class label:" with a space;
    about 10 % of chat answers end with "." (ja: "です。"), which the pipeline normalises.
    """
    instruction, options, inp = _label_prompt(text, lang)
    labels = [label for label, _ in _task_labels(instruction, lang)]
    matched = label_for_input(instruction, lang, inp)
    answer = labels[0] if matched is None else matched
    if matched is not None and rng.random() < LABEL_DISAGREE_RATE:
        pool = options if len(options) > 1 else labels
        others = [label for label in pool if label != matched]
        if others:
            answer = rng.choice(others)
    if not chat:
        return f" {answer}"
    if rng.random() < 0.1:
        answer += "." if lang == "en" else "です。"
    return answer


def _generic_answer(text: str, lang: str, rng: random.Random, chat: bool) -> str:
    return rng.choice(GENERIC_ANSWERS_EN if lang == "en" else GENERIC_ANSWERS_JA)


_ANSWERERS: dict[str, Callable[[str, str, random.Random, bool], str]] = {
    "bootstrap": _bootstrap_answer,
    "classify": _classify_answer,
    "instances_input_first": _instances_answer,
    "instances_output_first": _output_first_answer,
    "alpaca": _alpaca_answer,
    "judge": _judge_answer,
    "label": _label_answer,
    "generic": _generic_answer,
}


def _rng_for(material: Any) -> random.Random:
    """A private RNG seeded from a hash, so answers never depend on global random state."""
    digest = hashlib.sha256(_canonical_json(material).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def generate_answer(
    prompt: str,
    *,
    chat: bool,
    model: str = "test-model",
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    choice_index: int = 0,
    hash_material: Any = None,
) -> str:
    """The full (uncut) answer for one choice: a pure function of its arguments.

    ``hash_material`` is what identifies the prompt for seeding (the chat ``messages`` list,
    or the prompt string); it defaults to ``prompt``. Stop and max_tokens are applied later.
    """
    kind, lang = detect_prompt(prompt)
    rng = _rng_for(
        {
            "endpoint": "chat" if chat else "completions",
            "prompt": prompt if hash_material is None else hash_material,
            "model": model,
            "temperature": None if temperature is None else float(temperature),
            "top_p": None if top_p is None else float(top_p),
            "seed": seed,
            "choice": choice_index,
        }
    )
    return _ANSWERERS[kind](prompt, lang, rng, chat)


def _junk_text(rng: random.Random, words: int = 24) -> str:
    return " ".join(
        "".join(rng.choice(JUNK_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(words)
    )


# --------------------------------------------------------------------------------------------
# Faults and counters
# --------------------------------------------------------------------------------------------

FAULT_KINDS: tuple[str, ...] = (
    "429", "429_retry_after", "500", "502", "503", "reset", "hang", "empty_choices", "length",
    "truncated_body", "non_json", "garbage",
)
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503")


@dataclass(frozen=True)
class FaultPlan:
    """Deterministic fault selection.

    For the attempt of a request whose fingerprint (sha256 of the canonical JSON body) was
    already seen ``seen`` times since the last reset: if ``seen >= max_faults_per_request``
    the attempt is never faulted; otherwise ``h = sha256(f"{seed}:{fingerprint}:{seen}")``,
    the attempt is faulted when ``h[0:8] / 2**64 < rate``, and the kind is
    ``kinds[h[8:16] % len(kinds)]``. So a client retrying the identical request
    ``max_faults_per_request`` times is guaranteed to get an answer, and two runs with the
    same seed see exactly the same faults in the same places regardless of thread timing.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    seed: int = 0
    max_faults_per_request: int = 2

    def decide(self, fingerprint: str, seen: int) -> str | None:
        """The fault kind for this attempt, or None to answer normally."""
        if self.rate <= 0 or not self.kinds or seen >= self.max_faults_per_request:
            return None
        digest = hashlib.sha256(f"{self.seed}:{fingerprint}:{seen}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(digest[8:16], "big") % len(self.kinds)]


@dataclass
class _Counters:
    """Thread-safe request accounting; every mutation and snapshot holds one lock.

    An outcome is recorded before its response is written, so stats read by a client after it
    got an answer always include that answer. ``in_flight`` drops only after the write.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests_total: int = 0
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    fingerprints: Counter[str] = field(default_factory=Counter)
    successes_total: int = 0
    successes_by_endpoint: Counter[str] = field(default_factory=Counter)
    success_fingerprints: Counter[str] = field(default_factory=Counter)
    faults_total: int = 0
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    errors_by_status: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    files_created: int = 0
    batches_created: int = 0
    batch_requests_total: int = 0
    batch_successes_total: int = 0
    batch_errors_by_kind: Counter[str] = field(default_factory=Counter)
    batch_fingerprints: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    offers: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200_000))

    def begin(self, path: str) -> None:
        with self.lock:
            self.requests_total += 1
            self.requests_by_endpoint[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def see(self, fingerprint: str) -> int:
        """Record one attempt of ``fingerprint``; return how many times it was seen before."""
        with self.lock:
            seen = self.fingerprints[fingerprint]
            self.fingerprints[fingerprint] = seen + 1
            return seen

    def outcome(
        self,
        path: str,
        fingerprint: str | None,
        body: Any,
        *,
        fault: str | None = None,
        status: int = 200,
        usage: tuple[int, int] = (0, 0),
    ) -> None:
        with self.lock:
            if fault is not None:
                self.faults_total += 1
                self.faults_by_kind[fault] += 1
                result = f"fault:{fault}"
            elif status == 200:
                self.successes_total += 1
                self.successes_by_endpoint[path] += 1
                if fingerprint is not None:
                    self.success_fingerprints[fingerprint] += 1
                self.prompt_tokens += usage[0]
                self.completion_tokens += usage[1]
                result = "ok"
            else:
                self.errors_by_status[str(status)] += 1
                result = f"error:{status}"
            self.log.append(
                {"path": path, "fingerprint": fingerprint, "body": body, "outcome": result}
            )

    def created(self, kind: str) -> None:
        """Count one uploaded file (``"file"``) or created batch (``"batch"``)."""
        with self.lock:
            if kind == "file":
                self.files_created += 1
            else:
                self.batches_created += 1

    def see_batch_line(self, fingerprint: str) -> int:
        """Record one batch line of ``fingerprint``; return how many were seen before."""
        with self.lock:
            seen = self.batch_fingerprints[fingerprint]
            self.batch_fingerprints[fingerprint] = seen + 1
            self.batch_requests_total += 1
            return seen

    def batch_outcome(
        self, fingerprint: str, *, error: str | None = None, usage: tuple[int, int] = (0, 0)
    ) -> None:
        """An answered batch line counts like a direct answer of the same body."""
        with self.lock:
            if error is not None:
                self.batch_errors_by_kind[error] += 1
                return
            self.batch_successes_total += 1
            self.success_fingerprints[fingerprint] += 1
            self.prompt_tokens += usage[0]
            self.completion_tokens += usage[1]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests_total": self.requests_total,
                "requests_by_endpoint": dict(self.requests_by_endpoint),
                "fingerprints": dict(self.fingerprints),
                "max_fingerprint_count": max(self.fingerprints.values(), default=0),
                "successes_total": self.successes_total,
                "successes_by_endpoint": dict(self.successes_by_endpoint),
                "success_fingerprints": dict(self.success_fingerprints),
                "max_success_count": max(self.success_fingerprints.values(), default=0),
                "faults_total": self.faults_total,
                "faults_by_kind": dict(self.faults_by_kind),
                "errors_by_status": dict(self.errors_by_status),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "files_created": self.files_created,
                "batches_created": self.batches_created,
                "batch_requests_total": self.batch_requests_total,
                "batch_successes_total": self.batch_successes_total,
                "batch_errors_by_kind": dict(self.batch_errors_by_kind),
                "batch_fingerprints": dict(self.batch_fingerprints),
            }

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)

    def offer(self, request_id: str, response: dict[str, Any],
              accounts: list[dict[str, Any]]) -> None:
        """Record what an answered response offered, one entry per choice (see offered())."""
        with self.lock:
            for account in accounts:
                self.offers.append(
                    {"id": request_id, "response_id": response["id"], **account})

    def offered(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.offers)

    def reset(self) -> None:
        with self.lock:
            self.requests_total = self.successes_total = self.faults_total = 0
            self.prompt_tokens = self.completion_tokens = 0
            self.files_created = self.batches_created = 0
            self.batch_requests_total = self.batch_successes_total = 0
            self.max_in_flight = self.in_flight
            for counter in (
                self.requests_by_endpoint, self.fingerprints, self.successes_by_endpoint,
                self.success_fingerprints, self.faults_by_kind, self.errors_by_status,
                self.batch_errors_by_kind, self.batch_fingerprints,
            ):
                counter.clear()
            self.log.clear()
            self.offers.clear()


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(body: Any) -> str:
    """sha256 of the canonical JSON of a request body: equal bodies, equal fingerprints."""
    return hashlib.sha256(_canonical_json(body).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """Everything that changes the server's behaviour; constructor kwargs and CLI flags."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    fault_seed: int = 0
    max_faults_per_request: int = 2
    hang_seconds: float = 30.0
    retry_after: float = 1.0
    batch_polls: int = 2
    batch_seconds: float | None = None
    batch_error_rate: float = 0.0
    batch_error_kinds: tuple[str, ...] = ("500",)
    verbose: bool = False
    style: str = "clean"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {', '.join(STYLES)}")
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"the test server only binds loopback addresses, not {self.host!r}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if self.latency_ms < 0 or self.hang_seconds < 0 or self.retry_after < 0:
            raise ValueError("latency_ms, hang_seconds and retry_after must be >= 0")
        if self.batch_polls < 1 or (self.batch_seconds is not None and self.batch_seconds < 0):
            raise ValueError("batch_polls must be >= 1 and batch_seconds >= 0")
        if not 0.0 <= self.batch_error_rate <= 1.0:
            raise ValueError("batch_error_rate must be within [0, 1]")
        unknown = set(self.batch_error_kinds) - set(BATCH_ERROR_KINDS)
        if unknown:
            raise ValueError(f"unknown batch error kinds {sorted(unknown)}; "
                             f"known: {BATCH_ERROR_KINDS}")


class _APIError(Exception):
    """An OpenAI-shaped error response raised inside a handler."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_FAULT_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "429": (429, "Rate limit reached for requests (test server).", "requests",
            "rate_limit_exceeded"),
    "429_retry_after": (429, "Rate limit reached; retry after the indicated delay.", "requests",
                        "rate_limit_exceeded"),
    "500": (500, "The server had an error while processing your request.", "server_error",
            None),
    "502": (502, "Bad gateway.", "server_error", "bad_gateway"),
    "503": (503, "The engine is currently overloaded, please try again later.",
            "server_error", "service_unavailable"),
}


# --------------------------------------------------------------------------------------------
# Batch API
# --------------------------------------------------------------------------------------------

BATCH_ERROR_KINDS: tuple[str, ...] = ("400", "429", "500", "expired")
_BATCH_LINE_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "400": (400, "Invalid request in batch line (test server).", "invalid_request_error",
            "invalid_request"),
    "429": _FAULT_ERRORS["429"],
    "500": _FAULT_ERRORS["500"],
}
_BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
_PENDING = ("validating", "in_progress")


class _BatchStore:
    """Uploaded files and batch jobs, in memory for the server's lifetime (not reset).

    A batch does its work when a retrieve finds it due: all its lines are answered at once by
    the very code that answers direct requests, so batch and direct answers cannot differ.
    """

    def __init__(self, options: ServerOptions, counters: _Counters) -> None:
        self.options = options
        self.counters = counters
        self.plan = FaultPlan(rate=options.batch_error_rate, kinds=options.batch_error_kinds,
                              seed=options.fault_seed,
                              max_faults_per_request=options.max_faults_per_request)
        self.lock = threading.Lock()
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # in creation order
        self._inputs: dict[str, list[dict[str, Any]]] = {}
        self._polls: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):012d}"

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self.lock:
            return self._add_file(data, filename, purpose)

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta = {"id": self._new_id("file"), "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                "status": "processed", "expires_at": None, "status_details": None}
        self.files[meta["id"]] = (meta, data)
        self.counters.created("file")
        return meta

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            if file_id not in self.files:
                raise _APIError(404, f"No such File object: {file_id}", "invalid_request_error",
                                "file_not_found")
            return self.files[file_id]

    def create(self, body: Any) -> dict[str, Any]:
        """Check the request and the input file; a bad line fails the batch, as OpenAI does."""
        if not isinstance(body, dict):
            raise _APIError(400, "The request body must be a JSON object.",
                            "invalid_request_error")
        endpoint = body.get("endpoint")
        if endpoint not in _BATCH_ENDPOINTS:
            raise _APIError(400, f"endpoint must be one of {_BATCH_ENDPOINTS}",
                            "invalid_request_error", "invalid_endpoint")
        if body.get("completion_window") != "24h":
            raise _APIError(400, "completion_window must be '24h'", "invalid_request_error")
        meta, data = self.file(str(body.get("input_file_id")))
        if meta["purpose"] != "batch":
            raise _APIError(400, "The input file must be uploaded with purpose 'batch'.",
                            "invalid_request_error")
        lines, errors = _parse_batch_input(data, endpoint)
        now = int(time.time())
        with self.lock:
            batch: dict[str, Any] = {
                "id": self._new_id("batch"), "object": "batch", "endpoint": endpoint,
                "errors": None, "input_file_id": meta["id"], "completion_window": "24h",
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": now, "in_progress_at": None, "expires_at": now + 86_400,
                "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "model": lines[0]["body"]["model"] if lines else None, "usage": None,
            }
            if errors:
                batch.update(status="failed", failed_at=now,
                             errors={"object": "list", "data": errors})
            self.batches[batch["id"]] = batch
            self._inputs[batch["id"]] = lines
            self.counters.created("batch")
            return dict(batch)

    def _batch(self, batch_id: str) -> dict[str, Any]:
        if batch_id not in self.batches:
            raise _APIError(404, f"No batch found with id '{batch_id}'.",
                            "invalid_request_error", "batch_not_found")
        return self.batches[batch_id]

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """Advance the batch if it is due (see the module docstring), then return it."""
        with self.lock:
            batch = self._batch(batch_id)
            now = int(time.time())
            if batch["status"] in _PENDING:
                self._polls[batch_id] += 1
                waited = time.time() - batch["created_at"]
                seconds = self.options.batch_seconds
                if self._polls[batch_id] >= self.options.batch_polls or (
                        seconds is not None and waited >= seconds):
                    self._complete(batch, now)
                else:
                    batch["status"] = "in_progress"
                    batch["in_progress_at"] = batch["in_progress_at"] or now
            elif batch["status"] == "cancelling":
                batch.update(status="cancelled", cancelled_at=now)
            return dict(batch)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(batch_id)
            if batch["status"] not in _PENDING:
                raise _APIError(400, f"Cannot cancel a batch with status '{batch['status']}'.",
                                "invalid_request_error")
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            return dict(batch)

    def list(self, limit: int, after: str | None) -> dict[str, Any]:
        with self.lock:
            newest_first = list(reversed(self.batches.values()))
        ids = [b["id"] for b in newest_first]
        start = ids.index(after) + 1 if after in ids else 0
        page = [dict(b) for b in newest_first[start:start + limit]]
        return {"object": "list", "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(newest_first)}

    def _complete(self, batch: dict[str, Any], now: int) -> None:
        chat = batch["endpoint"] == "/v1/chat/completions"
        output: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        tokens = [0, 0]
        for line in self._inputs[batch["id"]]:
            record, usage = self._answer_line(line, chat)
            if usage is None:
                failed.append(record)
                continue
            output.append(record)
            tokens = [tokens[0] + usage[0], tokens[1] + usage[1]]
        for key, records in (("output_file_id", output), ("error_file_id", failed)):
            if records:
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                name = f"{batch['id']}_{key.split('_')[0]}.jsonl"
                batch[key] = self._add_file(data.encode("utf-8"), name, "batch_output")["id"]
        batch.update(
            status="completed", in_progress_at=batch["in_progress_at"] or now,
            finalizing_at=now, completed_at=now,
            request_counts={"total": len(output) + len(failed), "completed": len(output),
                            "failed": len(failed)},
            usage={"input_tokens": tokens[0], "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": tokens[1],
                   "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": sum(tokens)},
        )

    def _answer_line(
        self, line: dict[str, Any], chat: bool
    ) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """One output-file record and its token usage; usage None marks an error-file record."""
        body = line["body"]
        fingerprint = fingerprint_of(body)
        seen = self.counters.see_batch_line(fingerprint)
        seq = next(self._ids)
        record: dict[str, Any] = {"id": f"batch_req_{fingerprint[:16]}{seq:08x}",
                                  "custom_id": line["custom_id"], "response": None,
                                  "error": None}
        request_id = f"req_{fingerprint[:16]}{seq:08x}"
        fault = self.plan.decide(fingerprint, seen)
        if fault == "expired":
            self.counters.batch_outcome(fingerprint, error=fault)
            record["error"] = {"code": "batch_expired", "message": "This request could not be "
                               "executed before the completion window expired."}
            return record, None
        if fault is not None:
            status, message, type_, code = _BATCH_LINE_ERRORS[fault]
            self.counters.batch_outcome(fingerprint, error=fault)
            record["response"] = {"status_code": status, "request_id": request_id,
                                  "body": _error_body(message, type_, code)}
            return record, None
        prompts, material = _validate(body, chat)
        response, usage, accounts = _build_response(body, chat, prompts, material, fingerprint,
                                                    seq, None, self.options.style)
        self.counters.batch_outcome(fingerprint, usage=usage)
        self.counters.offer(request_id, response, accounts)
        record["response"] = {"status_code": 200, "request_id": request_id, "body": response}
        return record, usage


def _parse_batch_input(
    data: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of a batch input file, and OpenAI-shaped errors for the lines that are bad."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def bad(number: int, code: str, message: str) -> None:
        errors.append({"code": code, "message": message, "line": number, "param": None})

    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            bad(number, "invalid_json_line", "This line is not valid JSON.")
            continue
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            bad(number, "invalid_request", "Each line needs custom_id, method, url and body.")
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or custom_id in seen:
            bad(number, "duplicate_custom_id", "custom_id must be a unique non-empty string.")
            continue
        if line.get("method") != "POST" or line.get("url") != endpoint:
            bad(number, "mismatched_endpoint", f"method must be POST and url {endpoint}.")
            continue
        try:
            _validate(line["body"], endpoint == "/v1/chat/completions")
        except _APIError as err:
            bad(number, "invalid_request", err.message)
            continue
        seen.add(custom_id)
        models.add(line["body"]["model"])
        lines.append(line)
    if len(models) > 1:
        bad(0, "mismatched_model", "All lines of a batch must use the same model.")
    if not lines and not errors:
        bad(0, "empty_file", "The input file has no requests.")
    return lines, errors


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise _APIError(400, "Expected a multipart/form-data body.", "invalid_request_error")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


_ENDPOINT_IDS = re.compile(r"^/v1/(files|batches)/[^/]+")


def _endpoint_name(path: str) -> str:
    """The route of a path, ids replaced (``/v1/files/{id}/content``): stats stay readable."""
    return _ENDPOINT_IDS.sub(lambda m: f"/v1/{m.group(1)}/{{id}}", path)


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that never blocks on close and can drop open keep-alive sockets."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64+ concurrent clients must not hit SYN-backlog drops
    allow_reuse_address = True

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.plan = FaultPlan(
            rate=options.fault_rate, kinds=tuple(options.fault_kinds), seed=options.fault_seed,
            max_faults_per_request=options.max_faults_per_request,
        )
        self.counters = _Counters()
        self.store = _BatchStore(options, self.counters)
        self.closing = threading.Event()
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((options.host, options.port), _Handler)

    def next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def drop_connections(self) -> None:
        """Shut down idle keep-alive sockets so handler threads exit when the server closes."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent unless verbose: a client hanging up is normal in fault tests."""
        if self.options.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request; every path is wrapped so a bad request can never kill the server."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "selfinstruct-test-openai/1.0"
    timeout = 120  # idle keep-alive sockets eventually free their thread

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one write and without Nagle's delay: otherwise every
        # sequential request stalls ~40 ms on the client's delayed ACK.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.options.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """Read the whole body (Content-Length or chunked) so keep-alive stays in sync."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", self._request_id)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self._headers_buffer.append(b"\r\n" + payload)  # one write: headers + body
        self.flush_headers()

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _abort_connection(self, reset: bool) -> None:
        """Close the socket without a response; with ``reset`` the peer sees a TCP RST."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        """Route one request; internal /_ paths bypass auth, latency, faults and counters."""
        seq = self.server.next_seq()
        self._request_id = f"req_{seq:08d}"
        path = urlsplit(self.path).path.rstrip("/") or "/"
        tracked = path.startswith("/v1")
        endpoint = _endpoint_name(path)
        try:
            raw = self._read_body() if method in ("POST", "PUT") else b""
            if path == "/_stats" and method == "GET":
                self._send_json(200, self.server.counters.snapshot())
                return
            if path == "/_reset" and method == "POST":
                self.server.counters.reset()
                self._send_json(200, {"ok": True})
                return
            if not tracked:
                raise _APIError(404, f"Unknown path {path}", "invalid_request_error",
                                "unknown_url")
            self.server.counters.begin(endpoint)
            try:
                self._serve_api(method, path, raw, seq)
            finally:
                self.server.counters.end()
        except _APIError as err:
            if tracked:
                self.server.counters.outcome(endpoint, None, None, status=err.status)
            self._safe_send_error(err.status, _error_body(err.message, err.type, err.code))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never let a handler bug take the server down
            if self.server.options.verbose:
                import traceback

                traceback.print_exc()
            self._safe_send_error(
                500, _error_body(f"test server bug: {exc!r}", "server_error", None)
            )

    def _safe_send_error(self, status: int, body: dict) -> None:
        try:
            self._send_json(status, body)
        except OSError:
            self.close_connection = True

    # -- API -----------------------------------------------------------------------------------

    def _serve_api(self, method: str, path: str, raw: bytes, seq: int) -> None:
        """Auth, latency, validation, then either a fault or the generated answer."""
        opts = self.server.options
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _APIError(401, "You didn't provide an API key (Authorization: Bearer ...).",
                            "invalid_request_error", "invalid_api_key")
        if opts.latency_ms > 0 and opts.style != "messy":
            self.server.closing.wait(opts.latency_ms / 1000.0)
        if path == "/v1/models" and method == "GET":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "selfinstruct-tests"}
                    for m in MODEL_IDS]
            self.server.counters.outcome(path, None, None)  # count first: no stats race
            self._send_json(200, {"object": "list", "data": data})
            return
        if path.startswith("/v1/models/") and method == "GET":
            model_id = path[len("/v1/models/"):]
            if model_id not in MODEL_IDS:
                raise _APIError(404, f"The model '{model_id}' does not exist",
                                "invalid_request_error", "model_not_found")
            self.server.counters.outcome(path, None, None)
            self._send_json(200, {"id": model_id, "object": "model", "created": 0,
                                  "owned_by": "selfinstruct-tests"})
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            self._serve_batch_api(method, path, raw)
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            raise _APIError(404, f"Unknown path {path}", "invalid_request_error", "unknown_url")
        if method != "POST":
            raise _APIError(405, f"Method {method} not allowed on {path}",
                            "invalid_request_error", "method_not_allowed")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            fp = hashlib.sha256(raw).hexdigest()
            self.server.counters.see(fp)
            raise _APIError(400, f"We could not parse the JSON body of your request: {exc}",
                            "invalid_request_error", "invalid_json") from exc
        fingerprint = fingerprint_of(body)
        seen = self.server.counters.see(fingerprint)
        self._request_id = f"req_{fingerprint[:16]}{seq:08x}"
        if opts.style == "messy":
            from tests.servers.styles import messy_latency_ms

            self.server.closing.wait(messy_latency_ms(fingerprint, opts.latency_ms) / 1000.0)
        chat = path == "/v1/chat/completions"
        prompts, hash_material = _validate(body, chat)
        fault = self.server.plan.decide(fingerprint, seen)
        if fault in _FAULT_ERRORS:
            status, message, type_, code = _FAULT_ERRORS[fault]
            headers = (
                {"Retry-After": _fmt_seconds(opts.retry_after)}
                if fault == "429_retry_after" else None
            )
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self._send_json(status, _error_body(message, type_, code), headers=headers)
            return
        if fault == "reset":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self._abort_connection(reset=True)
            return
        if fault == "hang":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self.server.closing.wait(opts.hang_seconds)
            self._abort_connection(reset=False)
            return
        if fault == "non_json":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            page = b"<html><head><title>502</title></head><body>upstream error</body></html>"
            self._send(200, page, content_type="text/html; charset=utf-8")
            return
        response, usage, accounts = _build_response(body, chat, prompts, hash_material,
                                                    fingerprint, seq, fault, opts.style)
        payload = json.dumps(response, ensure_ascii=False).encode("utf-8")
        if fault == "truncated_body":
            self.server.counters.outcome(path, fingerprint, body, fault=fault)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", self._request_id)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self._abort_connection(reset=False)
            return
        self.server.counters.outcome(path, fingerprint, body, fault=fault, usage=usage)
        self.server.counters.offer(self._request_id, response, accounts)
        self._send_json(200, response)


    def _serve_batch_api(self, method: str, path: str, raw: bytes) -> None:
        """Files and batches (see the module docstring); the store does the work."""
        store = self.server.store
        endpoint = _endpoint_name(path)
        parts = path.split("/")  # ["", "v1", "files"|"batches", id?, "content"|"cancel"?]
        route = (method, endpoint)
        if route == ("POST", "/v1/files"):
            fields = _multipart(self.headers.get("Content-Type", ""), raw)
            filename, data = fields.get("file", (None, b""))
            purpose = fields.get("purpose", (None, b""))[1].decode("utf-8")
            if filename is None or purpose != "batch":
                raise _APIError(400, "Upload a 'file' with purpose 'batch'.",
                                "invalid_request_error")
            result: Any = store.add_file(data, filename, purpose)
        elif route == ("GET", "/v1/files/{id}"):
            result = store.file(parts[3])[0]
        elif route == ("GET", "/v1/files/{id}/content"):
            content = store.file(parts[3])[1]
            self.server.counters.outcome(endpoint, None, None)
            self._send(200, content, content_type="application/octet-stream")
            return
        elif route == ("POST", "/v1/batches"):
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _APIError(400, f"Invalid JSON body: {exc}", "invalid_request_error",
                                "invalid_json") from exc
            result = store.create(body)
        elif route == ("GET", "/v1/batches"):
            query = parse_qs(urlsplit(self.path).query)
            limit = int(query.get("limit", ["20"])[0])
            result = store.list(max(1, min(limit, 100)), query.get("after", [None])[0])
        elif route == ("GET", "/v1/batches/{id}"):
            result = store.retrieve(parts[3])
        elif route == ("POST", "/v1/batches/{id}/cancel"):
            result = store.cancel(parts[3])
        else:
            raise _APIError(404, f"Unknown path {method} {path}", "invalid_request_error",
                            "unknown_url")
        self.server.counters.outcome(endpoint, None, None)
        self._send_json(200, result)


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _message_text(content: Any) -> str:
    """Text of a chat message whose content is a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def _validate(body: Any, chat: bool) -> tuple[list[str], list[Any]]:
    """Check an OpenAI request body; return the prompt texts and their seeding material."""
    if not isinstance(body, dict):
        raise _APIError(400, "The request body must be a JSON object.", "invalid_request_error")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _APIError(400, "you must provide a model parameter", "invalid_request_error",
                        "missing_model")
    if body.get("stream"):
        raise _APIError(400, "stream=true is not supported by the test server.",
                        "invalid_request_error", "unsupported_parameter")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise _APIError(400, "n must be an integer between 1 and 128.", "invalid_request_error")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise _APIError(400, f"{key} must be a positive integer.", "invalid_request_error")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise _APIError(400, "stop must be a string or a list of strings.",
                        "invalid_request_error")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and "role" in m for m in messages
        ):
            raise _APIError(400, "messages must be a non-empty list of {role, content}.",
                            "invalid_request_error")
        users = [_message_text(m.get("content")) for m in messages if m.get("role") == "user"]
        text = users[-1] if users else _message_text(messages[-1].get("content"))
        return [text], [messages]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt], [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt), list(prompt)
    raise _APIError(400, "prompt must be a string or a list of strings.",
                    "invalid_request_error")


def _build_response(
    body: dict,
    chat: bool,
    prompts: list[str],
    hash_material: list[Any],
    fingerprint: str,
    seq: int,
    fault: str | None,
    style: str = "clean",
) -> tuple[dict, tuple[int, int], list[dict[str, Any]]]:
    """The response body, its token usage, and per choice what it offered (RunningServer.offered).

    The offers say which instruction items survived stop and max_tokens whole
    (tests/servers/styles.py); the recorded style does not know its items (``None``).
    """
    n = body.get("n") or 1
    stop_param = body.get("stop")
    stop = [stop_param] if isinstance(stop_param, str) else stop_param
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    texts: list[str] = []
    accounts: list[dict[str, Any]] = []
    for p_index, (prompt, material) in enumerate(zip(prompts, hash_material, strict=True)):
        for j in range(n):
            styled = None
            if style == "clean":
                full = generate_answer(
                    prompt, chat=chat, model=body["model"], temperature=body.get("temperature"),
                    top_p=body.get("top_p"), seed=body.get("seed"), choice_index=j,
                    hash_material=material,
                )
            else:
                styled = _styled_answer(style, prompt, chat, body, j, material)
                full = styled.text or ""
            text, reason = apply_stop_and_max_tokens(full, stop, max_tokens)
            if styled is not None and reason == "stop" and styled.finish_reason:
                reason = styled.finish_reason
            if fault == "length":
                keep = max(1, count_tokens(text) // 2)
                text, reason = _truncate_tokens(text, keep), "length"
            elif fault == "garbage":
                text, reason = _junk_text(_rng_for([fingerprint, p_index, j])), "stop"
            texts.append(text)
            completion_tokens += count_tokens(text)
            index = p_index * n + j
            accounts.append(_account(prompt, chat, index, reason, text, styled, fault, style))
            content = None if styled is not None and styled.text is None else text
            if chat:
                choices.append({
                    "index": index,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": reason,
                    "logprobs": None,
                })
            else:
                choices.append(
                    {"index": index, "text": text, "finish_reason": reason, "logprobs": None}
                )
    if fault == "empty_choices":
        choices, accounts = [], []
    prompt_tokens = sum(count_tokens(p) for p in prompts)
    answer_hash = hashlib.sha256("\x1e".join(texts).encode("utf-8")).hexdigest()
    response = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{answer_hash[:20]}{seq:08x}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_selfinstruct_test",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return response, (prompt_tokens, completion_tokens), accounts


def _styled_answer(style: str, prompt: str, chat: bool, body: dict, choice: int,
                   material: Any) -> Any:
    """The messy or recorded answer (tests/servers/styles.py, imported only when used)."""
    from tests.servers.styles import request_material, styled_answer

    return styled_answer(style, prompt, chat, request_material(
        prompt, chat=chat, model=body["model"], temperature=body.get("temperature"),
        top_p=body.get("top_p"), seed=body.get("seed"), choice_index=choice,
        hash_material=material))


def _account(prompt: str, chat: bool, index: int, reason: str, text: str, styled: Any,
             fault: str | None, style: str) -> dict[str, Any]:
    """What one choice offered: the accounting hook's entry (see RunningServer.offered)."""
    if styled is None:
        from tests.servers.styles import clean_offered

        kind, lang = detect_prompt(prompt)
        offered, unreadable, shapes = clean_offered(kind, text, chat, reason), False, []
    else:
        kind, lang, shapes = styled.kind, styled.lang, styled.shapes
        offered = styled.offered_within(len(text))
        unreadable = styled.unreadable
    if fault == "garbage":
        offered, unreadable = ([] if offered is not None else None), True
    return {"choice": index, "api": "chat" if chat else "completions", "style": style,
            "kind": kind, "lang": lang, "offered": offered, "unreadable": unreadable,
            "finish_reason": reason, "shapes": shapes, "fault": fault}


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


class RunningServer:
    """A started server: where it listens, its counters, and how to stop it."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host: str = httpd.server_address[0]
        self.port: int = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.options = httpd.options
        self._closed = False

    @property
    def fault_plan(self) -> FaultPlan:
        return self._httpd.plan

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of all counters (same JSON as ``GET /_stats``)."""
        return self._httpd.counters.snapshot()

    def requests(self) -> list[dict[str, Any]]:
        """The last 10,000 generation requests: path, fingerprint, parsed body, outcome."""
        return self._httpd.counters.requests()

    def offered(self) -> list[dict[str, Any]]:
        """What every answered chat/completions choice offered, oldest first (last 200,000).

        One dict per choice: ``id`` (the ``x-request-id`` header, or the batch line's request
        id: what selfinstruct records as a row's ``request_id``), ``response_id`` (the body's
        ``id``), ``choice``, ``api``, ``style``, ``kind``, ``lang``, ``offered`` (clean texts of
        the instruction items of a bootstrap or Alpaca answer that survived stop/max_tokens
        whole, ``[]`` for other kinds, ``None`` in the recorded style, which does not know
        them), ``unreadable`` (True when the answer has deliberately nothing readable: junk,
        ``content: null``, ``content_filter``), ``finish_reason``, ``shapes`` (the messy
        deviations applied) and ``fault``. Faulted attempts that sent no whole answer are
        absent.
        """
        return self._httpd.counters.offered()

    def reset(self) -> None:
        """Clear all counters, fingerprint history (so faults can recur) and the request log."""
        self._httpd.counters.reset()

    def close(self) -> None:
        """Stop serving, wake hanging/latent handlers, drop keep-alive sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._httpd.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunningServer({self.base_url!r})"


def start_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    fault_rate: float = 0.0,
    fault_kinds: Iterable[str] | str | None = None,
    fault_seed: int = 0,
    max_faults_per_request: int = 2,
    hang_seconds: float = 30.0,
    retry_after: float = 1.0,
    batch_polls: int = 2,
    batch_seconds: float | None = None,
    batch_error_rate: float = 0.0,
    batch_error_kinds: Iterable[str] | str = ("500",),
    verbose: bool = False,
    style: str = "clean",
) -> RunningServer:
    """Start the server on a loopback port (0 = pick a free one) in a daemon thread.

    ``fault_kinds`` and ``batch_error_kinds`` may be lists or comma-separated strings;
    ``fault_kinds`` defaults to :data:`DEFAULT_FAULT_KINDS` (429 and 5xx: the faults every
    client must retry).
    """
    options = ServerOptions(
        host=host, port=port, latency_ms=latency_ms, fault_rate=fault_rate,
        fault_kinds=_kinds(fault_kinds if fault_kinds is not None else DEFAULT_FAULT_KINDS),
        fault_seed=fault_seed, max_faults_per_request=max_faults_per_request,
        hang_seconds=hang_seconds, retry_after=retry_after, batch_polls=batch_polls,
        batch_seconds=batch_seconds, batch_error_rate=batch_error_rate,
        batch_error_kinds=_kinds(batch_error_kinds), verbose=verbose, style=style,
    )
    httpd = _HTTPServer(options)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
        name=f"openai-test-server-{httpd.server_address[1]}", daemon=True,
    )
    thread.start()
    return RunningServer(httpd, thread)


def _kinds(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(k.strip() for k in value.split(",") if k.strip())
    return tuple(value)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.openai_server",
        description="Deterministic OpenAI-compatible test server (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="fixed delay per /v1 request")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="share of first attempts that fail (0..1)")
    parser.add_argument("--fault-kinds", default=",".join(DEFAULT_FAULT_KINDS),
                        help=f"comma-separated subset of {','.join(FAULT_KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=0,
                        help="seed of the deterministic fault choice")
    parser.add_argument("--max-faults-per-request", type=int, default=2,
                        help="sends of one body that may be faulted")
    parser.add_argument("--hang-seconds", type=float, default=30.0,
                        help="how long a hang fault waits before closing")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="Retry-After seconds of the 429_retry_after fault")
    parser.add_argument("--batch-polls", type=int, default=2,
                        help="retrieves after which a batch completes")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="seconds after which a batch completes (first of the two wins)")
    parser.add_argument("--batch-error-rate", type=float, default=0.0,
                        help="share of batch lines that fail (0..1)")
    parser.add_argument("--batch-error-kinds", default="500",
                        help=f"comma-separated subset of {','.join(BATCH_ERROR_KINDS)}")
    parser.add_argument("--style", choices=STYLES, default="clean",
                        help="answer style: the prompts' own format, what real models write, "
                             "or replayed real answers (docs/test-server.md)")
    parser.add_argument("--verbose", action="store_true",
                        help="log every request and handler error to stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print exactly one ``READY <base_url>`` line when listening."""
    args = _parse_args(argv)
    try:
        server = start_server(
            host=args.host, port=args.port, latency_ms=args.latency_ms,
            fault_rate=args.fault_rate, fault_kinds=args.fault_kinds, fault_seed=args.fault_seed,
            max_faults_per_request=args.max_faults_per_request, hang_seconds=args.hang_seconds,
            retry_after=args.retry_after, batch_polls=args.batch_polls,
            batch_seconds=args.batch_seconds, batch_error_rate=args.batch_error_rate,
            batch_error_kinds=args.batch_error_kinds, verbose=args.verbose, style=args.style,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"READY {server.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
