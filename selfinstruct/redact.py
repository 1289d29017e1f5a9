"""The one rule for secrets in text that may be printed, logged or stored.

Endpoints echo credentials in error bodies ("Incorrect API key provided: sk-proj-****1234"),
retry logs have leaked Authorization headers in peer projects, and a base URL may carry a
password (``http://user:pass@host/v1``) or a key in its query (``?api_key=…``). Every error
message that reaches a journal, a manifest, rejected.jsonl or the terminal passes through
`redact`; a URL that is stored goes through `strip_url_credentials`; code that must refuse to
store a secret (manifests, cards) asks `find_secret`. All three use the same patterns below,
so there is one definition of "looks like a secret" in the project.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Kind of credential -> its shape. The lower bounds are short on purpose: a masked key
# ("sk-proj-****1234") must go too, and a false positive in an error line costs nothing.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "OpenAI-style key": re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{6,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "authorization header": re.compile(r"(?i)\bauthorization:?\s*(?:bearer\s+|basic\s+)?\S+"),
    "bearer credential": re.compile(r"(?i)\bbearer\s+\S+"),
    # scheme://userinfo@host: the greedy run stops at the LAST '@' before the path, so a
    # password with a raw '@' in it ("p@ss") is removed whole, not cut at its first '@'.
    "password in a URL": re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@"),
    "key in a URL query": re.compile(
        r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|auth|sig|signature|password)=)"
        r"[^&\s#]+"),
}
# How each kind is replaced: URL parts keep the URL readable (scheme, host, parameter name).
_REPLACEMENTS = {"password in a URL": r"\1" + REDACTED + "@",
                 "key in a URL query": r"\1" + REDACTED}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace known secrets and anything shaped like a key, token or URL password."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for kind, pattern in SECRET_PATTERNS.items():
        text = pattern.sub(_REPLACEMENTS.get(kind, REDACTED), text)
    return text


def find_secret(text: str) -> str | None:
    """The kind of the first credential-shaped string in `text` (for refusing to store it)."""
    for kind, pattern in SECRET_PATTERNS.items():
        if pattern.search(text):
            return kind
    return None


_USERINFO = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)[^/?#]*@")
_QUERY_SECRET = SECRET_PATTERNS["key in a URL query"]


def strip_url_credentials(url: str) -> str:
    """`url` without ``user:password@`` and with secret query values redacted.

    This is the form a URL is stored in (run.json, manifests, Prefect parameters). A resumed
    run accepts a URL again when its stripped form equals the stored one: that is how the
    credentials come back without ever being written down.
    """
    url = _USERINFO.sub(r"\1", url)
    return _QUERY_SECRET.sub(r"\1" + REDACTED, url)
