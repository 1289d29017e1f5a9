"""Win rates of pairwise verdicts: raw, length-controlled, with bootstrap confidence intervals.

**Win rate.** Each judged pair scores 1 when answer A wins, 0.5 for a tie, 0 when B wins; the
win rate of A over B is the mean score (AlpacaEval counts ties as half a win the same way).

**Length-controlled (LC) win rate** — the method of AlpacaEval 2 (Dubois, Galambosi, Liang,
Hashimoto 2024, "Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators",
arXiv:2404.04475). LLM judges prefer longer answers, so a model can raise its win rate by
writing more without writing better. The paper fits a generalized linear model of the judge's
preference with the length difference as a mediator and reports the preference predicted with
that difference set to zero: "what would the win rate be if both answers were equally long?".
We fit

    P(A preferred) = sigmoid(theta + phi * tanh(d / sd(d))),   d = len(A) - len(B) in characters

by maximum likelihood on soft labels (the scores above: a tie is half a win and half a loss),
with a small L2 penalty (lambda = 0.01 on the summed log-loss, i.e. scikit-learn's C = 100,
the C AlpacaEval's code uses when it does not cross-validate) so that a one-sided comparison
(every pair won) still has a finite fit. ``sd`` is the sample standard deviation of the
differences, as in AlpacaEval's code; characters, not words, so Japanese is measured the same
way. The LC win rate is ``sigmoid(theta)``, the prediction at ``d = 0``.

What we leave out, honestly: AlpacaEval's GLM also has an instruction-difficulty term
estimated from a fixed panel of many models on its 805 instructions, and regularises towards
its baseline's weights. With two answer sets on our own instructions there is no panel to
estimate difficulty from, so the model above is the paper's GLM without that term; it removes
the part of the preference that the length difference explains and nothing else. With equal
lengths everywhere the length term vanishes and the LC win rate is the raw win rate (up to
the small penalty).

**Confidence intervals**: a percentile bootstrap over instructions — resample the judged
pairs with replacement (numpy's PCG64 generator with a fixed seed, so the interval is the
same on every run), recompute both rates (refitting the GLM), take the 2.5th and 97.5th
percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SCORES: dict[str, float] = {"a": 1.0, "tie": 0.5, "b": 0.0}
PENALTY = 0.01  # L2 on the GLM weights (scikit-learn C = 100)
RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
_MAX_NEWTON_STEPS = 100

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WinRates:
    """Counts and rates of A over B (rates in [0, 1]); intervals are (low, high)."""

    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_ci: tuple[float, float]
    lc_win_rate: float
    lc_win_rate_ci: tuple[float, float]
    theta: float  # the GLM's intercept: logit of the LC win rate
    phi: float  # the GLM's weight on the length difference (> 0: the judge likes length)
    resamples: int
    seed: int

    @property
    def judged(self) -> int:
        return self.wins + self.ties + self.losses


def scores(outcomes: Sequence[str]) -> FloatArray:
    """1 / 0.5 / 0 per outcome ("a", "tie", "b"): the soft label of "A preferred"."""
    unknown = sorted(set(outcomes) - set(SCORES))
    if unknown:
        raise ValueError(f"unknown outcome {unknown[0]!r}: expected 'a', 'b' or 'tie'")
    return np.array([SCORES[o] for o in outcomes], dtype=np.float64)


def length_feature(len_a: npt.ArrayLike, len_b: npt.ArrayLike) -> FloatArray:
    """tanh(d / sd(d)) for d = len(A) - len(B); all zeros when sd is 0 or undefined."""
    delta = np.asarray(len_a, dtype=np.float64) - np.asarray(len_b, dtype=np.float64)
    spread = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    if not spread > 0:
        return np.zeros_like(delta)
    return np.tanh(delta / spread)


def fit_glm(y: FloatArray, x: FloatArray, penalty: float = PENALTY) -> tuple[float, float]:
    """(theta, phi) minimising the summed log-loss of sigmoid(theta + phi x) on soft labels
    `y`, plus ``penalty / 2 * (theta^2 + phi^2)``: Newton's method with step halving.

    The loss is convex, so Newton converges from 0 in a few steps; a pseudo-inverse keeps a
    zero feature column (all lengths equal) from making the Hessian singular when the
    penalty is 0.
    """
    design = np.column_stack([np.ones_like(x), x])
    weights = np.zeros(2)

    def loss(w: FloatArray) -> float:
        z = design @ w
        # log(1 + e^z) - y z: the log-loss of sigmoid(z) against y, written stably.
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + penalty / 2 * w @ w)

    current = loss(weights)
    for _ in range(_MAX_NEWTON_STEPS):
        p = _sigmoid(design @ weights)
        gradient = design.T @ (p - y) + penalty * weights
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty * np.eye(2)
        step = np.linalg.pinv(hessian) @ gradient
        scale = 1.0
        while scale > 1e-8:
            candidate = weights - scale * step
            if (value := loss(candidate)) <= current:
                break
            scale /= 2
        else:
            break
        weights, previous, current = candidate, current, value
        if previous - current < 1e-12 and float(np.max(np.abs(scale * step))) < 1e-10:
            break
    return float(weights[0]), float(weights[1])


def lc_win_rate(y: FloatArray, x: FloatArray, penalty: float = PENALTY) -> float:
    """The GLM's predicted preference at zero length difference: sigmoid(theta)."""
    theta, _ = fit_glm(y, x, penalty)
    return float(_sigmoid(np.array([theta]))[0])


