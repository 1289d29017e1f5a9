"""A small version of bench/crash_resume.py: SIGKILL real runs mid-way, resume, compare."""

from bench.crash_resume import run_trials


def test_killed_runs_resume_without_loss_or_repeats():
    # Early (bootstrap), middle (classification/instances) and late kills.
    results = run_trials(3, n=60, seed=3, latency_ms=60, fractions=[0.35, 0.6, 0.85])
    assert all(t.ok for t in results), [t.problems for t in results]
    assert sum(not t.finished_before_kill for t in results) >= 2
