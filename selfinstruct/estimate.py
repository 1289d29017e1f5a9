"""`generate --estimate`: run a small pilot of the real run, then forecast the whole run.

Why a pilot of the same run: yields (how many generation answers make an accepted
instruction, how many of those end usable) depend on the model, the seeds and the filters, so
they can only be measured. The pilot is the run itself with its target lowered to K
(default ``min(N, 20)``): same run folder, same journal, so ``--resume`` afterwards pays
for none of the pilot's answers again (the journal is content-addressed; the target is not
part of any request). It goes through every stage of the recipe and stops before the version
is written. It makes no top-up rounds (see `run_pilot`): its usable share is measured on the
first K accepted instructions.

The model, from the pilot's counts (generation stage g = ``bootstrap`` or ``alpaca``)::

    y = (accepted + over_target * novelty pass rate) / generation answers
                         instructions per answer an uncapped run would accept: candidates
                         past the pilot's small target are dropped before the novelty check
    u = usable tasks / accepted
    A = N / u            accepted instructions needed for N usable tasks
    G = A / y            generation requests
    R_s = A * r_s        any other stage s (classify, instances, judge...), r_s = its
                         requests per accepted instruction in the pilot
    tokens_s = R_s * (pilot tokens per request of s), prompt and completion apart
    cost = prompt tokens * input price + completion tokens * output price (per 1M tokens)
    wall = max(requests * mean latency / concurrency, requests / rpm)

Uncertainty (a 95 % normal interval, delta method): the accepted count is treated as Poisson
(relative SE of y = 1/sqrt(y * answers)), the usable share as binomial with Agresti-Coull's
adjusted share p = (usable + 2)/(accepted + 4) in the variance (relative SE of u =
sqrt(p(1-p)/accepted)/u, never 0 even when every pilot task was usable); A varies with u,
G with both (relative SEs added in quadrature).
The bounds of A and G are taken together for every total (they move the same way), and token
counts per request and r_s are taken as exact, so the interval reflects the yields only. The
wall-time interval also carries the standard error of the mean pilot latency. Latency is
timed from submit to answer on the run's main client, so it includes waiting for a free slot:
the wall-time forecast errs long, and ignores stage boundaries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from selfinstruct.fileio import atomic_write
from selfinstruct.journal import read_run_config
from selfinstruct.llm import Client, Completion, Request

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine

DEFAULT_PILOT = 20
Z95 = 1.96


class PilotDone(Exception):
    """Raised at the version-write step: the pilot went through every stage, nothing is
    written."""


class TimedClient:
    """The run's client, timing each request from submit to answer (the pilot's latency)."""

    def __init__(self, inner: Client) -> None:
        self.inner = inner
        # The same model and API as the run's client: journal keys stay those of the run.
        self.model: str = inner.model
        self.api: str = inner.api
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def submit(self, request: Request) -> Future[Completion]:
        start = time.monotonic()
        future = self.inner.submit(request)

        def done(_: Future[Completion]) -> None:
            with self._lock:
                self.latencies.append(time.monotonic() - start)

        future.add_done_callback(done)
        return future


def pilot_size(target: int, pilot: int | None) -> int:
    return min(target, DEFAULT_PILOT if pilot is None else pilot)


def run_pilot(gen: Engine, size: int, step: Callable[..., Any]) -> TimedClient:
    """Run `gen` through every stage for `size` usable tasks; stop before the version write.

    Only the engine's in-memory target is lowered: run.json keeps N, so a plain ``--resume``
    continues to N. Returns the timing client (its latencies feed the forecast).
    """
    from selfinstruct.pipeline import run

    timed = TimedClient(gen.client)
    gen.client = timed
    gen.config = dataclasses.replace(gen.config, num_instructions=size)
    gen.accept_target = size

    def pilot_step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        if name == "write-version":
            raise PilotDone
        if name != "bootstrap-round" and gen.config.max_rounds > gen.round:
            # No top-up rounds: the pilot's next accepted instruction would come from answers
            # after those it dropped as over its small target, which the real run accepts;
            # the journal would then disagree with the resumed run's replay.
            gen.config = dataclasses.replace(gen.config, max_rounds=gen.round)
        return step(name, fn, *args)

    with contextlib.suppress(PilotDone):
        run(gen, step=pilot_step)
    return timed


def _interval(value: float, rel: float) -> list[float]:
    return [max(0.0, value * (1 - Z95 * rel)), value * (1 + Z95 * rel)]


def forecast(gen: Engine, target: int, latencies: list[float],
             concurrency: int, rpm: float | None) -> dict[str, Any]:
    """The forecast for `target` usable tasks from the pilot's state in `gen` (see above)."""
    stages = {name: vars(s) for name, s in gen.usage.stages.items()}
    counts = {name: s["requests"] + s["cached"] for name, s in stages.items()}
    gen_stage = gen.generation_stage
    assert gen_stage is not None, "a pilot with tasks asked for generation answers"
    answers, accepted, usable = counts[gen_stage], len(gen.tasks), gen.usable
    y, u = _acceptable(gen.funnel.stages, accepted) / answers, usable / accepted
    rel_y = 1 / math.sqrt(y * answers)
    # Agresti-Coull's share for the variance: a pilot where every task was usable still
    # has an interval.
    share = (usable + 2) / (accepted + 4)
    rel_u = math.sqrt(share * (1 - share) / accepted) / u
    rel_g = math.hypot(rel_y, rel_u)
    need = target / u
    need_band = _interval(need, rel_u)
    requests: dict[str, dict[str, Any]] = {}
    for name, count in counts.items():
        if name == gen_stage:
            mid, band = need / y, _interval(need / y, rel_g)
        else:
            rate = count / accepted
            mid, band = need * rate, [b * rate for b in need_band]
        per_prompt = stages[name]["prompt_tokens"] / count
        per_completion = stages[name]["completion_tokens"] / count
        requests[name] = {
            "requests": mid, "requests_95": band,
            "prompt_tokens_per_request": per_prompt,
            "completion_tokens_per_request": per_completion,
            "prompt_tokens": mid * per_prompt, "completion_tokens": mid * per_completion,
            "prompt_tokens_95": [b * per_prompt for b in band],
            "completion_tokens_95": [b * per_completion for b in band],
        }
    total = {key: sum(s[key] for s in requests.values())
             for key in ("requests", "prompt_tokens", "completion_tokens")}
    for key in ("requests", "prompt_tokens", "completion_tokens"):
        total[f"{key}_95"] = [sum(s[f"{key}_95"][i] for s in requests.values()) for i in (0, 1)]
    price = gen.price
    cost = None if price is None else {
        "usd": _cost(total["prompt_tokens"], total["completion_tokens"], price),
        "usd_95": [_cost(total["prompt_tokens_95"][i], total["completion_tokens_95"][i], price)
                   for i in (0, 1)]}
    return {
        "target": target,
        "pilot": {"usable": usable, "accepted": accepted, "generation_answers": answers,
                  "requests": sum(counts.values()),
                  "sent": sum(s["requests"] for s in stages.values()),
                  "accepted_per_generation_answer": y, "usable_per_accepted": u,
                  "latency_mean_s": statistics.fmean(latencies) if latencies else None},
        "stages": requests, "total": total, "cost": cost,
        "wall_seconds": _wall(total, latencies, concurrency, rpm),
        "concurrency": concurrency, "rpm": rpm,
        "method": "95% normal interval (delta method): Poisson accepted count, binomial "
                  "usable share; see selfinstruct/estimate.py",
    }


