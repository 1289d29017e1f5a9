"""Several endpoints in one run, one of them killed mid-run: does the run lose anything?

Two loopback test servers (in this process, fixed latency) serve the same model. Three runs
of the same job (same seed, so the same answers wherever they come from):

1. one endpoint — the baseline;
2. both endpoints — requests spread by outstanding load, so the wall time should approach
   half the baseline's when the endpoints, not this process, are the limit;
3. both endpoints, the second behind the adversarial proxy's "die" mode, which stops it for
   good at its `--kill-at`-th request: the pool benches it and the first carries on.

Printed: wall time of each run as a ratio to the baseline, requests per endpoint, errors and
bench counts of the dead one, and whether each run's rows equal the baseline's ("no loss").

    python bench/multi_endpoint.py [--instructions 200] [--latency-ms 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.versions import rows_without_request_ids as rows
from selfinstruct.cli import main as cli
from tests.servers.adversarial_proxy import Plan, start_proxy
from tests.servers.openai_server import start_server


def run(data_dir: Path, urls: list[str], args: argparse.Namespace) -> tuple[float, Path]:
    # One look-ahead for every run (two endpoints would default to twice one's), so the
    # prompts, and therefore the rows, are the same whichever endpoints answer.
    data_dir.mkdir(parents=True)
    config = data_dir / "run.toml"
    config.write_text(f"lookahead = {2 * args.concurrency}\n")
    command = ["generate", "--seeds", "en_general", "--dataset", "bench",
               "--num-instructions", str(args.instructions), "--data-dir", str(data_dir),
               "--model", "test-model", "--seed", "5", "--concurrency",
               str(args.concurrency), "--no-progress", "--config", str(config)]
    for url in urls:
        command += ["--base-url", url]
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli(command)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"run failed with exit code {code}")
    return elapsed, Path(out.getvalue().strip().splitlines()[-1])



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="per endpoint (each endpoint gets this many in flight)")
    parser.add_argument("--kill-at", type=int, default=40,
                        help="the dying endpoint stops at its k-th request")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.instructions} instructions, "
          f"{args.latency_ms:g} ms latency, concurrency {args.concurrency} per endpoint")
    with tempfile.TemporaryDirectory() as tmp, \
            start_server(latency_ms=args.latency_ms) as first, \
            start_server(latency_ms=args.latency_ms) as second:
        base, baseline = run(Path(tmp) / "one", [first.base_url], args)
        print(f"1 endpoint:             {base:7.1f} s  (baseline)")
        both, pooled = run(Path(tmp) / "two", [first.base_url, second.base_url], args)
        manifest = json.loads((pooled / "manifest.json").read_text())
        spread = [e["requests"] for e in manifest["endpoints"]]
        print(f"2 endpoints:            {both:7.1f} s  ({both / base:.2f} x baseline); "
              f"requests {spread}; rows equal baseline: {rows(pooled) == rows(baseline)}")
        with start_proxy(second, Plan(by_number={args.kill_at: "die"})) as dying:
            killed, survived = run(Path(tmp) / "killed", [first.base_url, dying.base_url], args)
        manifest = json.loads((survived / "manifest.json").read_text())
        alive, dead = manifest["endpoints"]
        failed = manifest["funnel"]["answers"]["drops"]
        print(f"2, one killed at #{args.kill_at}: {killed:7.1f} s  ({killed / base:.2f} x "
              f"baseline); requests {[alive['requests'], dead['requests']]}; dead endpoint "
              f"errors {dead['errors']}, benched {dead['times_benched']} x; failed answers "
              f"{failed or 'none'}; rows equal baseline: {rows(survived) == rows(baseline)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
