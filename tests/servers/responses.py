"""Request validation and the response body: choices, usage, token log-probs when asked
(tests/servers/logprobs.py) and what each choice offered.

Why a module of its own: the direct endpoints and the batch store build responses with the
same code, so batch and direct answers cannot differ.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from tests.servers.answers import generate_answer, junk_text, request_material
from tests.servers.faults import APIError
from tests.servers.hashing import rng_for
from tests.servers.logprobs import (
    REFUSAL_MESSAGE,
    choice_logprobs,
    refuses_logprobs,
    wants_logprobs,
)
from tests.servers.prompt_kinds import detect_prompt
from tests.servers.styled import StyledAnswer
from tests.servers.styles import clean_offered, styled_answer
from tests.servers.tokens import apply_stop_and_max_tokens, count_tokens, truncate_tokens


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


def validate_request(body: Any, chat: bool) -> tuple[list[str], list[Any]]:
    """Check an OpenAI request body; return the prompt texts and their seeding material."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", "invalid_request_error")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise APIError(400, "you must provide a model parameter", "invalid_request_error",
                        "missing_model")
    if body.get("stream"):
        raise APIError(400, "stream=true is not supported by the test server.",
                        "invalid_request_error", "unsupported_parameter")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise APIError(400, "n must be an integer between 1 and 128.", "invalid_request_error")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise APIError(400, f"{key} must be a positive integer.", "invalid_request_error")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise APIError(400, "stop must be a string or a list of strings.",
                        "invalid_request_error")
    if refuses_logprobs(body, chat):
        raise APIError(400, REFUSAL_MESSAGE, "invalid_request_error", "unsupported_parameter")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and "role" in m for m in messages
        ):
            raise APIError(400, "messages must be a non-empty list of {role, content}.",
                            "invalid_request_error")
        users = [_message_text(m.get("content")) for m in messages if m.get("role") == "user"]
        text = users[-1] if users else _message_text(messages[-1].get("content"))
        return [text], [messages]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt], [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt), list(prompt)
    raise APIError(400, "prompt must be a string or a list of strings.",
                    "invalid_request_error")


def build_response(
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
    logprobs = wants_logprobs(body, chat)
    completion_tokens = 0
    texts: list[str] = []
    accounts: list[dict[str, Any]] = []
    for p_index, (prompt, material) in enumerate(zip(prompts, hash_material, strict=True)):
        for j in range(n):
            styled: StyledAnswer | None = None
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
                text, reason = truncate_tokens(text, keep), "length"
            elif fault == "garbage":
                text, reason = junk_text(rng_for([fingerprint, p_index, j])), "stop"
            texts.append(text)
            completion_tokens += count_tokens(text)
            index = p_index * n + j
            accounts.append(_account(prompt, chat, index, reason, text, styled, fault, style))
            content = None if styled is not None and styled.text is None else text
            token_logprobs = None
            if logprobs and content is not None:
                token_logprobs = choice_logprobs(
                    text, accounts[-1]["lang"], chat, [material, j],
                    whole_bad=fault == "garbage" or (styled is not None and styled.unreadable))
            if chat:
                choices.append({
                    "index": index,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": reason,
                    "logprobs": token_logprobs,
                })
            else:
                choices.append({"index": index, "text": text, "finish_reason": reason,
                                "logprobs": token_logprobs})
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
                   material: Any) -> StyledAnswer:
    """The messy or recorded answer (tests/servers/styles.py)."""
    return styled_answer(style, prompt, chat, request_material(
        prompt, chat=chat, model=body["model"], temperature=body.get("temperature"),
        top_p=body.get("top_p"), seed=body.get("seed"), choice_index=choice,
        hash_material=material))


def _account(prompt: str, chat: bool, index: int, reason: str, text: str,
             styled: StyledAnswer | None, fault: str | None, style: str) -> dict[str, Any]:
    """What one choice offered: the accounting hook's entry (see RunningServer.offered)."""
    offered: list[str] | None
    if styled is None:
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
