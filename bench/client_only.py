"""The request path alone: our `LLMClient` against the bare `openai` SDK, on one server.

Why a separate measurement: a pipeline run mixes the client's cost with everything else
(parsing, filters, the novelty index, stage gaps). Here the same requests go to the same
loopback server (its own process, a fixed latency) three ways, in one process and one run, so
the figures are ratios that survive a loaded machine:

* the bound: concurrency / latency requests per second (an endpoint kept exactly full);
* the bare SDK: ``AsyncOpenAI.chat.completions.create`` on its default client, ``max_retries=0``
  (what any user of the package gets: pydantic objects and all);
* ours: `LLMClient.run_batch` (retries, cool-down, the body cap and parsing included).

Each configuration runs `repeats` times, alternating SDK and ours, and the medians are shown;
the load average is printed beside them because the machine may be shared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass

import openai

from selfinstruct.llm import LLMClient, Request

PROMPT = "Reply with one short sentence about the sea."  # the server's cheap generic kind
MAX_TOKENS, TEMPERATURE = 32, 0.7
TIMEOUT = 60.0  # seconds, both clients
PARAMS = {"max_tokens": MAX_TOKENS, "temperature": TEMPERATURE}


@dataclass(frozen=True)
class Sample:
    """One timed batch: wall seconds and this process's CPU seconds for `requests`."""

    requests: int
    wall: float
    cpu: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.requests


def _prompts(n: int, salt: str) -> list[str]:
    # Distinct bodies, so nothing can be served from a cache on either side.
    return [f"{PROMPT} ({salt}-{i})" for i in range(n)]


def sdk_batch(base_url: str, n: int, concurrency: int, salt: str) -> Sample:
    """`n` chat requests through the bare SDK, at most `concurrency` in flight."""

    async def main() -> int:
        # The same 60 s as ours: the SDK's 5 s connect timeout fails runs on a loaded machine.
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0,
                                    timeout=TIMEOUT)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> bool:
            async with semaphore:
                reply = await client.chat.completions.create(
                    model="test-model", messages=[{"role": "user", "content": prompt}],
                    max_tokens=MAX_TOKENS, temperature=TEMPERATURE)
                return bool(reply.choices[0].message.content)

        try:
            answered = await asyncio.gather(*(one(p) for p in _prompts(n, salt)))
        finally:
            await client.close()
        return n - sum(answered)

    cpu, wall = time.process_time(), time.perf_counter()
    errors = asyncio.run(main())
    return Sample(n, time.perf_counter() - wall, time.process_time() - cpu, errors)


def ours_batch(base_url: str, n: int, concurrency: int, salt: str) -> Sample:
    """`n` requests through `LLMClient.run_batch` (the client made and closed inside, as the
    SDK's is, so both sides pay for opening their connections)."""
    requests = [Request("bench", p, PARAMS, "n") for p in _prompts(n, salt)]
    cpu, wall = time.process_time(), time.perf_counter()
    with LLMClient(base_url=base_url, api_key="bench", model="test-model", api="chat",
                   concurrency=concurrency, timeout=TIMEOUT) as client:
        answers = client.run_batch(requests)
    errors = sum(1 for a in answers if a.error or not a.text)
    return Sample(n, time.perf_counter() - wall, time.process_time() - cpu, errors)


def client_phase(base_url: str, latency_ms: float, levels: tuple[int, ...], requests: int,
                 repeats: int) -> dict[int, dict[str, float]]:
    """Print and return, per concurrency, the medians of SDK and ours against the bound."""
    print(f"== client only: LLMClient vs the bare openai SDK ({openai.__version__}), "
          f"latency {latency_ms:.0f} ms, median of {repeats}, {os.cpu_count()} cores, "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())} ==")
    print(f"{'conc':>5} {'requests':>8} {'bound/s':>8} {'SDK/s':>7} {'ours/s':>7} "
          f"{'SDK of bound':>12} {'ours of bound':>13} {'ours/SDK':>8} "
          f"{'SDK CPU ms/req':>14} {'ours CPU ms/req':>15}")
    results = {}
    for concurrency in levels:
        n = max(requests, 10 * concurrency)  # >= 2 s at the bound: ramp-up is a small part
        bound = concurrency / (latency_ms / 1000)
        sdk: list[Sample] = []
        ours: list[Sample] = []
        for repeat in range(repeats):
            salt = f"{concurrency}-{repeat}"
            sdk.append(sdk_batch(base_url, n, concurrency, salt))
            ours.append(ours_batch(base_url, n, concurrency, salt))
        errors = sum(s.errors for s in sdk + ours)
        row = {
            "bound": bound,
            "sdk_rate": statistics.median(s.rate for s in sdk),
            "ours_rate": statistics.median(s.rate for s in ours),
            "sdk_cpu_ms": statistics.median(s.cpu_ms for s in sdk),
            "ours_cpu_ms": statistics.median(s.cpu_ms for s in ours),
            "errors": errors,
        }
        results[concurrency] = row
        print(f"{concurrency:>5} {n:>8} {bound:>8.0f} {row['sdk_rate']:>7.0f} "
              f"{row['ours_rate']:>7.0f} {row['sdk_rate'] / bound:>12.1%} "
              f"{row['ours_rate'] / bound:>13.1%} {row['ours_rate'] / row['sdk_rate']:>8.2f} "
              f"{row['sdk_cpu_ms']:>14.2f} {row['ours_cpu_ms']:>15.2f}"
              + (f"  ({errors} errors)" if errors else ""), flush=True)
    print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return results
