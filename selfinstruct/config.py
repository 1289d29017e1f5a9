"""One typed configuration for a generation run, from a TOML file, the environment and flags.

Precedence: command-line flags > ``--config`` TOML file > environment (``OPENAI_BASE_URL``) >
defaults. Everything is validated before any model starts or any file is written, and every
problem is one line naming where the bad value came from (``--num-instructions`` or
``run.toml: field 'num_instructions'``).

The API key is deliberately not part of `GenerateConfig`: the config is written to run
journals and manifests, and a secret must never reach them. The key travels separately from
the environment (or ``--api-key``) straight into the HTTP client.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct import languages
from selfinstruct._errors import InputError
from selfinstruct.config_values import (
    positive_int,
    valid_endpoint,
    valid_price,
    valid_url,
    valid_verifier,
)
from selfinstruct.dataset.naming import DATASET_NAME_RE
from selfinstruct.filters import FilterSettings
from selfinstruct.input_files import require_regular_file
from selfinstruct.prompts import LANGUAGES
from selfinstruct.recipes import RECIPES
from selfinstruct.redact import redact, strip_url_credentials
from selfinstruct.seeds import resolve_seed_path
from selfinstruct.validation import BOOLEAN, Rule, integer, one_of, refuse_unknown

APIS = ("chat", "completions")


@dataclass
class GenerateConfig:
    """Everything that decides what a run generates (and nothing secret)."""

    seeds: Path
    dataset: str
    num_instructions: int
    data_dir: Path = Path("data")
    recipe: str = "self-instruct"
    language: str | None = None  # None: detected from the seed texts
    base_url: str | None = None  # None: the embedded local model
    # More endpoints serving the same model ({"base_url", "concurrency", "api_key_env"}):
    # requests go to the least loaded live one (selfinstruct.endpoints). May change on resume.
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    api: str | None = None  # None: completions for the embedded model, chat otherwise
    concurrency: int | None = None  # None: 1 for the embedded model, 8 otherwise
    # Depth of the pipeline's look-ahead windows: fixed to the first concurrency when a run
    # starts and kept on resume, because request j's prompt depends on the pool after answer
    # j - lookahead. Concurrency may then change freely (it is speed only). Not a flag.
    lookahead: int | None = None
    requests_per_round: int | None = None  # None: equal to concurrency
    seed: int | None = None  # None: drawn at random and recorded, so a resume is identical
    similarity_threshold: float | None = None  # None: the language's default
    seed_examples: int = 6  # Self-Instruct: 6 human + 2 machine instructions per prompt
    machine_examples: int = 2
    alpaca_examples: int = 3
    alpaca_tasks: int = 20
    classify_examples: int = 12
    instance_examples: int = 3
    max_instances: int = 5
    max_rounds: int = 10_000
    stall_rounds: int = 30  # stop when this many rounds in a row accept nothing
    timeout: float | None = None  # None: 120 s, 600 s for the slow embedded model
    max_retries: int = 5
    retry_base_delay: float = 1.0
    prompts_dir: Path | None = None
    license: str = "apache-2.0"
    stage_max_tokens: dict[str, int] = field(default_factory=dict)  # per-stage answer limits
    # Which quality filters run and their thresholds (the [filters] table; see filters.py).
    filters: FilterSettings = field(default_factory=FilterSettings)
    # OpenAI Batch API: cheaper, answered within hours; requests go out in jobs.
    batch_api: bool = False
    batch_size: int = 10_000
    batch_poll_interval: float = 30.0
    rpm: float | None = None  # requests per minute (None: learnt from x-ratelimit headers)
    tpm: float | None = None  # tokens per minute (prompt + max_tokens)
    # Budgets for the whole run (resumed runs included); None means unlimited.
    max_requests: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    # USD per 1M tokens: {"gpt-4o-mini": {"input": 0.15, "output": 0.60}}
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    # Recipe settings: evol-instruct's depth and parents, magpie's chat template.
    generations: int = 3
    from_version: Path | None = None
    chat_template: Path | None = None
    # Persona-conditioned generation (a JSONL file or a bundled set name) and user turns.
    personas: Path | None = None
    turns: int = 1
    # Answer checks and preference data (issue 15): token log-prob confidence, verifier
    # models ({"model", "base_url", "api_key_env", "temperature"}: the key's env var name,
    # never the key), K ranked answers per instruction.
    confidence: bool = False
    verify: list[dict[str, Any]] = field(default_factory=list)
    preference: bool = False
    responses: int = 2
    response_models: list[str] = field(default_factory=list)

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def to_public(self) -> dict[str, Any]:
        """The config as stored in journals and manifests (paths as strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        out["base_url"] = None if self.base_url is None else strip_url_credentials(self.base_url)
        out["filters"] = self.filters.to_mapping()
        out["endpoints"] = [{**e, "base_url": strip_url_credentials(e["base_url"])}
                            for e in self.endpoints]
        out["verify"] = [{**v, "base_url": strip_url_credentials(v["base_url"])}
                         if v.get("base_url") else dict(v) for v in self.verify]
        return out


# The rule of every setting, whichever source (flag, TOML, environment, run.json) gives it.
_RULES: dict[str, Rule] = {
    "num_instructions": integer(1, 10_000_000, "must be a positive integer"),
    "concurrency": integer(1, 1024),
    "lookahead": integer(1, 1024),
    "requests_per_round": integer(1, 4096, "must be a positive integer"),
    "seed": integer(0, 2**63 - 1, "must be a non-negative integer"),
    "similarity_threshold": Rule(float, lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "seed_examples": integer(0, 64),
    "machine_examples": integer(0, 64),
    "alpaca_examples": integer(1, 64),
    "alpaca_tasks": integer(2, 100),
    "classify_examples": integer(0, 200),
    "instance_examples": integer(0, 50),
    "max_instances": integer(1, 100),
    "max_rounds": Rule(int, lambda v: v > 0, "must be a positive integer"),
    "stall_rounds": Rule(int, lambda v: v > 0, "must be a positive integer"),
    "timeout": Rule(float, lambda v: 0 < v <= 86_400, "must be a positive number of seconds"),
    "max_retries": integer(0, 100),
    "retry_base_delay": Rule(float, lambda v: 0 <= v <= 600,
                             "must be between 0 and 600 seconds"),
    "recipe": one_of(RECIPES),
    "api": one_of(APIS),
    "language": one_of(LANGUAGES),
    "dataset": Rule(str, lambda v: bool(DATASET_NAME_RE.fullmatch(v)),
                    "must be 1-100 characters of letters, digits, '.', '_' or '-'"),
    "model": Rule(str, lambda v: bool(v.strip()), "must not be empty"),
    # A URL may carry a password: an error line shows only its redacted form.
    "base_url": Rule(str, lambda v: valid_url(v),
                     "must be an http(s) URL with a host and a port from 1 to 65535, such as "
                     "http://127.0.0.1:8000/v1", show=lambda v: redact(repr(v))),
    "license": Rule(str, lambda v: bool(v.strip()), "must not be empty"),
    "seeds": Rule(Path, message="must be a path"),
    "data_dir": Rule(Path, message="must be a path"),
    "prompts_dir": Rule(Path, message="must be a path"),
    "stage_max_tokens": Rule(dict, lambda v: all(positive_int(n) for n in v.values()),
                             "must map stage names to positive integers"),
    # A table of its own rules (FilterSettings.from_mapping); listed so the key is known.
    "filters": Rule(FilterSettings),
    "batch_api": BOOLEAN,
    "batch_size": integer(1, 50_000, "must be an integer from 1 to 50000 "
                                     "(OpenAI's limit per batch file)"),
    "batch_poll_interval": Rule(float, lambda v: 0 < v <= 3600,
                                "must be from 0 to 3600 seconds"),
    "rpm": Rule(float, lambda v: v > 0, "must be a positive number of requests per minute"),
    "tpm": Rule(float, lambda v: v > 0, "must be a positive number of tokens per minute"),
    "max_requests": Rule(int, lambda v: v > 0, "must be a positive integer"),
    "max_tokens": Rule(int, lambda v: v > 0, "must be a positive integer"),
    "max_cost": Rule(float, lambda v: v > 0, "must be a positive amount (USD)"),
    "prices": Rule(dict, lambda v: all(valid_price(p) for p in v.values()),
                   "must map model names to {input = USD per 1M tokens, output = ...}"),
    "endpoints": Rule(list, lambda v: all(valid_endpoint(x) for x in v),
                      "must be a list of {base_url = \"http://host:port/v1\", optional "
                      "concurrency, api_key_env (an environment variable name)}",
                      show=lambda v: redact(repr(v))),
    "generations": integer(1, 50),
    "from_version": Rule(Path, message="must be a path"),
    "chat_template": Rule(Path, message="must be a path"),
    "personas": Rule(Path, message="must be a path or a bundled set name"),
    "turns": integer(1, 20),
    "confidence": BOOLEAN,
    "verify": Rule(list, lambda v: all(valid_verifier(x) for x in v),
                   "must be a list of {model = \"...\", optional base_url, api_key_env "
                   "(an environment variable name), temperature}",
                   show=lambda v: redact(repr(v))),
    "preference": BOOLEAN,
    "responses": integer(2, 16),
    "response_models": Rule(list, lambda v: all(isinstance(m, str) and m.strip() for m in v),
                            "must be a list of model names"),
}

def coerce_setting(name: str, value: Any, where: str) -> Any:
    """Validate one setting from any source (`where` names it in the error line)."""
    if name == "filters":
        return value if isinstance(value, FilterSettings) else \
            FilterSettings.from_mapping(value, where)
    return _RULES[name].coerce(value, where)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config; keys are the long flag names with '_' (``num_instructions``)."""
    require_regular_file(path, "config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config file: {exc.strerror}") from None
    refuse_unknown(data, _RULES, str(path), "setting")
    return data


def build_config(
    flags: dict[str, Any], config_file: Path | None = None,
    environ: dict[str, str] | None = None, source: str | None = None,
) -> GenerateConfig:
    """Merge flags, an optional TOML file and the environment into a validated config.

    `source` names where `flags` came from when it is not the command line (a run's
    ``run.json``), so an error names that file's field instead of a flag nobody typed.
    """
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if environ.get("OPENAI_BASE_URL"):
        values["base_url"] = environ["OPENAI_BASE_URL"]
        sources["base_url"] = "OPENAI_BASE_URL"
    if config_file is not None:
        for key, value in load_config_file(config_file).items():
            values[key] = value
            sources[key] = f"{config_file}: [{key}]" if key == "filters" else \
                f"{config_file}: field '{key}'"
    for key, value in flags.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            value = {**values[key], **value}  # flags refine a table, they don't replace it
        values[key] = value
        if source is not None:
            sources[key] = f"{source}: field '{key}'"
        else:
            sources[key] = "command line" if key == "filters" else flag_name(key)
    if source is not None:  # a stored run.json may come from another version
        refuse_unknown(values, _RULES, source, "setting")
    if "seeds" not in values and values.get("recipe") == "magpie":
        # Magpie needs no seeds: the bundled general set of the language only starts the
        # novelty index, so sampled instructions must still differ from it.
        values["seeds"] = f"{values.get('language') or languages.DEFAULT}_general"
        sources["seeds"] = "the default seeds of --recipe magpie"
    for key in ("seeds", "dataset", "num_instructions"):
        if key not in values:
            raise InputError(f"{source}: field '{key}' is missing" if source is not None
                             else f"{flag_name(key)} is required")
    checked = {key: coerce_setting(key, value, sources[key]) for key, value in values.items()}
    return GenerateConfig(**checked)


def with_url_credentials(config: GenerateConfig, url: str | None) -> GenerateConfig:
    """`config` with base URL `url` if that is its URL plus the credentials it was stored
    without (how Prefect flow runs get them: from ``OPENAI_BASE_URL``, never a parameter)."""
    if url and config.base_url and strip_url_credentials(url) == config.base_url:
        return dataclasses.replace(config, base_url=url)
    return config


def resolve_defaults(config: GenerateConfig, detected_language: str) -> GenerateConfig:
    """Fill the values that depend on the endpoint and the seeds, so they can be recorded."""
    from selfinstruct.local_model import MODEL_ALIAS
    from selfinstruct.similarity import default_threshold

    if not config.embedded and config.model is None:
        raise InputError("--model is required with --base-url (the endpoint's model name)")
    language = config.language or detected_language
    if config.machine_examples + config.seed_examples == 0:
        raise InputError("--seed-examples and --machine-examples cannot both be 0")
    if config.endpoints and (config.embedded or config.batch_api):
        raise InputError("several endpoints need --base-url for the first one and direct "
                         "requests (no --batch-api)")
    if config.batch_api and config.embedded:
        raise InputError("--batch-api needs an endpoint with a Batch API (--base-url); the "
                         "embedded model has none")
    model = config.model or MODEL_ALIAS
    if config.max_cost is not None and not config.embedded:
        # Every model the run pays for: the run's, the judge, verifiers, response models.
        paid = [model, config.filters.judge_model, *(v["model"] for v in config.verify),
                *config.response_models]
        for name in dict.fromkeys(m for m in paid if m is not None):
            if name not in config.prices:
                raise InputError(f"--max-cost needs the price of model '{name}': add "
                                 f"[prices.\"{name}\"] input = ..., output = ... (USD per 1M "
                                 f"tokens) to the --config file")
    if config.filters.min_confidence is not None and not config.confidence:
        raise InputError("[filters] min_confidence needs --confidence (confidence = true): "
                         "without it no answer has a confidence to compare")
    if config.response_models and not config.preference:
        raise InputError("--response-models needs --preference (they write its responses)")
    if len(config.response_models) > config.responses:
        raise InputError(f"--response-models names {len(config.response_models)} models but "
                         f"--responses is {config.responses}: each model needs a response slot")
    if config.filters.min_agreement is not None and not config.verify:
        raise InputError("[filters] min_agreement needs at least one --verify-model "
                         "([[verify]] table): without one there is no agreement to compare")
    concurrency = config.concurrency or default_concurrency(config)
    return dataclasses.replace(
        config,
        # Absolute, so a resume from another working directory reads the same seeds and
        # prompts and writes its version under the run's own data folder.
        # A bundled set name (en_general) is stored as the file it names, so a resume or a
        # schedule started elsewhere finds the same file.
        seeds=resolve_seed_path(config.seeds).resolve(),
        data_dir=config.data_dir.resolve(),
        prompts_dir=config.prompts_dir.resolve() if config.prompts_dir else None,
        from_version=config.from_version.resolve() if config.from_version else None,
        chat_template=config.chat_template.resolve() if config.chat_template else None,
        # A file is stored absolute; a bundled set name (en, ja) as it is.
        personas=(config.personas.resolve()
                  if config.personas is not None and config.personas.exists()
                  else config.personas),
        language=language,
        model=model,
        # Magpie samples raw completions of the chat template's user-turn prefix.
        api=config.api or ("completions" if config.embedded or config.recipe == "magpie"
                           else "chat"),
        concurrency=concurrency,
        # With several endpoints the windows must hold enough requests for all of them.
        lookahead=config.lookahead or concurrency + sum(e.get("concurrency") or concurrency
                                                        for e in config.endpoints),
        requests_per_round=config.requests_per_round or concurrency,
        seed=config.seed if config.seed is not None else random.SystemRandom().randrange(2**31),
        similarity_threshold=config.similarity_threshold or default_threshold(language),
        timeout=config.timeout or (600.0 if config.embedded else 120.0),
    )


def default_concurrency(config: GenerateConfig) -> int:
    """1 for the embedded model, 8 for an endpoint; with the Batch API, a quarter of the
    target (8 to 512).

    The first window of generation requests is sent before any answer shows the yield, so its
    size is a guess that must not overshoot: a batch job holds one window, and a fixed window
    of 512 for 30 instructions paid for 572 requests and dropped thousands of candidates as
    over the target. One Self-Instruct answer lists several new instructions (on the test
    server about 5 pass the filters), so a quarter of the target rarely needs a second job
    and never buys hundreds too many; later windows are sized from the measured yield, as in
    direct mode.
    """
    if config.embedded:
        return 1
    if config.batch_api:
        return min(512, max(8, math.ceil(config.num_instructions / 4)))
    return 8
