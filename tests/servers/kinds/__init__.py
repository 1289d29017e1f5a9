"""Prompt kinds added by later recipes and checks, one module each, found by name.

Why a package of plugins: each new recipe or verifier teaches the test server its prompt
kinds (evol-instruct mutations, magpie pre-query prefixes, follow-up turns, pairwise
judgements, ...). A module here named ``kind_<something>.py`` defines

* ``HEADERS``: ``(kind, lang, first line of the template)`` triples, as in
  ``prompt_kinds._HEADERS``;
* ``clean(kind, text, lang, rng, chat) -> str``: the clean answer for one of its kinds;
* optionally ``messy(kind, text, lang, rng, chat) -> StyledAnswer``: the messy style's answer
  (realistically bad answers); without it the messy style gives the clean answer;
* optionally ``MODEL_AWARE = True``: ``clean``/``messy`` then also get ``model=`` (the
  request's model name), so one model can answer differently (a verifier that disagrees);
* optionally ``rewriter(prompt, lang) -> Callable[[str], str] | None``: how the good
  instructions the server writes for a built-in generation prompt (bootstrap, alpaca) are
  rewritten for this prompt (persona-conditioned prompts show the persona), None to leave them.

and is picked up without editing the shared modules, so recipes can be added side by side.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any


@cache
def plugins() -> tuple[ModuleType, ...]:
    """Every ``kind_*`` module of this package, in name order (a stable detection order)."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__)
                   if info.name.startswith("kind_"))
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in names)


@cache
def headers() -> tuple[tuple[str, str, str], ...]:
    return tuple(triple for module in plugins() for triple in module.HEADERS)


def _owner(kind: str) -> ModuleType | None:
    for module in plugins():
        if any(k == kind for k, _, _ in module.HEADERS):
            return module
    return None


def _model_keyword(module: ModuleType, model: str) -> dict[str, str]:
    return {"model": model} if getattr(module, "MODEL_AWARE", False) else {}


def clean_answerer(kind: str, model: str = "test-model"
                   ) -> Callable[[str, str, random.Random, bool], str] | None:
    """The clean answer function of a plugin kind, bound to that kind; None if not a plugin's."""
    module = _owner(kind)
    if module is None:
        return None
    clean: Callable[..., str] = module.clean
    extra = _model_keyword(module, model)
    return lambda text, lang, rng, chat: clean(kind, text, lang, rng, chat, **extra)


def messy_answerer(kind: str, model: str = "test-model"
                   ) -> Callable[[str, str, random.Random, bool], Any] | None:
    """The messy answer function of a plugin kind, if its module has one."""
    module = _owner(kind)
    if module is None or not hasattr(module, "messy"):
        return None
    messy: Callable[..., Any] = module.messy
    extra = _model_keyword(module, model)
    return lambda text, lang, rng, chat: messy(kind, text, lang, rng, chat, **extra)


def rewriter(prompt: str, lang: str) -> Callable[[str], str] | None:
    """A plugin's rewrite of the good instructions a generation prompt asks for, or None."""
    for module in plugins():
        rewrite = getattr(module, "rewriter", None)
        found = rewrite(prompt, lang) if rewrite is not None else None
        if found is not None:
            return found
    return None
