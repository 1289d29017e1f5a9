"""Every request stage on Dask workers: a 2-worker LocalCluster vs in-process, two endpoints.

Two loopback test servers (fixed latency) serve the same model; the same job runs through the
`generate_dataset` flow three ways, all against both endpoints (an endpoint pool):

1. in-process (the flow's own process sends every request) — the baseline;
2. `task_runner="dask"` on a `LocalCluster` of 2 worker processes: every stage's requests go
   to the workers in batches (`<stage>-answers` task runs), each worker answering through a
   pool of both endpoints;
3. the CLI without Prefect, for the orchestration overhead.

Printed: wall time of each as a ratio to the baseline, the Prefect task runs per stage on the
workers, and whether the rows equal the baseline's. Runs under Prefect's test harness (a
temporary local API), so it needs no Prefect server.

    python bench/dask_scale.py [--instructions 200] [--latency-ms 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.versions import rows_without_request_ids as rows
from tests.servers.openai_server import start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from distributed import LocalCluster
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    from selfinstruct.cli import main as cli
    from selfinstruct.orchestration.generate import generate_dataset

    print(f"machine: {os.cpu_count()} cores; {args.instructions} instructions, "
          f"{args.latency_ms:g} ms latency, 2 endpoints, concurrency {args.concurrency} each")
    with tempfile.TemporaryDirectory() as tmp, \
            start_server(latency_ms=args.latency_ms) as first, \
            start_server(latency_ms=args.latency_ms) as second, \
            prefect_test_harness(server_startup_timeout=120):
        def config(name: str) -> dict:
            return {"seeds": "seeds/en_general.jsonl", "dataset": name,
                    "num_instructions": args.instructions, "data_dir": tmp,
                    "base_url": first.base_url, "model": "test-model", "seed": 5,
                    "concurrency": args.concurrency,
                    "endpoints": [{"base_url": second.base_url}]}

        started = time.perf_counter()
        local = generate_dataset(config=config("local"))
        base = time.perf_counter() - started
        print(f"in-process flow:        {base:7.1f} s  (baseline)")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            started = time.perf_counter()
            state = generate_dataset(config=config("dask"), task_runner="dask",
                                     dask_address=cluster.scheduler_address,
                                     return_state=True)
            remote = state.result()
            elapsed = time.perf_counter() - started

        async def task_names() -> Counter[str]:
            async with get_client() as client:
                runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
            return Counter(run.name.split("-answers")[0] + "-answers" for run in runs
                           if "-answers" in run.name)

        import asyncio

        names = asyncio.run(task_names())
        print(f"dask, 2 workers:        {elapsed:7.1f} s  ({elapsed / base:.2f} x baseline); "
              f"task runs {dict(sorted(names.items()))}; rows equal baseline: "
              f"{rows(remote) == rows(local)}")
        command = ["generate", "--seeds", "en_general", "--dataset", "cli", "--num-instructions",
                   str(args.instructions), "--data-dir", tmp, "--model", "test-model",
                   "--seed", "5", "--concurrency", str(args.concurrency), "--no-progress",
                   "--base-url", first.base_url, "--base-url", second.base_url]
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = cli(command)
        direct = time.perf_counter() - started
        version = out.getvalue().strip().splitlines()[-1] if code == 0 else ""
        print(f"CLI, no Prefect:        {direct:7.1f} s  ({direct / base:.2f} x baseline); "
              f"rows equal baseline: {code == 0 and rows(version) == rows(local)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
