"""Recipes by name: `--recipe` choices come from `RECIPES` (one line per recipe)."""

from __future__ import annotations

from selfinstruct.recipes.alpaca import Alpaca
from selfinstruct.recipes.base import Recipe
from selfinstruct.recipes.self_instruct import SelfInstruct

RECIPES: dict[str, type[Recipe]] = {
    SelfInstruct.name: SelfInstruct,
    Alpaca.name: Alpaca,
}


def recipe_class(name: str) -> type[Recipe]:
    """The recipe registered under `name` (config validation has already checked it)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None
