"""Pipeline-like requests for the answer-style tests, and sending them with the real client.

Why shared: tests/test_server_styles.py (what the styles write) and
tests/test_server_styles_http.py (what the server serves and accounts) must build the very
same requests the pipeline sends — real templates, real seed files (record_real.py) — and
search them the same way.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import openai

from selfinstruct.prompts import PromptSet
from selfinstruct.recipes.alpaca import Alpaca
from selfinstruct.seeds import SeedTask, load_seeds
from tests.servers.answers import request_material
from tests.servers.record_real import SEED_FILES, pipeline_request
from tests.servers.running import RunningServer
from tests.servers.styled import StyledAnswer
from tests.servers.styles import messy_answer

LANGS = ("en", "ja")
APIS = ("chat", "completions")


@functools.cache
def _language(lang: str) -> tuple[PromptSet, tuple[SeedTask, ...]]:
    return PromptSet(lang, extra_templates=Alpaca.templates), load_seeds(SEED_FILES[lang]).tasks


def pipeline_like_request(kind: str, lang: str, api: str, index: int) -> tuple[str, dict[str, Any]]:
    """The ``index``-th pipeline-like request of a kind: real template, real seed samples."""
    rng = random.Random(f"{kind}:{lang}:{api}:{index}")
    return pipeline_request(kind, *_language(lang), rng, api)


def messy_for(prompt: str, api: str, params: dict[str, Any]) -> StyledAnswer:
    """The messy answer the server gives to this request (chat seeds from the messages)."""
    chat = api == "chat"
    return messy_answer(prompt, chat, request_material(
        prompt, chat=chat, model="test-model", temperature=params["temperature"],
        top_p=params["top_p"], seed=params["seed"], choice_index=0,
        hash_material=[{"role": "user", "content": prompt}] if chat else prompt))


def find_seed(kind: str, lang: str, api: str, shape: str) -> tuple[str, dict[str, Any]]:
    """A pipeline-like request whose messy answer has ``shape`` (searched, deterministic)."""
    prompt, params = pipeline_like_request(kind, lang, api, 0)
    for seed in range(5000):
        if shape in messy_for(prompt, api, {**params, "seed": seed}).shapes:
            return prompt, {**params, "seed": seed}
    raise AssertionError(f"no {shape} answer in 5000 seeds")


def sdk_client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def send(client: openai.OpenAI, api: str, prompt: str, params: dict[str, Any]) -> tuple[str, Any]:
    """One request through the real SDK; returns the x-request-id and the parsed response."""
    if api == "chat":
        raw = client.chat.completions.with_raw_response.create(
            model="test-model", messages=[{"role": "user", "content": prompt}], **params)
    else:
        raw = client.completions.with_raw_response.create(model="test-model", prompt=prompt,
                                                          **params)
    return raw.headers["x-request-id"], raw.parse()
