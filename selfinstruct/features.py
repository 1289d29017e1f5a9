"""Features: per-task stages any recipe can be followed by (turns, verification, preference).

A feature is a module with `TEMPLATES` (its prompt templates with sample render values, like
`Recipe.templates`), `enabled(config)` and `stages(engine) -> list[Stage]`. Like recipes they
are named here by import path, so that listing them does not import the engine. The order is
the order their stages run in, after the recipe's own stages and the quality checks: answers
are verified before money is spent continuing their conversations.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine
    from selfinstruct.engine.stages import Stage

FEATURES: dict[str, str] = {
    "personas": "selfinstruct.personas",  # a template only: recipes condition their requests
    "verify": "selfinstruct.verify",
    "preference": "selfinstruct.preference",
    "turns": "selfinstruct.turns",
}


def _modules() -> list[ModuleType]:
    return [importlib.import_module(path) for path in FEATURES.values()]


def enabled(config: GenerateConfig) -> list[ModuleType]:
    """The features this run uses, in stage order."""
    return [module for module in _modules() if module.enabled(config)]


def templates(config: GenerateConfig) -> dict[str, dict[str, Any]]:
    """The prompt templates of the enabled features (loaded and checked before any request)."""
    found: dict[str, dict[str, Any]] = {}
    for module in enabled(config):
        found.update(module.TEMPLATES)
    return found


def stages(engine: Engine) -> list[Stage]:
    """The enabled features' stages for this run, in order."""
    return [stage for module in enabled(engine.config) for stage in module.stages(engine)]