def _acceptable(funnel: dict[str, dict[str, Any]], accepted: int) -> float:
    """Instructions the pilot's answers would have given an uncapped run.

    Candidates that arrive once the pilot's small target is met are dropped as
    "over_target" before the novelty check; counting only the accepted ones would make a
    20-task pilot see half the real yield. Each is counted at the novelty stage's pass rate.
    """
    over = funnel.get("target", {}).get("drops", {}).get("over_target", 0)
    novelty = funnel.get("novelty", {"in": 0, "kept": 0})
    rate = novelty["kept"] / novelty["in"] if novelty["in"] else 1.0
    return accepted + over * rate


def _cost(prompt: float, completion: float, price: dict[str, float]) -> float:
    return (prompt * price["input"] + completion * price["output"]) / 1_000_000


def _wall(total: dict[str, Any], latencies: list[float], concurrency: int,
          rpm: float | None) -> dict[str, Any] | None:
    if not latencies:
        return None  # every pilot answer came from the journal: nothing was timed
    mean = statistics.fmean(latencies)
    rel = (statistics.stdev(latencies) / math.sqrt(len(latencies)) / mean
           if len(latencies) > 1 and mean > 0 else 0.0)

    def seconds(requests: float, latency: float) -> float:
        by_rate = requests / rpm * 60 if rpm else 0.0
        return max(requests * latency / concurrency, by_rate)

    low, high = total["requests_95"]
    return {"seconds": seconds(total["requests"], mean),
            "seconds_95": [seconds(low, max(0.0, mean * (1 - Z95 * rel))),
                           seconds(high, mean * (1 + Z95 * rel))]}


def store(gen: Engine, prediction: dict[str, Any]) -> None:
    """Keep the forecast in run.json (atomically), for the finished run's manifest."""
    run_dir = gen.journal.run_dir
    record = read_run_config(run_dir)
    record["estimate"] = prediction
    atomic_write(run_dir / "run.json", json.dumps(record, ensure_ascii=False, indent=1) + "\n")


