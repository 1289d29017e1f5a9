"""Remove secrets from text that may be logged or stored.

Endpoints echo credentials in error bodies ("Incorrect API key provided: sk-proj-****1234"),
and retry logs have leaked Authorization headers in peer projects. Every error message that
reaches a journal, a manifest, rejected.jsonl or the terminal passes through `redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}"),  # OpenAI-style keys, masked or not
    re.compile(r"\bhf_[A-Za-z0-9]{6,}"),  # Hugging Face tokens
    re.compile(r"(?i)\bauthorization:?\s*(?:bearer\s+)?\S+"),
    re.compile(r"(?i)\bbearer\s+\S+"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace known secrets and anything shaped like a key or bearer token with [REDACTED]."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    for pattern in _PATTERNS:
        text = pattern.sub("[REDACTED]", text)
    return text
