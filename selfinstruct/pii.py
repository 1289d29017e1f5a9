"""Personal data in instructions, inputs and outputs: find it, drop it or mask it.

E-mail addresses (outside the reserved example domains), phone numbers with at least 10
digits and card-like numbers that pass the Luhn checksum. ``drop`` mode runs `PiiFilter` in
the chains; ``mask`` mode rewrites the text with `mask_pii` before the chains run.

Every pattern is linear in the text's length: each starts only at the beginning of a run of
the characters it consumes (a lookbehind), so a 200K-character string without spaces costs
one pass, not one pass per position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfinstruct.filter_settings import FilterSettings
from selfinstruct.text_filters import Drop

# Reserved for documentation (RFC 2606/6761): addresses there belong to nobody.
_EXAMPLE_DOMAIN = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test"
                             r"|invalid))$", re.IGNORECASE)
_PII_PATTERNS: dict[str, re.Pattern[str]] = {
    # The lookbehind makes a match start only where a run of address characters starts:
    # without it, a long run without "@" was rescanned from each of its positions.
    "email": re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    # Digits next to Japanese text have no \b between them, hence the lookarounds.
    "phone": re.compile(
        r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,3}(?!\d)"
        r"|(?<![\d-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\d-])"  # North American 555-123-4567
        r"|(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])"  # Japanese 03-1234-5678, 090-…
    ),
    "card": re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
}
# Real numbers have 10+ digits with the area code; fewer are dates ("01-02-2023") or codes.
_MIN_PHONE_DIGITS = 10
_PII_MASKS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}
_PII_NAMES = {"email": "an e-mail address", "phone": "a phone number",
              "card": "a payment-card-like number"}


def _luhn_ok(number: str) -> bool:
    """The payment-card checksum: a random 16-digit number passes only 1 time in 10."""
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, re.Match[str]]]:
    """(kind, match) for each email, phone number and card-like number in `text`."""
    found = []
    for kind, pattern in _PII_PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(0)
            if (
                (kind == "email" and _EXAMPLE_DOMAIN.search(value))
                or (kind == "phone" and sum(ch.isdigit() for ch in value) < _MIN_PHONE_DIGITS)
                or (kind == "card" and not _luhn_ok(value))
            ):
                continue
            found.append((kind, match))
    return found


@dataclass(frozen=True)
class PiiFilter:
    """Drop texts with an email address, phone number or payment-card-like number."""

    def check(self, text: str) -> Drop | None:
        found = find_pii(text)
        if not found:
            return None
        kinds = sorted({kind for kind, _ in found})
        # Name the kinds, never repeat the value itself (the rejected rows are kept).
        return Drop("pii", "contains " + " and ".join(_PII_NAMES[kind] for kind in kinds))


def mask_pii(text: str, settings: FilterSettings | None = None) -> str:
    """Replace personal data with ``[EMAIL]``/``[PHONE]``/``[CARD]`` in ``mask`` mode.

    In ``drop`` or ``off`` mode the text is returned unchanged (the chain drops it, or
    nobody looks). Overlapping finds (a card number that also looks like a phone number)
    are masked once, by the earliest and longest.
    """
    if (settings or FilterSettings()).pii != "mask":
        return text
    spans = sorted(((m.start(), -m.end(), kind) for kind, m in find_pii(text)))
    out, position = [], 0
    for start, neg_end, kind in spans:
        if start < position:
            continue
        out += [text[position:start], _PII_MASKS[kind]]
        position = -neg_end
    return "".join(out) + text[position:]


