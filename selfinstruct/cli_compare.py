"""``selfinstruct compare A B --judge-model M``: which of two answer sets a judge prefers.

A is a version; B is another version (the answers both give to the instructions they share,
same instruction and same input) or ``model:NAME`` (that model answers A's instructions, with
``prompts/<lang>/answer.j2`` like generate's direct-answer mode). Every pair goes to the
pairwise judge in both orders (`selfinstruct.pairwise`); the counts, the win rate of A over B
and the length-controlled win rate with 95 % bootstrap intervals (`selfinstruct.winrate`) are
printed and written to the output folder (`selfinstruct.compare_report`).

Requests go through the same machinery as ``generate``: `LLMClient` (retries, the shared
cool-down, redacted errors) behind the engine's `Dispatcher` over a `Journal` kept in the
output folder, so running the same comparison again — after a crash, or to add pairs with a
larger ``--limit`` — pays only for answers it does not have yet. Nonces come from the
instruction and input, not from positions, so a different ``--limit`` reuses every answer.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct import languages
from selfinstruct._errors import InputError

MODEL_PREFIX = "model:"
ANSWER_STAGE = "compare_answer"
ANSWER_MAX_TOKENS = (512, 512)  # (remote, embedded), like generate's direct answers
EXIT_FAILED = 1  # no pair could be judged (every request failed or was unreadable)
EXIT_BUDGET = 3  # a budget stopped it; the journal keeps what was answered


@dataclass(frozen=True)
class Pair:
    """One shared instruction and the two answers to compare."""

    instruction: str
    input: str
    answer_a: str
    answer_b: str | None  # None until model B has answered

    @property
    def key(self) -> str:
        """Stable id of the instruction + input: the nonce of its requests."""
        blob = f"{self.instruction}\0{self.input}".encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``compare`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "compare", help="judge two versions' answers (or a model's) pairwise: win rates",
        description="Compare the answers of version A with those of version B to the "
        "instructions they share (same instruction and input), or with the answers of model "
        "NAME when B is model:NAME. A judge model sees every pair in both orders (a winner "
        "must win both; disagreement is a tie). Prints wins/ties/losses, the win rate of A "
        "over B and the length-controlled win rate (AlpacaEval 2's method) with 95% "
        "bootstrap intervals; writes compare.json, compare.md and pairs.jsonl to --output. "
        "Answers are journaled there: a rerun pays nothing twice.")
    p.add_argument("a", metavar="A", help="a version folder (data/<name>/vNNNN or "
                   "data/<name>/latest)")
    p.add_argument("b", metavar="B", help="another version, or model:NAME (that model, on "
                   "--base-url, answers A's instructions)")
    p.add_argument("--judge-model", required=True, metavar="M", help="the judge model")
    p.add_argument("--base-url", metavar="URL",
                   help="OpenAI-compatible endpoint of the judge (and of model:NAME); default "
                        "$OPENAI_BASE_URL")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="environment variable holding the API key (default %(default)s)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat",
                   help="default %(default)s")
    p.add_argument("--output", type=Path, metavar="DIR", help="report and journal folder "
                   "(default: data/<name of A>/compare/<A>-vs-<B>/)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="compare at most N shared instructions (the first in A's order)")
    p.add_argument("--concurrency", type=int, default=8, metavar="K",
                   help="requests in flight (default 8)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="seconds per attempt (default 120)")
    p.add_argument("--max-retries", type=int, default=5, metavar="R",
                   help="retries of a failed request (default 5)")
    p.add_argument("--max-requests", type=int, metavar="N",
                   help="send at most N requests (journaled answers are free)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="stop after N tokens")
    p.add_argument("--max-cost", type=float, metavar="USD",
                   help="stop after this many dollars (needs prices from --config)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a generate TOML config; compare reads its [prices.\"MODEL\"] tables "
                        "(USD per 1M input/output tokens) to show and cap the cost")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="bootstrap seed and request seed (default 0)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the comparison; errors are one line on stderr (2: bad input, 1: nothing judged)."""
    try:
        return _compare(args)
    except InputError as exc:
        print(f"selfinstruct: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _compare(args: argparse.Namespace) -> int:
    from selfinstruct.compare_report import summary_lines, write_report
    from selfinstruct.dataset import refuse_inside_version
    from selfinstruct.engine.dispatch import BudgetExhausted
    from selfinstruct.journal import Journal
    from selfinstruct.llm import EndpointRefused
    from selfinstruct.pairwise import TEMPLATES
    from selfinstruct.prompts import PromptSet
    from selfinstruct.redact import redact, strip_url_credentials

    _check_numbers(args)
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise InputError("--base-url is required (or set OPENAI_BASE_URL): the judge runs on "
                         "an OpenAI-compatible endpoint")
    prices = _prices(args.config)
    sides = _sides(args)
    output = args.output or sides.folder_a.parent / "compare" / \
        f"{sides.folder_a.name}-vs-{sides.label_b}"
    refuse_inside_version(output, "--output")
    prompts = PromptSet(languages.get(sides.language).prompts_folder, extra_templates=TEMPLATES)
    # Everything above may refuse the command; only now is anything written (the journal).
    try:
        with Journal(output) as journal:
            session = _Session(args, base_url, os.environ.get(args.api_key_env), journal,
                               prices)
            try:
                outcomes = session.judge(prompts, sides.pairs, sides.answer_model)
            finally:
                session.close()
    except EndpointRefused as exc:  # its message names the URL: no password may show
        raise InputError(redact(str(exc))) from None
    except BudgetExhausted as exc:
        print(f"selfinstruct: budget reached ({exc}); the answers so far are journaled in "
              f"{output}: run the same command with a higher budget to continue",
              file=sys.stderr)
        return EXIT_BUDGET
    report = write_report(output, outcomes, a=str(sides.folder_a),
                          b=str(sides.folder_b) if sides.folder_b else args.b,
                          judge=args.judge_model, endpoint=strip_url_credentials(base_url),
                          usage=session.usage_json, seed=args.seed)
    for line in summary_lines(report):
        print(line)
    if report["judged"] == 0:
        print(f"selfinstruct: error: no pair could be judged ({report['unjudged']} "
              "unreadable or failed; see pairs.jsonl)", file=sys.stderr)
        return EXIT_FAILED
    print(output)
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    for name in ("limit", "concurrency", "max_requests", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be at least 1 (got {value})")
    if args.max_cost is not None and not args.max_cost >= 0:
        raise InputError(f"--max-cost: must be a non-negative number (got {args.max_cost})")
    if not args.timeout > 0:
        raise InputError(f"--timeout: must be a positive number of seconds (got {args.timeout})")
    if args.max_retries < 0:
        raise InputError(f"--max-retries: must be 0 or more (got {args.max_retries})")


@dataclass(frozen=True)
class _Sides:
    """What is compared: version A, version B or model B, their language and the pairs."""

    folder_a: Path
    folder_b: Path | None
    answer_model: str | None
    label_b: str  # B in the default output folder's name
    language: str
    pairs: list[Pair]


def _sides(args: argparse.Namespace) -> _Sides:
    from selfinstruct.dataset import read_manifest, read_train_rows, resolve_version

    folder_a = resolve_version(args.a)
    language = _language(read_manifest(folder_a), folder_a)
    if args.b.startswith(MODEL_PREFIX):
        model = args.b[len(MODEL_PREFIX):]
        if not model.strip():
            raise InputError(f"B: {args.b!r} names no model (write model:NAME)")
        pairs = _pairs(read_train_rows(folder_a), None)
        return _Sides(folder_a, None, model, f"model-{_safe(model)}", language,
                      pairs[:args.limit] if args.limit else pairs)
    folder_b = resolve_version(args.b)
    other = _language(read_manifest(folder_b), folder_b)
    if other != language:
        raise InputError(f"{folder_a} is in {language!r} and {folder_b} in {other!r}: "
                         "compare versions of one language")
    pairs = _pairs(read_train_rows(folder_a), read_train_rows(folder_b))
    if not pairs:
        raise InputError(f"{folder_a} and {folder_b} share no instruction (with the same "
                         "input): nothing to compare")
    return _Sides(folder_a, folder_b, None, f"{folder_b.parent.name}-{folder_b.name}",
                  language, pairs[:args.limit] if args.limit else pairs)


class _Session:
    """The clients and dispatcher of one comparison."""

    def __init__(self, args: argparse.Namespace, base_url: str, api_key: str | None,
                 journal: Any, prices: dict[str, dict[str, float]]) -> None:
        from selfinstruct.config import GenerateConfig
        from selfinstruct.engine.dispatch import Dispatcher
        from selfinstruct.llm import LLMClient, RetryPolicy
        from selfinstruct.records import Funnel

        # The dispatcher only reads the seed, budgets and endpoint from its config.
        config = GenerateConfig(seeds=Path(), dataset="compare", num_instructions=1,
                                base_url=base_url, model=args.judge_model, api=args.api,
                                concurrency=args.concurrency, seed=args.seed,
                                max_requests=args.max_requests, max_tokens=args.max_tokens,
                                max_cost=args.max_cost, prices=prices)

        def client(model: str) -> LLMClient:
            made = LLMClient(base_url=base_url, api_key=api_key, model=model, api=args.api,
                             concurrency=args.concurrency, timeout=args.timeout,
                             retry=RetryPolicy(max_retries=args.max_retries), seed=args.seed)
            self._clients.append(made)
            return made

        self._batch = args.concurrency
        self._clients: list[LLMClient] = []
        self.judge_client = client(args.judge_model)
        self.answer_client = client(args.b[len(MODEL_PREFIX):]) \
            if args.b.startswith(MODEL_PREFIX) else None
        self.dispatch = Dispatcher(config, self.judge_client, journal, Funnel())
        self.dispatch.max_tokens.setdefault(ANSWER_STAGE, ANSWER_MAX_TOKENS)
        if self.answer_client is not None:  # priced at model B's price
            self.dispatch.stage_models[ANSWER_STAGE] = self.answer_client.model

    def close(self) -> None:
        for client in self._clients:
            client.close()

    @property
    def usage_json(self) -> dict[str, Any]:
        """Requests and tokens per stage, and the cost (None without prices for every
        model that answered)."""
        return {**self.dispatch.usage.to_json(), "cost_usd": self.dispatch.cost()}

    def judge(self, prompts: Any, pairs: list[Pair], answer_model: str | None) -> list[Any]:
        """Answer with model B if asked, then judge every pair in both orders.

        Pairs decided without the judge: model B's answer failed or was empty (no verdict),
        or both answers are the same text (a tie, as AlpacaEval scores identical outputs —
        asking would only measure the judge's position bias, and costs two requests).
        """
        from selfinstruct.compare_report import Outcome
        from selfinstruct.pairwise import pairwise_requests, read_choice, read_verdict

        settled: dict[str, Outcome] = {}
        if answer_model is not None:
            pairs, failed = self._answers(prompts, pairs)
            settled = {p.key: Outcome(p, None, "", failed[p.key], ()) for p in pairs
                       if p.key in failed}
        for pair in pairs:
            if pair.key not in settled and pair.answer_a.strip() == (pair.answer_b or "").strip():
                settled[pair.key] = Outcome(pair, "tie", "", "identical answers: a tie without "
                                                             "asking the judge", ())
        requests = [pairwise_requests(self.dispatch, prompts, p.instruction, p.input,
                                      p.answer_a, p.answer_b or "", f"pair-{p.key}")
                    for p in pairs if p.key not in settled]
        flat = [request for pair in requests for request in pair]
        answers = iter(self._complete(flat, self.judge_client))
        outcomes = []
        for pair in pairs:
            if pair.key in settled:
                outcomes.append(settled[pair.key])
                continue
            ab, ba = next(answers), next(answers)
            ids = (ab.request_id, ba.request_id)
            error = ab.error or ba.error
            if error is not None:
                outcomes.append(Outcome(pair, None, "", f"judge request failed: {error}", ids))
                continue
            verdict = read_verdict(ab.text, ba.text)
            outcomes.append(Outcome(pair, verdict.winner, verdict.rationale, verdict.detail,
                                    ids, (read_choice(ab.text)[0], read_choice(ba.text)[0])))
        return outcomes

    def _complete(self, requests: list[Any], client: Any) -> list[Any]:
        """Answers in request order, asked in batches of a few windows' worth: a token or
        cost budget is checked between batches, so it stops a long comparison early (it
        can overshoot by at most one batch, like generate's)."""
        size = 4 * self._batch
        return [answer for start in range(0, len(requests), size)
                for answer in self.dispatch.complete(requests[start:start + size], client)]

    def _answers(self, prompts: Any, pairs: list[Pair]) -> tuple[list[Pair], dict[str, str]]:
        """Model B's answers (temperature 0); failed or empty ones are reported, not judged."""
        params = self.dispatch.params(ANSWER_STAGE, temperature=0.0, top_p=1.0)
        requests = [self.dispatch.request(
            ANSWER_STAGE, prompts.render("answer", instruction=_user_turn(p)), params,
            f"answer-{p.key}") for p in pairs]
        completions = self._complete(requests, self.answer_client)
        answered, failed = [], {}
        for pair, completion in zip(pairs, completions, strict=True):
            if completion.error is not None:
                failed[pair.key] = f"model B's answer failed: {completion.error}"
            elif not completion.text.strip():
                failed[pair.key] = "model B's answer was empty"
            answered.append(Pair(pair.instruction, pair.input, pair.answer_a,
                                 completion.text.strip()))
        return answered, failed


def _prices(path: Path | None) -> dict[str, dict[str, float]]:
    """The [prices] tables of a generate config file (the rest of it is for generate)."""
    from selfinstruct.config import coerce_setting, load_config_file

    if path is None:
        return {}
    prices = load_config_file(path).get("prices", {})
    return dict(coerce_setting("prices", prices, f"{path}: [prices]"))


def _user_turn(pair: Pair) -> str:
    """The instruction, and its input after a blank line: what model B is asked."""
    return pair.instruction if not pair.input else f"{pair.instruction}\n\n{pair.input}"


def _pairs(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]] | None) -> list[Pair]:
    """A's rows (the first per instruction + input) with B's answer to the same, in A's
    order; with `rows_b` None, every one of A's (model B answers them)."""
    theirs: dict[tuple[str, str], str] = {}
    for row in rows_b or ():
        theirs.setdefault(_row_key(row), str(row["output"]))
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for row in rows_a:
        key = _row_key(row)
        if key in seen or (rows_b is not None and key not in theirs):
            continue
        seen.add(key)
        pairs.append(Pair(key[0], key[1], str(row["output"]), theirs.get(key)))
    return pairs


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return " ".join(str(row["instruction"]).split()), " ".join(str(row["input"]).split())


def _language(manifest: dict[str, Any], folder: Path) -> str:
    language = manifest.get("language") or languages.DEFAULT
    if language not in languages.codes():
        raise InputError(f"{folder}: manifest language {language!r} has no prompts "
                         f"(known: {', '.join(languages.codes())})")
    return str(language)


def _safe(name: str) -> str:
    """A model name as a folder-name part ("org/model:tag" -> "org-model-tag")."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "model"
