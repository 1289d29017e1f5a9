"""What ``selfinstruct compare`` writes: compare.json, compare.md and pairs.jsonl.

compare.json holds the numbers (counts, both win rates with their intervals, the GLM's
weights, usage) for scripts; compare.md says the same for people, with the method and a few
example verdicts; pairs.jsonl has one line per compared instruction (both answers' lengths,
the winner or why there is none, the judge's reason, the request ids), so any number can be
traced to the verdicts behind it. Each file is replaced atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.fileio import atomic_write
from selfinstruct.pairwise import Winner
from selfinstruct.winrate import RESAMPLES, extreme_change, win_rates

if TYPE_CHECKING:
    from selfinstruct.cli_compare import Pair

METHOD = ("Each pair is judged twice, A/B and B/A; a winner must win both orders, a "
          "disagreement is a tie. Win rate = (wins + ties / 2) / judged. Length-controlled "
          "win rate: AlpacaEval 2's GLM (Dubois et al. 2024, arXiv:2404.04475), "
          "P(A preferred) = sigmoid(theta + phi * tanh(d / sd(d))) with d the difference in "
          "characters, fitted on the verdicts (ties as 1/2, L2 penalty 0.01), reported at "
          "d = 0, without AlpacaEval's instruction-difficulty term. 95% intervals: percentile "
          "bootstrap over instructions.")


LC_WARNING = ("the length-controlled win rate is far from the raw one (AlpacaEval's rule: "
              "over 10 points and a quarter of the way to 0 or 100): with few pairs, or one "
              "side longer in nearly every pair, the length model extrapolates to equal "
              "lengths it never saw — trust it less")


@dataclass(frozen=True)
class Outcome:
    """One compared instruction: its pair, the winner ("a", "b", "tie" or None), the judge's
    reason and what happened, the ids of the two judge answers and the position each order
    chose ("first", "second", "tie" or None; empty when the judge was not asked)."""

    pair: Pair
    winner: Winner | None
    rationale: str
    detail: str
    request_ids: tuple[str | None, ...]
    positions: tuple[str | None, ...] = ()


def write_report(output: Path, outcomes: Sequence[Outcome], *, a: str, b: str, judge: str,
                 endpoint: str, usage: dict[str, Any], seed: int) -> dict[str, Any]:
    """Write the three files into `output`; return compare.json's content."""
    judged = [o for o in outcomes if o.winner is not None]
    report: dict[str, Any] = {
        "a": a, "b": b, "judge_model": judge, "endpoint": endpoint,
        "compared": len(outcomes),
        "judged": len(judged), "unjudged": len(outcomes) - len(judged),
        "method": METHOD, "usage": usage,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report["judge_positions"] = _positions(outcomes)
    if judged:
        rates = win_rates([o.winner for o in judged if o.winner is not None],
                          [len(o.pair.answer_a) for o in judged],
                          [len(o.pair.answer_b or "") for o in judged],
                          resamples=RESAMPLES, seed=seed)
        report.update({
            "wins": rates.wins, "ties": rates.ties, "losses": rates.losses,
            "win_rate": rates.win_rate, "win_rate_ci95": list(rates.win_rate_ci),
            "lc_win_rate": rates.lc_win_rate, "lc_win_rate_ci95": list(rates.lc_win_rate_ci),
            "glm": {"theta": rates.theta, "phi": rates.phi},
            "bootstrap": {"resamples": rates.resamples, "seed": rates.seed},
            "lc_warning": LC_WARNING if extreme_change(rates.win_rate, rates.lc_win_rate)
            else None,
        })
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "pairs.jsonl", "".join(
        json.dumps(_pair_row(o), ensure_ascii=False) + "\n" for o in outcomes))
    atomic_write(output / "compare.json",
                 json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    atomic_write(output / "compare.md", _markdown(report, outcomes))
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The result in a few lines (what the command prints)."""
    lines = [f"A: {report['a']}", f"B: {report['b']}", f"judge: {report['judge_model']}",
             f"compared {report['compared']} instructions: {report['judged']} judged, "
             f"{report['unjudged']} without a verdict (see pairs.jsonl)"]
    usage = report["usage"]
    requests = sum(stage["requests"] for stage in usage["stages"].values())
    tokens = sum(stage["prompt_tokens"] + stage["completion_tokens"]
                 for stage in usage["stages"].values())
    cost = "n/a (no price)" if usage.get("cost_usd") is None else f"${usage['cost_usd']:.4f}"
    lines.append(f"{requests} requests sent, {tokens} tokens, cost {cost}")
    if report["judged"]:
        lines += [f"A wins {report['wins']}, ties {report['ties']}, B wins {report['losses']}",
                  f"win rate of A over B: {_rate(report, 'win_rate')}",
                  f"length-controlled win rate: {_rate(report, 'lc_win_rate')}"]
        if report["lc_warning"]:
            lines.append(f"note: {report['lc_warning']}")
    positions = report["judge_positions"]
    if positions["choices"]:
        lines.append(f"position bias: the judge chose the answer shown first in "
                     f"{positions['first_shown_chosen']} of {positions['choices']} answers "
                     f"({100 * positions['first_rate']:.0f}%; 50% is none); both orders agreed "
                     f"on {positions['orders_agree']} of {positions['both_orders_read']} pairs")
    return lines


def _positions(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """How the judge itself behaved: how often it named the answer shown first (0.5 is no
    position preference), and how often its two orders agreed on the same answer."""
    chosen = [p for o in outcomes for p in o.positions if p in ("first", "second")]
    both = [o.positions for o in outcomes
            if len(o.positions) == 2 and None not in o.positions]
    agree = sum(1 for ab, ba in both if (ab, ba) in (("first", "second"), ("second", "first"),
                                                     ("tie", "tie")))
    return {"first_shown_chosen": sum(p == "first" for p in chosen), "choices": len(chosen),
            "first_rate": sum(p == "first" for p in chosen) / len(chosen) if chosen else None,
            "orders_agree": agree, "both_orders_read": len(both),
            "consistency": agree / len(both) if both else None}


def _rate(report: dict[str, Any], name: str) -> str:
    low, high = report[f"{name}_ci95"]
    return f"{100 * report[name]:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}%)"


def _pair_row(outcome: Outcome) -> dict[str, Any]:
    pair = outcome.pair
    return {"instruction": pair.instruction, "input": pair.input,
            "answer_a_chars": len(pair.answer_a),
            "answer_b_chars": None if pair.answer_b is None else len(pair.answer_b),
            "winner": outcome.winner, "rationale": outcome.rationale,
            "detail": outcome.detail, "request_ids": list(outcome.request_ids),
            "positions": list(outcome.positions)}


def _markdown(report: dict[str, Any], outcomes: Sequence[Outcome]) -> str:
    lines = ["# Pairwise comparison", "", *(f"- {line}" for line in summary_lines(report)), "",
             "## Method", "", METHOD, ""]
    examples = [o for o in outcomes if o.winner in ("a", "b")][:5]
    if examples:
        lines += ["## Example verdicts", "", "| instruction | winner | judge's reason |",
                  "| --- | --- | --- |"]
        lines += [f"| {_cell(o.pair.instruction)} | {str(o.winner).upper()} | "
                  f"{_cell(o.rationale)} |" for o in examples]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split())[:120].replace("|", "\\|")
