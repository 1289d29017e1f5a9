"""Recipes by name: `--recipe` choices come from `RECIPES` (one line per recipe).

A line names the recipe's class by import path, not the class itself, so that listing the
choices (`selfinstruct --help`, config validation) does not import the engine and the
`openai` client behind it; `recipe_class` imports the one a run uses. A registered class
object is accepted too (a recipe defined in a test or a plugin).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selfinstruct.recipes.base import Recipe

RECIPES: dict[str, str | type[Recipe]] = {
    "self-instruct": "selfinstruct.recipes.self_instruct:SelfInstruct",
    "alpaca": "selfinstruct.recipes.alpaca:Alpaca",
    "evol-instruct": "selfinstruct.recipes.evol_instruct:EvolInstruct",
    "magpie": "selfinstruct.recipes.magpie:Magpie",
}


def recipe_class(name: str) -> type[Recipe]:
    """The recipe registered under `name` (config validation has already checked it)."""
    try:
        entry = RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None
    if not isinstance(entry, str):
        return entry
    module, _, attribute = entry.partition(":")
    recipe: type[Recipe] = getattr(importlib.import_module(module), attribute)
    return recipe