def manifest_field(engine: Engine) -> dict[str, Any] | None:
    """``{"predicted", "actual"}`` if this run was estimated first, else None."""
    predicted = read_run_config(engine.journal.run_dir).get("estimate")
    if predicted is None:
        return None
    stages = {name: vars(s) for name, s in engine.usage.stages.items()}
    actual = {
        "usable": engine.usable, "accepted": len(engine.tasks),
        "requests": {name: s["requests"] + s["cached"] for name, s in stages.items()},
        "total_requests": sum(s["requests"] + s["cached"] for s in stages.values()),
        "prompt_tokens": sum(s["prompt_tokens"] for s in stages.values()),
        "completion_tokens": sum(s["completion_tokens"] for s in stages.values()),
        "cost_usd": engine.dispatch.cost(),
    }
    return {"predicted": predicted, "actual": actual}


def _range(value: float, band: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(value)}  ({fmt.format(band[0])} – {fmt.format(band[1])})"


def render(prediction: dict[str, Any], resume_command: str) -> str:
    """The readable table printed on stderr."""
    pilot, total = prediction["pilot"], prediction["total"]
    lines = [
        f"selfinstruct: estimate for {prediction['target']} usable tasks, from a pilot of "
        f"{pilot['usable']} usable ({pilot['accepted']} accepted, {pilot['requests']} "
        f"requests, {pilot['sent']} sent now)",
        f"  yields: {pilot['accepted_per_generation_answer']:.2f} accepted per generation "
        f"answer, {pilot['usable_per_accepted']:.2f} usable per accepted",
    ]
    # Wide enough for the longest stage name (a feature's, such as "turn10_answer").
    width = max(12, *(len(name) + 2 for name in prediction["stages"]))
    lines.append(f"  {'stage':<{width}}{'requests (95%)':<28}{'prompt tok/req':>15}"
                 f"{'compl. tok/req':>15}")
    for name, s in prediction["stages"].items():
        lines.append(f"  {name:<{width}}{_range(s['requests'], s['requests_95']):<28}"
                     f"{s['prompt_tokens_per_request']:>15.1f}"
                     f"{s['completion_tokens_per_request']:>15.1f}")
    lines += [
        f"  requests:   {_range(total['requests'], total['requests_95'])}",
        f"  tokens:     {_range(total['prompt_tokens'], total['prompt_tokens_95'])} prompt, "
        f"{_range(total['completion_tokens'], total['completion_tokens_95'])} completion",
    ]
    cost = prediction["cost"]
    lines.append("  cost:       " + ("n/a (no price)" if cost is None else
                                     _range(cost["usd"], cost["usd_95"], "${:,.4f}")))
    wall = prediction["wall_seconds"]
    rate = f", rpm {prediction['rpm']:g}" if prediction["rpm"] else ""
    lines.append("  wall time:  " + ("n/a (no request timed: all answers from the journal)"
                                      if wall is None else
                                      _range(wall["seconds"], wall["seconds_95"], "{:,.0f} s"))
                 + f" at concurrency {prediction['concurrency']}{rate}")
    lines += [f"  uncertainty: {prediction['method']}",
              f"  the pilot's answers are journaled; continue with: {resume_command}"]
    return "\n".join(lines)


def estimate(gen: Engine, target: int, size: int, step: Callable[..., Any],
             resume_command: str) -> dict[str, Any] | None:
    """Pilot, forecast, store, print; None if the pilot produced no usable task."""
    timed = run_pilot(gen, size, step)
    if not gen.usable:
        return None
    config = gen.config
    prediction = forecast(gen, target, timed.latencies, config.concurrency or 1, config.rpm)
    store(gen, prediction)
    print(render(prediction, resume_command), file=sys.stderr)
    for note in budget_notes(prediction, config):
        print(f"selfinstruct: warning: {note}", file=sys.stderr)
    return prediction


def budget_notes(prediction: dict[str, Any], config: Any) -> list[str]:
    """Budgets the forecast says the run will likely reach before N (its upper bound)."""
    total, cost = prediction["total"], prediction["cost"]
    checks = [("--max-requests", config.max_requests, total["requests_95"][1]),
              ("--max-tokens", config.max_tokens,
               total["prompt_tokens_95"][1] + total["completion_tokens_95"][1]),
              ("--max-cost", config.max_cost, None if cost is None else cost["usd_95"][1])]
    return [f"{flag} {limit:g} is below the forecast's upper bound ({needed:,.2f}): the run "
            f"may stop at the budget before {prediction['target']} usable tasks"
            for flag, limit, needed in checks
            if limit is not None and needed is not None and needed > limit]
