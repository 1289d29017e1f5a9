"""The `generate` flags of the recipes beyond Self-Instruct and of the verification features.

Kept apart from `cli.py` because they are many and grouped by what they belong to: each
recipe's own settings, persona and multi-turn generation, and the answer checks (confidence,
verifier models, preference pairs). Each flag sets the `GenerateConfig` field of its name.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# The flags whose value is the config field as it is.
PLAIN_FLAGS = ("generations", "from_version", "chat_template", "personas", "turns",
               "confidence", "preference", "responses")


def add_recipe_options(p: argparse.ArgumentParser) -> None:
    recipes = p.add_argument_group("recipe settings")
    recipes.add_argument("--generations", type=int, metavar="G",
                         help="evol-instruct: evolve each instruction at most G times "
                              "(default 3)")
    recipes.add_argument("--from-version", type=Path, metavar="data/NAME/vNNNN",
                         help="evol-instruct: evolve the instructions of this version instead "
                              "of the seeds")
    recipes.add_argument("--chat-template", type=Path, metavar="FILE",
                         help="magpie: the model's chat template (Jinja, or a JSON file with "
                              "\"chat_template\"); default: the endpoint's /props (llama.cpp)")
    recipes.add_argument("--personas", type=Path, metavar="PATH|NAME",
                         help="condition each generation request on one persona from this "
                              "JSONL file (id, description, language), or a bundled set: en, ja")
    recipes.add_argument("--turns", type=int, metavar="N",
                         help="multi-turn rows: N user turns per conversation (default 1); "
                              "rows gain a messages list")
    checks = p.add_argument_group("answer checks and preference data")
    checks.add_argument("--confidence", action="store_const", const=True,
                        help="score each answer from its token log-probabilities; "
                             "[filters] min_confidence drops low ones")
    checks.add_argument("--verify-model", action="append", metavar="MODEL",
                        help="a verifier that answers each instruction independently (repeat "
                             "for several; [[verify]] tables in --config give each its own "
                             "base_url and api_key_env); [filters] min_agreement drops "
                             "disagreements")
    checks.add_argument("--preference", action="store_const", const=True,
                        help="write preference.jsonl: --responses answers per instruction, "
                             "ranked by the pairwise judge (DPO pairs)")
    checks.add_argument("--responses", type=int, metavar="K",
                        help="answers per instruction for --preference (default 2)")
    checks.add_argument("--response-models", metavar="M1,M2",
                        help="models that write the --preference answers (default: the "
                             "generating model at K temperatures)")


def recipe_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings these flags give (None: not given), for `build_config`."""
    flags = {name: getattr(args, name) for name in PLAIN_FLAGS}
    flags["verify"] = ([{"model": model} for model in args.verify_model]
                       if args.verify_model else None)
    flags["response_models"] = ([m.strip() for m in args.response_models.split(",")]
                                if args.response_models is not None else None)
    return flags