def win_rates(outcomes: Sequence[str], len_a: Sequence[int], len_b: Sequence[int], *,
              resamples: int = RESAMPLES, seed: int = SEED,
              penalty: float = PENALTY) -> WinRates:
    """Counts, win rate and LC win rate of A over B with percentile bootstrap intervals."""
    if not outcomes:
        raise ValueError("no judged pair: a win rate needs at least one verdict")
    if not len(outcomes) == len(len_a) == len(len_b):
        raise ValueError("outcomes and lengths must have the same number of pairs")
    y = scores(outcomes)
    lengths_a = np.asarray(len_a, dtype=np.float64)
    lengths_b = np.asarray(len_b, dtype=np.float64)
    theta, phi = fit_glm(y, length_feature(lengths_a, lengths_b), penalty)
    rng = np.random.default_rng(seed)
    raw, controlled = [], []
    for _ in range(resamples):
        pick = rng.integers(0, len(y), size=len(y))
        raw.append(float(y[pick].mean()))
        controlled.append(lc_win_rate(y[pick], length_feature(lengths_a[pick],
                                                               lengths_b[pick]), penalty))
    return WinRates(
        wins=int(np.sum(y == 1.0)), ties=int(np.sum(y == 0.5)), losses=int(np.sum(y == 0.0)),
        win_rate=float(y.mean()), win_rate_ci=_percentiles(raw),
        lc_win_rate=float(_sigmoid(np.array([theta]))[0]),
        lc_win_rate_ci=_percentiles(controlled), theta=theta, phi=phi,
        resamples=resamples, seed=seed)


def extreme_change(win_rate: float, lc: float) -> bool:
    """Whether the LC win rate moved implausibly far from the raw one (rates in [0, 1]).

    AlpacaEval's own check (``get_is_extreme_changes``: more than 10 points and more than a
    quarter of the way to 0 or 100) for "this might be a failure of the GLM": with few pairs,
    or one side longer in every pair, the fit extrapolates to equal lengths from data that
    has none.
    """
    raw, new = 100 * win_rate, 100 * lc
    return new < min(raw - raw / 4, raw - 10) or new > max(raw + (100 - raw) / 4, raw + 10)


def _percentiles(values: list[float]) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(np.asarray(values), [tail, 1 - tail])
    return float(low), float(high)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.exp(-np.logaddexp(0.0, -z))
