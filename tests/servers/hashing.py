"""Canonical JSON, request fingerprints and hash-seeded RNGs.

Why: equal request bodies must get equal fingerprints (fault plan, stats) and answers must
never depend on global random state.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any


def canonical_json(obj: Any) -> str:
    """Key-sorted, compact JSON: equal values give equal strings, hence equal hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(body: Any) -> str:
    """sha256 of the canonical JSON of a request body: equal bodies, equal fingerprints."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def rng_for(material: Any) -> random.Random:
    """A private RNG seeded from a hash, so answers never depend on global random state."""
    digest = hashlib.sha256(canonical_json(material).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))
