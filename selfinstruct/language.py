"""The language of a seed set, as the code --language takes (the registry's detection)."""

from __future__ import annotations

from collections.abc import Iterable

from selfinstruct import languages


def detect_language(texts: Iterable[str]) -> str:
    """The code of the language most `texts` are mainly in (used to default --language)."""
    return languages.detect(texts).code
