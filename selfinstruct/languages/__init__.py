"""The data languages: one profile module each, behind this registry.

Adding a language is a module beside en.py and ja.py that defines a `LanguageProfile`, one
line in `_BUILT_IN`, and a prompts/<folder>/ with the templates and labels.json. Nothing else
tests a language code: filters, the novelty index, the engine and the report ask the profile.
"""

from __future__ import annotations

from collections.abc import Iterable

from selfinstruct.languages import en, ja
from selfinstruct.languages.base import LanguageProfile

__all__ = ["DEFAULT", "LanguageProfile", "codes", "detect", "get", "register"]

_BUILT_IN = (en.PROFILE, ja.PROFILE)
_PROFILES: dict[str, LanguageProfile] = {profile.code: profile for profile in _BUILT_IN}
DEFAULT = en.PROFILE.code  # the language of seeds no profile recognises


def register(profile: LanguageProfile) -> None:
    """Add a language (a plugin's, or a test's); refuses to replace a known code."""
    if profile.code in _PROFILES:
        raise ValueError(f"language '{profile.code}' is already registered")
    _PROFILES[profile.code] = profile


def codes() -> tuple[str, ...]:
    """The known language codes, built-in ones first."""
    return tuple(_PROFILES)


def get(code: str) -> LanguageProfile:
    """The profile of `code`; ValueError naming the known codes for any other value."""
    profile = _PROFILES.get(code)
    if profile is None:
        raise ValueError(f"unknown language {code!r}: the language must be one of "
                         f"{', '.join(_PROFILES)}")
    return profile


def detect(texts: Iterable[str]) -> LanguageProfile:
    """The language most texts are mainly in (used to default --language from the seeds):
    the first profile that recognises more than half of them, else the default."""
    texts = list(texts)
    for profile in _PROFILES.values():
        recognises = profile.recognises
        if recognises is not None and texts and sum(map(recognises, texts)) * 2 > len(texts):
            return profile
    return _PROFILES[DEFAULT]
