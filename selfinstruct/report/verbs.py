"""Leading verbs and their objects: the Self-Instruct paper's verb-noun view of diversity.

Each language profile names its analyser (English: selfinstruct.languages.en_verbs, Japanese:
selfinstruct.languages.ja_verbs); both load their lexicons on first use only.
"""

from __future__ import annotations

from collections.abc import Iterable

from selfinstruct import languages


def leading_verbs(texts: Iterable[str], language: str) -> list[tuple[str | None, str | None]]:
    """(verb, object) per instruction, in dictionary form; None where there is none."""
    analyse = languages.get(language).leading_verb
    return [analyse(text) for text in texts]
