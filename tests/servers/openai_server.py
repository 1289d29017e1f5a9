"""A deterministic OpenAI-compatible HTTP server for tests and benchmarks (the public entry).

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
deliberately bad (see ``BAD_ITEM_RATES``: copies and near-copies of in-context instructions,
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

Layout (each module holds one concern; this module only re-exports their public names and is
the ``python -m`` entry, so the classes are defined once, in their own modules, however the
server is started): tokens.py (token rule, stop/max_tokens), hashing.py (fingerprints,
hash-seeded RNGs), prompt_kinds.py (prompt detection), instructions.py, instances.py,
answers.py and judge_label.py (the clean answers), styles.py and messy_*.py / recorded.py
(the other styles), faults.py (fault plan and error bodies), counters.py (stats),
options.py, responses.py (validation, response bodies), batch_store.py (Batch API),
http_handler.py (HTTP), running.py (``RunningServer``, ``start_server``, CLI ``main``).
"""

from __future__ import annotations

import sys

from tests.servers.answers import generate_answer
from tests.servers.faults import BATCH_ERROR_KINDS, DEFAULT_FAULT_KINDS, FAULT_KINDS, FaultPlan
from tests.servers.hashing import fingerprint_of
from tests.servers.instructions import generate_instruction
from tests.servers.judge_label import (
    JUDGE_LOW_RATE,
    LABEL_DISAGREE_RATE,
    judge_scores,
    label_for_input,
)
from tests.servers.options import MODEL_IDS, STYLES, ServerOptions
from tests.servers.prompt_kinds import BOOTSTRAP_HEADERS, NO_INPUT, detect_prompt
from tests.servers.running import RunningServer, main, start_server
from tests.servers.tokens import apply_stop_and_max_tokens, count_tokens

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

if __name__ == "__main__":
    sys.exit(main())
