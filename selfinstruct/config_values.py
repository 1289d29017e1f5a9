"""What a well-formed value of the structured settings is: URLs, prices, endpoint and verifier
tables. Kept apart from `config` (which says which setting has which rule) so each check is
written once and the tables of several settings share them.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

VERIFIER_KEYS = {"model", "base_url", "api_key_env", "temperature"}
ENDPOINT_KEYS = {"base_url", "concurrency", "api_key_env"}


def valid_url(url: str) -> bool:
    """An http(s) URL that httpx can connect to; checked here so a typo such as port 99999
    fails before anything is written, not as a traceback at the first request."""
    if any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def valid_price(price: Any) -> bool:
    return (isinstance(price, dict) and set(price) <= {"input", "output", "batch_discount"}
            and {"input", "output"} <= set(price)
            and all(isinstance(v, int | float) and not isinstance(v, bool)
                    and math.isfinite(v) and v >= 0 for v in price.values()))


def _optional_url(value: Any) -> bool:
    return value is None or (isinstance(value, str) and valid_url(value))


def _key_variable(value: Any) -> bool:
    """The NAME of an environment variable holding a key (never the key itself)."""
    return value is None or (isinstance(value, str) and value.isidentifier())


def valid_endpoint(entry: Any) -> bool:
    """One [[endpoints]] table: a URL, optionally its own concurrency and key variable."""
    if not isinstance(entry, dict) or not set(entry) <= ENDPOINT_KEYS:
        return False
    concurrency = entry.get("concurrency")
    return (entry.get("base_url") is not None and _optional_url(entry["base_url"])
            and _key_variable(entry.get("api_key_env"))
            and (concurrency is None or (positive_int(concurrency) and concurrency <= 1024)))


def valid_verifier(entry: Any) -> bool:
    """One [[verify]] table: a model name, optionally its own endpoint, key variable and
    sampling temperature."""
    if not isinstance(entry, dict) or not set(entry) <= VERIFIER_KEYS:
        return False
    model, temperature = entry.get("model"), entry.get("temperature")
    return (isinstance(model, str) and bool(model.strip())
            and _optional_url(entry.get("base_url"))
            and _key_variable(entry.get("api_key_env"))
            and (temperature is None or (isinstance(temperature, int | float)
                                         and not isinstance(temperature, bool)
                                         and 0 <= temperature <= 2)))
