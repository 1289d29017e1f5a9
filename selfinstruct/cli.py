"""The ``selfinstruct`` command: parses arguments and calls the library, nothing more.

Heavy imports (the pipeline, Prefect, datasets) happen inside the command that needs them, so
``--help`` and the dataset commands start instantly. Every user-facing failure ends as one
line ``selfinstruct: error: …`` with exit code 2 (bad input) or 1 (a failure at run time).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from selfinstruct import __version__, cli_flows, languages, prefect_env
from selfinstruct._errors import InputError
from selfinstruct.cli_recipe_flags import add_recipe_options, recipe_flags
from selfinstruct.recipes import RECIPES
from selfinstruct.seeds import bundled_seed_sets

GENERATE_FLAGS = (
    "seeds", "dataset", "num_instructions", "data_dir", "recipe", "language", "base_url",
    "model", "api", "concurrency", "requests_per_round", "seed", "similarity_threshold",
    "max_rounds", "stall_rounds", "timeout", "max_retries", "prompts_dir", "license",
    "max_requests", "max_tokens", "max_cost", "rpm", "tpm", "batch_api", "batch_size",
    "batch_poll_interval",
)
# Flags that set one key of the [filters] table.
FILTER_FLAGS = ("judge_model", "judge_min_score", "pii", "consistency")
EXIT_BUDGET = 3  # the run stopped at a budget; its journal is complete and resumable
EXIT_EMPTY = 4  # the run ended without one usable row: no version written, journal kept


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit code 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"selfinstruct: error: {message} (see '{self.prog} --help')\n")


def _add_generate(sub: Any) -> None:
    p = sub.add_parser(
        "generate", help="generate a new dataset version from seed tasks",
        description="Generate instructions Self-Instruct style (or Alpaca style), then instances,"
                    " and write a new immutable version under DATA_DIR/DATASET/. With no "
                    "--base-url (and no OPENAI_BASE_URL) the embedded demo model is used. The "
                    "last line on stdout is the version folder's path.",
    )
    add_config_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished run of --dataset from its journal. "
                        "Speed settings, budgets and --num-instructions may change; any other "
                        "setting given must equal the stored one, and edited seeds, templates "
                        "or labels.json are refused")
    p.add_argument("--run-dir", type=Path, help="continue this run folder (implies --resume)")
    p.add_argument("--prefect", action="store_true",
                   help="run through the Prefect flow generate_dataset")
    cli_flows.add_runner_options(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.add_argument("--estimate", action="store_true",
                   help="run a journaled pilot of this run (its first --pilot accepted "
                        "instructions, through every stage), print the forecast requests, "
                        "tokens, cost and wall time for --num-instructions with 95%% "
                        "intervals, and exit without writing a version; --resume then reuses "
                        "every pilot answer")
    p.add_argument("--pilot", type=int, metavar="K",
                   help="accepted instructions in the --estimate pilot (default: min(N, 20))")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the traceback of an unexpected error")
    p.set_defaults(func=_cmd_generate)


def generation_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (None: not given), for `build_config`; the
    filter flags become keys of the [filters] table."""
    flags = {name: getattr(args, name) for name in GENERATE_FLAGS} | recipe_flags(args)
    # --base-url given several times: the first is the run's endpoint, the others join it.
    urls = flags["base_url"] or []
    flags["base_url"] = urls[0] if urls else None
    flags["endpoints"] = [{"base_url": url} for url in urls[1:]] or None
    filters = {name: getattr(args, name) for name in FILTER_FLAGS
               if getattr(args, name) is not None}
    flags["filters"] = filters or None
    return flags


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The settings of a generation run (GENERATE_FLAGS, --api-key, --config): shared by
    `generate` and `serve`."""
    p.add_argument("--seeds", type=Path, metavar="PATH|NAME",
                   help="seed task file (JSONL, Self-Instruct or Alpaca rows), or the name of a "
                        f"bundled set: {', '.join(bundled_seed_sets())}")
    p.add_argument("--num-instructions", type=int, metavar="N",
                   help="usable tasks to produce: tasks with at least one valid instance in "
                        "train.jsonl (the run tops up with more bootstrap rounds until it has "
                        "N, unless --max-rounds, --stall-rounds or a budget stops it first)")
    p.add_argument("--dataset", help="dataset name (folder under --data-dir)")
    p.add_argument("--data-dir", type=Path, help="where datasets live (default: data)")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="self-instruct (default): bootstrap, classify, instances; alpaca: "
                        "one request gives 20 instruction/input/output items; "
                        "evol-instruct: evolve seed instructions into harder ones "
                        "(--generations); magpie: instructions sampled from the chat "
                        "template's user-turn prefix (raw completions, no seeds needed)")
    p.add_argument("--language", choices=languages.codes(),
                   help="data language (default: detected from the seeds)")
    p.add_argument("--base-url", action="append", metavar="URL",
                   help="OpenAI-compatible endpoint, e.g. "
                   "https://api.openai.com/v1 (default: $OPENAI_BASE_URL, else the embedded "
                   "model). Credentials in it (user:password@, ?api_key=) are never stored: "
                   "give the same URL again to --resume. Give it several times for several "
                   "servers of the same model: requests go to the least loaded live one "
                   "([[endpoints]] tables in --config set each one's concurrency and key)")
    p.add_argument("--api-key", help="API key (prefer $OPENAI_API_KEY: flags show in `ps`)")
    p.add_argument("--model", help="model name on the endpoint (required with --base-url)")
    p.add_argument("--api", choices=["chat", "completions"],
                   help="chat (default for endpoints) or completions (default for the "
                        "embedded model)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 8; 1 for "
                   "the embedded model; with --batch-api, requests per job: a quarter of "
                   "--num-instructions, 8 to 512). A resumed run may change it")
    p.add_argument("--requests-per-round", type=int,
                   help="bootstrap requests per round (default: --concurrency as the run "
                        "started)")
    p.add_argument("--seed", type=int, help="random seed (default: random, recorded)")
    p.add_argument("--similarity-threshold", type=float,
                   help="ROUGE-L above which a new instruction is a near-duplicate "
                        "(default: 0.7 for en, the measured default for ja)")
    p.add_argument("--max-rounds", type=int, help="stop after this many bootstrap rounds")
    p.add_argument("--stall-rounds", type=int,
                   help="stop when this many rounds in a row accept nothing (default 30)")
    p.add_argument("--timeout", type=float, help="seconds per request (default 120)")
    p.add_argument("--max-retries", type=int, help="retries per request (default 5)")
    p.add_argument("--prompts-dir", type=Path, help="folder with <lang>/*.j2 templates "
                   "(default: the bundled prompts/)")
    p.add_argument("--license", help="license written to the dataset card (default "
                   "apache-2.0)")
    p.add_argument("--rpm", type=float, help="requests per minute to stay under (default: "
                   "learnt from the endpoint's x-ratelimit headers, else unlimited)")
    p.add_argument("--tpm", type=float, help="tokens per minute to stay under (prompt + "
                   "max_tokens, as OpenAI counts them)")
    p.add_argument("--batch-api", action="store_const", const=True,
                   help="send requests as OpenAI Batch API jobs (cheaper, answered within "
                        "hours; a resumed run polls its pending jobs)")
    p.add_argument("--batch-size", type=int, help="requests per batch job (default 10000)")
    p.add_argument("--batch-poll-interval", type=float,
                   help="seconds between batch status checks (default 30)")
    p.add_argument("--judge-model", help="score every instance with this model (clarity and "
                   "correctness 1-5) and drop those below --judge-min-score")
    p.add_argument("--judge-min-score", type=int, help="lowest judge score kept (default 3)")
    p.add_argument("--consistency", action="store_const", const=True,
                   help="sample each classification label a second time; drop disagreements")
    p.add_argument("--pii", choices=["drop", "mask", "off"],
                   help="e-mails, phone and card numbers: drop the row (default), mask them, "
                        "or keep them")
    p.add_argument("--max-requests", type=int, help="budget: requests for the whole run "
                   "(never exceeded; resumed runs count their earlier requests)")
    p.add_argument("--max-tokens", type=int, help="budget: prompt + completion tokens")
    p.add_argument("--max-cost", type=float, help="budget: USD, from the model's price in the "
                   "--config file ([prices.\"MODEL\"] input/output per 1M tokens)")
    p.add_argument("--config", type=Path, help="TOML file with any of these settings "
                   "(keys like num_instructions); flags override it")
    add_recipe_options(p)


def _cmd_generate(args: argparse.Namespace) -> int:
    from selfinstruct.config import build_config, load_config_file
    from selfinstruct.run import resume_config

    flags = generation_flags(args)
    run_dir = args.run_dir
    if args.resume or run_dir is not None:
        overrides = {**(load_config_file(args.config) if args.config else {}),
                     **{k: v for k, v in flags.items() if v is not None}}
        config, run_dir = resume_config(args.data_dir or Path("data"), args.dataset, run_dir,
                                        overrides)
    else:
        config = build_config(flags, args.config)
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    runner = cli_flows.runner_parameters(args)
    if args.pilot is not None and (not args.estimate or args.pilot < 1):
        raise InputError("--pilot: needs --estimate and a value of at least 1")
    if args.estimate and args.prefect:
        raise InputError("--estimate runs in-process: drop --prefect for the estimate, then "
                         "resume with it")
    if args.prefect:
        return _generate_with_prefect(config, api_key, run_dir, runner)
    if args.task_runner != "local":
        raise InputError("--task-runner dask needs --prefect")
    from selfinstruct.interrupts import Interrupts
    from selfinstruct.pipeline import BudgetExhausted, EmptyDataset, run
    from selfinstruct.progress import ProgressDisplay, print_summary
    from selfinstruct.run import open_run

    with Interrupts() as interrupts, open_run(config, api_key=api_key, run_dir=run_dir) as gen:
        if gen.journal.cached_answers:
            print(f"selfinstruct: resuming {gen.journal.run_dir} "
                  f"({gen.journal.cached_answers} answers in the journal)", file=sys.stderr)
        if args.estimate:
            return _estimate(gen, args.pilot, interrupts.step)
        try:
            with ProgressDisplay(enabled=not args.no_progress) as display:
                gen.on_progress = display.update
                path = run(gen, step=interrupts.step)
        except BudgetExhausted as exc:
            print_summary(gen)
            return _budget_reached(exc, config, gen.journal.run_dir)
        except EmptyDataset as exc:
            print_summary(gen)
            return _empty(exc)
        except KeyboardInterrupt:
            if gen.journal.finished_version is None:
                raise
            # Too late to stop: the version is complete (renamed into place, run finished).
            path = gen.journal.finished_version
            print("selfinstruct: interrupted after the version was written", file=sys.stderr)
        else:
            print_summary(gen)
    print(path)
    return 0


def _estimate(gen: Any, pilot: int | None, step: Any) -> int:
    """The pilot and forecast of `--estimate` (`selfinstruct.estimate`); no version."""
    from selfinstruct.estimate import estimate, pilot_size
    from selfinstruct.pipeline import BudgetExhausted

    config = gen.config
    resume = (f"selfinstruct generate --dataset {config.dataset} --data-dir {config.data_dir} "
              f"--resume")
    try:
        prediction = estimate(gen, config.num_instructions,
                              pilot_size(config.num_instructions, pilot), step, resume)
    except BudgetExhausted as exc:
        return _budget_reached(exc, config, gen.journal.run_dir)
    if prediction is None:
        return _empty(RuntimeError(f"the pilot ended without a usable task "
                                   f"({gen.stop_reason}); nothing to estimate from; the run "
                                   f"stays resumable in {gen.journal.run_dir}"))
    return 0


def _generate_with_prefect(config: Any, api_key: str | None, run_dir: Path | None,
                          runner: dict[str, Any]) -> int:
    cli_flows.export_secrets(api_key, config.base_url)
    prefect_env.configure()
    from selfinstruct.orchestration.generate import generate_dataset
    from selfinstruct.pipeline import BudgetExhausted, EmptyDataset

    try:
        path = generate_dataset(config=config.to_public(),
                                run_dir=str(run_dir) if run_dir else None, **runner)
    except BudgetExhausted as exc:
        return _budget_reached(exc, config, run_dir, "--prefect ")
    except EmptyDataset as exc:
        return _empty(exc)
    print(path)
    return 0


def _empty(exc: Exception) -> int:
    """No usable row: nothing was written (an empty version is never made)."""
    print(f"selfinstruct: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return EXIT_EMPTY


def _budget_reached(exc: Exception, config: Any, run_dir: Path | None, flags: str = "") -> int:
    saved = f"in {run_dir}" if run_dir else "in the run journal"
    print(f"selfinstruct: budget reached ({exc}); every answer so far is saved {saved} — "
          f"continue with: selfinstruct generate --dataset {config.dataset} --data-dir "
          f"{config.data_dir} --resume {flags}and a higher budget", file=sys.stderr)
    return EXIT_BUDGET


def _add_serve_local(sub: Any) -> None:
    p = sub.add_parser("serve-local", help="run the embedded model's OpenAI-compatible server",
                       description="Serve SmolLM2-135M-Instruct with llama.cpp on 127.0.0.1 "
                                   "until interrupted (Ctrl-C).")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    p.add_argument("--n-threads", type=int, default=1, help="CPU threads (default 1)")
    p.set_defaults(func=_cmd_serve_local)


def _cmd_serve_local(args: argparse.Namespace) -> int:
    from selfinstruct.local_model import DEMO_WARNING, MODEL_ALIAS, LocalModelServer

    if not 0 < args.port < 65536:
        raise InputError(f"--port: must be from 1 to 65535 (got {args.port})")
    if args.n_threads < 1:
        raise InputError(f"--n-threads: must be at least 1 (got {args.n_threads})")
    # Ctrl-C is the way to stop it, whenever it comes (even while the model loads).
    try:
        with LocalModelServer(port=args.port, n_threads=args.n_threads) as server:
            print(f"selfinstruct: warning: {DEMO_WARNING}", file=sys.stderr)
            print(f"serving {MODEL_ALIAS} at {server.base_url} (Ctrl-C to stop); use: "
                  f"--base-url {server.base_url} --model {MODEL_ALIAS} --api completions",
                  file=sys.stderr, flush=True)
            return server.wait()
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    from selfinstruct import cli_compare, cli_dataset, cli_report

    parser = _Parser(prog="selfinstruct",
                     description="Turn seed tasks into an instruction-tuning dataset.")
    parser.add_argument("--version", action="version", version=f"selfinstruct {__version__}")
    parser.add_argument("-v", "--verbose", dest="traceback", action="store_true",
                        help="print the traceback of an unexpected error (any command)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_generate(sub)
    _add_serve_local(sub)
    cli_dataset.register(sub)
    cli_flows.register(sub)
    cli_report.register(sub)
    cli_compare.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False) or args.traceback)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"selfinstruct: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # A further Ctrl-C while this prints would only add a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if args.command == "generate":
            print("selfinstruct: interrupted; accepted work is in the run journal — continue "
                  "with the same command plus --resume", file=sys.stderr)
        elif args.command == "compare":
            print("selfinstruct: interrupted; the answers so far are journaled in the output "
                  "folder — run the same command again to continue", file=sys.stderr)
        else:  # only a generation run has a journal to resume from
            print(f"selfinstruct: interrupted; {args.command} did not finish", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a run that cannot go on (fatal endpoint answer, replay)
        return _report_failure(exc, verbose, expected=True)
    except Exception as exc:  # a bug or an input nobody foresaw: still one line
        return _report_failure(exc, verbose, expected=False)


def _report_failure(exc: Exception, verbose: bool, expected: bool) -> int:
    """One line on stderr, exit 1; the (redacted) traceback only with -v."""
    from selfinstruct.redact import redact

    if verbose:
        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    text = " ".join(str(exc).split())
    if expected:
        print(f"selfinstruct: error: {redact(text)}", file=sys.stderr)
    else:
        hint = "" if verbose else "; run again with -v for the traceback"
        print(f"selfinstruct: error: unexpected {type(exc).__name__}: {redact(text)[:500]}"
              f"{hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
