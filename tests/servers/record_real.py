"""Record real exchanges with the embedded model into tests/fixtures/recorded_real.jsonl.

Why: the ``recorded`` style of the test server (tests/servers/recorded.py) replays what a real
model wrote for our own prompts, so parsers and the pipeline are tested against real answers,
not only against our idea of them. This script makes those recordings: it starts the embedded
SmolLM2-135M-Instruct through llama.cpp (``selfinstruct.local_model``, a free loopback port),
renders our prompts (``prompts/en`` and ``prompts/ja``) for every prompt kind from a few
different samples of ``seeds/en_general.jsonl`` and ``seeds/ja_general.jsonl``, sends them
through the real ``openai`` client in chat and completions mode with the sampling parameters
the pipeline uses for the embedded model (``selfinstruct.engine.dispatch.Dispatcher.params``,
``_self_instruct_request``, ``_alpaca_request``, ``classification_request``,
``instance_request``; ``selfinstruct.quality`` for judge and label), and writes one JSON line
per exchange: kind, lang, api, prompt, params, answer, finish_reason, usage, model.

Re-record (30-60 minutes on a busy 2-core machine; needs the ``local`` extra)::

    .venv/bin/python -m tests.servers.record_real [--per-kind 4] [--out PATH]

Exchanges are appended to ``PATH.partial`` as they come; run the same command again after an
interruption and it continues there. PATH is replaced only when all exchanges are in.

The samples are drawn from a fixed seed, so a re-recording asks the same questions; the
answers change only if the model, llama.cpp or the prompts change. If the pipeline's sampling
parameters change, update :func:`pipeline_request` to match and re-record.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from selfinstruct.local_model import LocalModelServer
from selfinstruct.prompts import PromptSet
from selfinstruct.recipes.alpaca import Alpaca
from selfinstruct.seeds import SeedTask, load_seeds
from tests.servers.recorded import FIXTURE

ROOT = Path(__file__).resolve().parents[2]
SEED_FILES = {"en": ROOT / "seeds" / "en_general.jsonl", "ja": ROOT / "seeds" / "ja_general.jsonl"}
KINDS = ("bootstrap", "alpaca", "classify", "instances_input_first", "instances_output_first",
         "judge", "label")
APIS = ("chat", "completions")
# The direct-answer mode (prompts/*/answer.j2: the bare instruction, sent through chat) has no
# header to recognise; the replay serves these answers to prompts of no known kind.
ANSWER_KIND = "answer"
ANSWERS_PER_LANGUAGE = 3


def _line(text: str) -> str:
    """The pipeline's one-line form of an in-context instruction
    (recipes.base.prompt_instruction)."""
    return " ".join(text.split()).rstrip(":")


def _instance_examples(tasks: Sequence[SeedTask], classification: bool,
                       rng: random.Random) -> list[dict[str, Any]]:
    pool = [t for t in tasks if t.instances and bool(t.is_classification) == classification]
    picked = rng.sample(pool, min(len(pool), 3))
    return [{"instruction": _line(t.instruction),
             "instances": [{"input": i.input, "output": i.output} for i in t.instances[:2]]}
            for t in picked]


def pipeline_request(kind: str, prompts: PromptSet, tasks: Sequence[SeedTask],
              rng: random.Random, api: str) -> tuple[str, dict[str, Any]]:
    """``(prompt, params)`` of one request of ``kind``, as the pipeline builds it (embedded)."""
    labels = prompts.labels
    seed = {"seed": rng.randrange(2**31)}
    if kind == "bootstrap":
        in_context = [_line(t.instruction) for t in rng.sample(list(tasks), min(8, len(tasks)))]
        stop_at = len(in_context) + 1 + 7
        stop = ([f"\n{stop_at}.", f"{stop_at}."] if api == "chat"
                else ["\n\n", f"\n{stop_at}", f"{stop_at}.", f"{stop_at} ."])
        return prompts.render("bootstrap", instructions=in_context), {
            "max_tokens": 256, "temperature": 0.7, "top_p": 0.5, "presence_penalty": 2.0,
            "stop": stop, **seed}
    if kind == "alpaca":
        with_instances = [t for t in tasks if t.instances]
        shown = [{"instruction": _line(t.instruction), "input": t.instances[0].input,
                  "output": t.instances[0].output} for t in rng.sample(with_instances, 3)]
        return prompts.render("alpaca", num_tasks=20, tasks=shown), {
            "max_tokens": 1024, "temperature": 1.0, "top_p": 1.0,
            "stop": ["\n20", "20.", "20 ."], **seed}
    target = rng.choice([t for t in tasks if t.instances])
    if kind == "classify":
        yes = [t for t in tasks if t.is_classification is True and t is not target]
        no = [t for t in tasks if t.is_classification is False and t is not target]
        examples = rng.sample(yes, min(len(yes), 6)) + rng.sample(no, min(len(no), 6))
        rng.shuffle(examples)
        return prompts.render("classify", examples=examples, instruction=target.instruction), {
            "max_tokens": 5, "temperature": 0.0, "top_p": 0.0,
            "stop": ["\n", f"{labels.task}:"], **seed}
    if kind in ("instances_input_first", "instances_output_first"):
        classification = kind == "instances_output_first"
        pool = [t for t in tasks if bool(t.is_classification) == classification] or list(tasks)
        target = rng.choice(pool)
        shots = _instance_examples([t for t in tasks if t is not target], classification, rng)
        prompt = prompts.render(kind, examples=shots, instruction=target.instruction) + "\n"
        return prompt, {"max_tokens": 200, "temperature": 0.0, "top_p": 0.0,
                        "stop": [f"{labels.example} 6", f"{labels.task}:"], **seed}
    if kind == ANSWER_KIND:
        return prompts.render(ANSWER_KIND, instruction=target.instruction), {
            "max_tokens": 512, "temperature": 0.0, "top_p": 1.0, **seed}
    instance = rng.choice(target.instances)
    if kind == "judge":
        return prompts.render("judge", instruction=target.instruction, input=instance.input,
                              output=instance.output), {
            "max_tokens": 32, "temperature": 0.0, "top_p": 1.0, **seed}
    options = sorted({i.output for i in target.instances}) if target.is_classification else []
    return prompts.render("label", instruction=target.instruction, input=instance.input,
                          options=options if len(options) > 1 else []), {
        "max_tokens": 16, "temperature": 0.7, "top_p": 1.0, "stop": ["\n"], **seed}


def _plan(per_kind: int) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """Every ``(lang, api, kind, prompt, params)`` to record, from a fixed sampling seed."""
    for lang in ("en", "ja"):
        prompts = PromptSet(lang, extra_templates=Alpaca.templates)
        tasks = load_seeds(SEED_FILES[lang]).tasks
        for api in APIS:
            for kind in KINDS:
                rng = random.Random(f"{lang}:{api}:{kind}")
                for _ in range(per_kind):
                    prompt, params = pipeline_request(kind, prompts, tasks, rng, api)
                    yield lang, api, kind, prompt, params
    for lang in ("en", "ja"):  # last, so a fixture of the kinds above can be extended
        rng = random.Random(f"{lang}:chat:{ANSWER_KIND}")
        for _ in range(ANSWERS_PER_LANGUAGE):
            prompt, params = pipeline_request(ANSWER_KIND, PromptSet(lang),
                                              load_seeds(SEED_FILES[lang]).tasks, rng, "chat")
            yield lang, "chat", ANSWER_KIND, prompt, params


def _ask(client: Any, model: str, api: str, prompt: str, params: dict[str, Any]) -> Any:
    if api == "chat":
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], **params)
    return client.completions.create(model=model, prompt=prompt, **params)


def record(out: Path, per_kind: int, restarts: int = 3) -> int:
    """Ask the embedded model every planned question and write the fixture; returns a count.

    Exchanges go to ``<out>.partial`` as they come, and the plan is deterministic, so a run
    that was interrupted (or whose llama.cpp child died: it is restarted up to ``restarts``
    times) continues where it stopped. ``out`` is replaced only when every exchange is in.
    """
    import openai

    partial = out.with_name(out.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    plan = list(_plan(per_kind))
    done = len(partial.read_text(encoding="utf-8").splitlines()) if partial.exists() else 0
    while done < len(plan):
        try:
            with LocalModelServer() as server, partial.open("a", encoding="utf-8") as sink:
                client = openai.OpenAI(base_url=server.base_url, api_key="local",
                                       max_retries=0, timeout=600)
                for lang, api, kind, prompt, params in plan[done:]:
                    started = time.monotonic()
                    reply = _ask(client, server.model, api, prompt, params)
                    choice = reply.choices[0]
                    answer = choice.message.content if api == "chat" else choice.text
                    sink.write(json.dumps({
                        "kind": kind, "lang": lang, "api": api, "prompt": prompt,
                        "params": params, "answer": answer,
                        "finish_reason": choice.finish_reason,
                        "usage": reply.usage.model_dump() if reply.usage is not None else None,
                        "model": server.model,
                    }, ensure_ascii=False) + "\n")
                    sink.flush()
                    done += 1
                    print(f"{done}/{len(plan)} {lang} {api:<11} {kind:<22} "
                          f"{time.monotonic() - started:5.1f} s {len(answer or '')} chars",
                          file=sys.stderr, flush=True)
        except openai.APIConnectionError:
            if restarts <= 0:
                raise
            restarts -= 1
            print("the model server went away; restarting it", file=sys.stderr, flush=True)
    partial.replace(out)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.record_real",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=4,
                        help="exchanges per kind x language x API (default 4)")
    parser.add_argument("--out", type=Path, default=FIXTURE, help="the fixture to write")
    args = parser.parse_args(argv)
    count = record(args.out, args.per_kind)
    print(f"wrote {count} exchanges to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
