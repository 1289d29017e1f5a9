"""The shape of a conversation row's turns, shared by the writer, the checks and the exports.

Why a module of its own (and without imports): the dataset schema, the exports and the turns
feature must agree on what a row's first user turn is, and the first two load on every
`selfinstruct validate`/`export`, which should not pay for the filters and ROUGE.
"""

from __future__ import annotations

Message = dict[str, str]  # {"role": "user" | "assistant", "content": ...}


def first_user_message(instruction: str, input_: str) -> str:
    """The first user turn: the instruction, then the input after a blank line (the Alpaca
    prompt's order, as the chat exports have always written it)."""
    return f"{instruction}\n\n{input_}" if input_ else instruction
