"""The row schemas of train.jsonl and rejected.jsonl, and the checks and Features built on them.

One schema description drives row validation, `load()`'s datasets.Features and the card's
`dataset_info`, so the three cannot drift apart. Scalars are "string", "bool", "int64" and
"float64"; a trailing "?" allows null, and also absence (a field added later is missing from
older versions; it loads as null); a dict is a struct; a one-element list is a list, and a
list whose second element is "?" may be null or absent too (`messages`: only multi-turn rows
have it). `FIELD_RULES` adds the checks a type cannot express (a conversation's turn order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from selfinstruct.dataset.layout import REJECTED_FILE, TRAIN_FILE
from selfinstruct.turn_messages import first_user_message

if TYPE_CHECKING:
    import datasets

TRAIN_SCHEMA: dict[str, Any] = {
    "id": "string",
    "task_id": "string",
    "instruction": "string",
    "input": "string",
    "output": "string",
    "is_classification": "bool?",
    "provenance": {
        "model": "string",
        "prompt_hash": "string",
        "instance_prompt_hash": "string?",
        "request_id": "string?",
        "round": "int64",
        "most_similar": [{"instruction": "string", "score": "float64"}],
        "avg_similarity": "float64?",
        # The LLM judge's 1-5 scores, when the run had a judge (selfinstruct.quality).
        "judge_clarity": "int64?",
        "judge_correctness": "int64?",
        # The persona the instruction's generation request was conditioned on (--personas);
        # absent from runs without personas.
        "persona_id": "string?",
        # Evol-Instruct lineage: the parent's id ("seed:<id>", "<dataset>/<vNNNN>:<task id>"
        # or this run's task id), the mutation applied, the generation (parent's + 1).
        "parent_id": "string?",
        "mutation": "string?",
        "generation": "int64?",
        # Token log-prob confidence of the answer (--confidence): null when the endpoint sent
        # no log-probs; absent from runs without --confidence.
        "confidence": "float64?",
        "logprob_mean": "float64?",
        "logprob_min": "float64?",
        "logprob_low_share": "float64?",
        "logprob_tokens": "int64?",
        # Multi-model agreement, one entry per verifier (--verify-model).
        "agreement": [{"verifier": "string", "kind": "string", "model": "string",
                       "agreed": "bool?", "method": "string", "rationale": "string",
                       "answer": "string?", "request_id": "string?"}, "?"],
    },
    # The whole conversation of a multi-turn row (`generate --turns N`): user and assistant
    # turns alternating, starting with the user's (instruction, then the input after a blank
    # line) and the row's output; absent from single-turn rows.
    "messages": [{"role": "string", "content": "string"}, "?"],
}
REJECTED_SCHEMA: dict[str, Any] = {
    "stage": "string",
    "reason": "string",
    "instruction": "string",
    "input": "string?",
    "output": "string?",
    "detail": "string",
    "prompt_hash": "string?",
    "request_id": "string?",
}
# Train rows are loaded with fixed Features, so an unknown field would break loading: refuse it.
# Rejected rows are an audit trail read as plain JSON, so stages may add context fields.
DATA_FILES: dict[str, tuple[dict[str, Any], bool]] = {
    TRAIN_FILE: (TRAIN_SCHEMA, True),
    REJECTED_FILE: (REJECTED_SCHEMA, False),
}


def json_kind(value: Any) -> str:
    """The JSON type name of a parsed value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_SCALARS = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float64": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def optional(spec: Any) -> bool:
    """A field that may be null or absent: "type?" or a list spec ending with "?"."""
    if isinstance(spec, str):
        return spec.endswith("?")
    return isinstance(spec, list) and spec[-1:] == ["?"] and len(spec) == 2


def check(value: Any, spec: Any, field: str, strict: bool) -> Iterator[tuple[str, str]]:
    """Yield (field path, problem) for every way `value` departs from `spec`, then what the
    field's `FIELD_RULES` entry finds once its type is right."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            yield field, f"expected an object, got {json_kind(value)}"
            return
        for name, sub in spec.items():
            path = f"{field}.{name}" if field else name
            if name not in value:
                if not optional(sub):
                    yield path, "missing"
            else:
                yield from check(value[name], sub, path, strict)
        if strict:
            for name in sorted(set(value) - set(spec)):
                yield (f"{field}.{name}" if field else name), "unexpected field"
        if not field:
            for name, rule in FIELD_RULES.items():
                if name in spec and value.get(name) is not None and not any(
                        check(value[name], spec[name], name, strict)):
                    yield from rule(value, name)
    elif isinstance(spec, list):
        if value is None and optional(spec):
            return
        if not isinstance(value, list):
            yield field, f"expected an array, got {json_kind(value)}"
            return
        for index, item in enumerate(value):
            yield from check(item, spec[0], f"{field}[{index}]", strict)
    else:
        kind = spec.rstrip("?")
        if value is None:
            if not spec.endswith("?"):
                yield field, "must not be null"
        elif not _SCALARS[kind](value):
            yield field, f"expected {kind}, got {json_kind(value)}"


def conversation_problems(row: dict[str, Any], name: str) -> Iterator[tuple[str, str]]:
    """A multi-turn row's `messages`: user and assistant turns alternating, starting with the
    user and ending with an answer, none empty; the first two are the row's own instruction
    (+ input) and output, so every export of the row says the same thing. One problem at
    most: the first one explains the rest."""
    messages = row[name]
    if len(messages) < 2:
        yield name, f"a conversation needs a user and an assistant turn, got {len(messages)} " \
                    f"message(s)"
        return
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            yield (f"{name}[{index}].role", f"expected {expected!r} (turns alternate, starting "
                                            f"with the user), got {message['role']!r}")
            return
        if not message["content"].strip():
            yield f"{name}[{index}].content", "empty message"
            return
    if len(messages) % 2:
        yield name, "the conversation ends with a user turn that has no answer"
        return
    if messages[0]["content"] != first_user_message(row["instruction"], row.get("input") or ""):
        yield f"{name}[0].content", "is not the row's instruction (and input)"
    elif messages[1]["content"] != row.get("output"):
        yield f"{name}[1].content", "is not the row's output"


# Checks a field's type cannot express, run on a row whose field has the right type.
FIELD_RULES: dict[str, Callable[[dict[str, Any], str], Iterator[tuple[str, str]]]] = {
    "messages": conversation_problems,
}


def as_loaded(row: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """`row` as `datasets` gives it back with fixed Features: every absent optional field
    (a "?" scalar or list, in nested structs too) present as None. What a test compares
    loaded rows with."""
    loaded = dict(row)
    for name, sub in spec.items():
        if name not in loaded:
            loaded[name] = None
        elif isinstance(sub, dict) and isinstance(loaded[name], dict):
            loaded[name] = as_loaded(loaded[name], sub)
        elif isinstance(sub, list) and isinstance(sub[0], dict) \
                and isinstance(loaded[name], list):
            loaded[name] = [as_loaded(item, sub[0]) for item in loaded[name]]
    return loaded


def _features(spec: Any) -> Any:
    import datasets

    if isinstance(spec, dict):
        return {name: _features(sub) for name, sub in spec.items()}
    if isinstance(spec, list):
        return [_features(spec[0])]
    return datasets.Value(spec.rstrip("?"))


def train_features() -> datasets.Features:
    """Fixed Features for train rows: nulls never change a column's type between versions."""
    import datasets

    return datasets.Features(_features(TRAIN_SCHEMA))
