"""The one validation mechanism: both the run config and the [filters] table go through it,
so a rule added for one (finite numbers, unknown keys) holds for the other too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfinstruct._errors import InputError
from selfinstruct.config import build_config, coerce_setting
from selfinstruct.filters import FilterSettings


def _error(call: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(InputError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_filter_numbers_are_finite_like_config_numbers(value: float) -> None:
    assert _error(FilterSettings.from_mapping, {"consistency_temperature": value},
                  "run.toml: [filters]") == (
        f"run.toml: [filters]: field 'consistency_temperature': must be a finite number "
        f"(got {value!r})")
    assert _error(coerce_setting, "rpm", value, "--rpm") == \
        f"--rpm: must be a finite number (got {value!r})"


def test_types_are_strict_in_both_tables() -> None:
    assert _error(FilterSettings.from_mapping, {"min_words": "3"}, "t") == \
        "t: field 'min_words': must be an integer from 0 to 10000 (got '3')"
    assert _error(coerce_setting, "concurrency", True, "--concurrency") == \
        "--concurrency: must be an integer from 1 to 1024 (got True)"
    assert coerce_setting("timeout", 5, "--timeout") == 5.0  # an integer is a fine float
    assert coerce_setting("seeds", "s.jsonl", "--seeds") == Path("s.jsonl")


def test_unknown_keys_name_the_closest_known_one() -> None:
    assert _error(FilterSettings.from_mapping, {"lenght": True}, "run.toml: [filters]") == \
        "run.toml: [filters]: field 'lenght': unknown filter setting; did you mean 'length'?"


def test_an_unknown_field_of_a_stored_run_is_one_line() -> None:
    flags = {"seeds": "s.jsonl", "dataset": "d", "num_instructions": 3, "concurency": 2}
    assert _error(build_config, flags, None, {}, "run.json") == \
        "run.json: field 'concurency': unknown setting; did you mean 'concurrency'?"


def test_a_stored_no_judge_round_trips() -> None:
    settings = FilterSettings.from_mapping({"judge_model": None}, "t")
    assert settings.judge_model is None
    assert _error(FilterSettings.from_mapping, {"judge_model": " "}, "t") == \
        "t: field 'judge_model': must be a model name (got ' ')"
