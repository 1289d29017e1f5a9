"""The generation pipeline: bootstrap rounds, classification, instances, the dataset version.

`Generator` holds one run's state and exposes coarse steps — a bootstrap round, a batch of
classification or instance requests, writing the version — as plain methods. `run()` loops
over them for the CLI; the Prefect flow calls the very same methods as tasks, so the two
paths cannot diverge.

Determinism is a design rule, because resume depends on it: all randomness comes from one
`random.Random(seed)`, requests are issued and their answers processed in a fixed order, and
every request carries a stable nonce (round and slot, or task id). Replaying the journal's
answers therefore rebuilds exactly the same pool, and the run continues where it stopped.

The two recipes:

* ``self-instruct`` (Wang et al. 2022): prompts list 6 human + 2 machine instructions and ask
  for more; new instructions pass heuristic filters and the exact ROUGE-L novelty check against
  seeds + pool; then each is classified (classification task or not) and gets instances,
  output-first for classification tasks so labels are balanced, input-first otherwise.
* ``alpaca`` (Taori et al. 2023): one request yields up to 20 (instruction, input, output)
  items from 3 seed examples; instructions go through the same filters and novelty check.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from selfinstruct import __version__
from selfinstruct.config import GenerateConfig
from selfinstruct.filters import Drop, filter_instances, first_drop, instruction_filters
from selfinstruct.journal import Journal
from selfinstruct.llm import Completion, LLMClient, Request, Usage
from selfinstruct.parsing import (
    ParsedInstance,
    parse_alpaca,
    parse_instances,
    parse_numbered_list,
    parse_yes_no,
)
from selfinstruct.prompts import PromptSet, sha256_text
from selfinstruct.seeds import SeedSet, SeedTask
from selfinstruct.similarity import NoveltyIndex


@dataclass
class Task:
    """An accepted machine-generated instruction and what is learnt about it later."""

    id: str
    instruction: str
    round: int
    prompt_hash: str
    request_id: str | None
    most_similar: list[dict[str, Any]]
    avg_similarity: float | None
    is_classification: bool | None = None
    instances: list[ParsedInstance] = field(default_factory=list)
    instance_prompt_hash: str | None = None


@dataclass
class Funnel:
    """Candidates in, kept, and drops by reason, per stage (the manifest's funnel)."""

    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, stage: str, drop: str | None = None) -> None:
        entry = self.stages.setdefault(stage, {"in": 0, "kept": 0, "drops": {}})
        entry["in"] += 1
        if drop is None:
            entry["kept"] += 1
        else:
            entry["drops"][drop] = entry["drops"].get(drop, 0) + 1

    def drops(self) -> dict[str, int]:
        """All drop reasons across stages, for the progress display."""
        totals: dict[str, int] = {}
        for entry in self.stages.values():
            for reason, n in entry["drops"].items():
                totals[reason] = totals.get(reason, 0) + n
        return totals


class BudgetExhausted(Exception):
    """The run reached --max-requests/--max-tokens/--max-cost; its journal stays resumable."""


def _prompt_instruction(text: str) -> str:
    """Self-Instruct's normalisation of an in-context instruction (one line, no ':' end)."""
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


class Generator:
    """One run: state plus the coarse steps that advance it."""

    def __init__(
        self,
        config: GenerateConfig,
        seeds: SeedSet,
        prompts: PromptSet,
        client: LLMClient,
        journal: Journal,
        *,
        run_id: str,
        endpoint_kind: str,
    ) -> None:
        import random

        self.config = config
        self.seeds = seeds
        self.prompts = prompts
        self.client = client
        self.journal = journal
        self.run_id = run_id
        self.endpoint_kind = endpoint_kind
        self.rng = random.Random(config.seed)
        self.language = config.language or "en"
        self.filters = instruction_filters(self.language)
        self.index = NoveltyIndex(threshold=config.similarity_threshold or 0.7,
                                  language=self.language)
        for task in seeds.tasks:
            self.index.add(_prompt_instruction(task.instruction))
        self.tasks: list[Task] = []
        self.rejected: list[dict[str, Any]] = []
        self.funnel = Funnel()
        self.usage = Usage()
        self.round = 0
        self.generation_requests = 0
        self.stalled_rounds = 0
        self.started_at = time.time()
        self.on_progress: Callable[[Generator, str], None] | None = None
        self._clf_examples = self._classification_examples()
        self._instance_examples = {
            flag: self._pick_instance_examples(flag) for flag in (False, True)
        }

    # -- state ---------------------------------------------------------------------------

    @property
    def target(self) -> int:
        return self.config.num_instructions

    @property
    def bootstrapping_done(self) -> bool:
        return (
            len(self.tasks) >= self.target
            or self.round >= self.config.max_rounds
            or self.stalled_rounds >= self.config.stall_rounds
        )

    @property
    def stop_reason(self) -> str:
        if len(self.tasks) >= self.target:
            return "target reached"
        if self.stalled_rounds >= self.config.stall_rounds:
            return f"no new instruction in {self.stalled_rounds} rounds in a row"
        if self.round >= self.config.max_rounds:
            return f"max rounds ({self.config.max_rounds}) reached"
        return "stopped before the target"

    def _progress(self, stage: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self, stage)

    # -- requests --------------------------------------------------------------------------

    def _params(self, stage: str, **extra: Any) -> dict[str, Any]:
        embedded = self.config.embedded
        defaults = {
            "bootstrap": 256 if embedded else 1024,
            "classify": 5,
            "instances": 200 if embedded else 350,
            "alpaca": 1024 if embedded else 3072,
        }
        max_tokens = self.config.stage_max_tokens.get(stage, defaults[stage])
        return {"max_tokens": max_tokens, **extra}

    def _request(self, stage: str, prompt: str, params: dict[str, Any], nonce: str) -> Request:
        """Build a request with a sampling seed derived from the run seed and the nonce.

        OpenAI, vLLM, Ollama and llama.cpp honour `seed` (best effort), which makes a rerun
        with the same --seed reproduce the same answers where the server can.
        """
        digest = hashlib.sha256(f"{self.config.seed}:{nonce}".encode()).hexdigest()
        return Request(stage, prompt, {**params, "seed": int(digest[:8], 16) % 2**31}, nonce)

    def complete(self, requests: list[Request]) -> list[Completion]:
        """Answer requests from the journal where possible, else from the endpoint.

        Each fresh answer is journaled (fsync) the moment it arrives, before it is used.
        """
        model, api = self.client.model, self.client.api
        keys = [r.key(model, api) for r in requests]
        answers: list[Completion | None] = [self.journal.answer(k) for k in keys]
        for request, answer in zip(requests, answers, strict=True):
            if answer is not None:
                self.usage.record(request.stage, answer, cached=True)
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            self._check_budget(len(missing))
            def durable(j: int, completion: Completion) -> None:
                i = missing[j]
                self.journal.record_answer(keys[i], requests[i].stage, completion)

            fresh = self.client.run_batch([requests[i] for i in missing], on_result=durable)
            for i, completion in zip(missing, fresh, strict=True):
                answers[i] = completion
                self.usage.record(requests[i].stage, completion, cached=False)
        return [a for a in answers if a is not None]

    @property
    def price(self) -> dict[str, float] | None:
        if self.config.embedded:
            return {"input": 0.0, "output": 0.0}
        return self.config.prices.get(self.client.model)

    def _check_budget(self, wanted: int) -> None:
        """Refuse to send a batch that would cross a budget (whole run, resumes included).

        Requests are checked before sending, so --max-requests is never exceeded; tokens and
        cost are only known afterwards, so those stop at the first batch after the limit.
        """
        cfg, usage = self.config, self.usage
        if cfg.max_requests is not None and usage.run_requests + wanted > cfg.max_requests:
            raise BudgetExhausted(f"--max-requests {cfg.max_requests}: {usage.run_requests} "
                                  f"sent, the next batch needs {wanted}")
        if cfg.max_tokens is not None and usage.total_tokens >= cfg.max_tokens:
            raise BudgetExhausted(f"--max-tokens {cfg.max_tokens}: {usage.total_tokens} used")
        cost = usage.cost(self.price)
        if cfg.max_cost is not None and cost is not None and cost >= cfg.max_cost:
            raise BudgetExhausted(f"--max-cost {cfg.max_cost}: ${cost:.4f} spent")

    def _reject(self, stage: str, drop: Drop, *, instruction: str = "", input: str | None = None,
                output: str | None = None, prompt_hash: str | None = None,
                request_id: str | None = None) -> None:
        self.funnel.count(stage, drop.reason)
        self.rejected.append({
            "stage": stage, "reason": drop.reason, "instruction": instruction, "input": input,
            "output": output, "detail": drop.detail, "prompt_hash": prompt_hash,
            "request_id": request_id,
        })

    def _request_failed(self, stage: str, request: Request, completion: Completion) -> bool:
        if completion.error is None:
            return False
        kind, _, message = completion.error.partition(":")
        self._reject("request", Drop(kind, message.strip()), prompt_hash=sha256_text(
            request.prompt))
        return True

    # -- bootstrap -------------------------------------------------------------------------

    def bootstrap_round(self) -> int:
        """Send one round of generation requests; return how many instructions were accepted."""
        self.round += 1
        before = len(self.tasks)
        if self.config.recipe == "alpaca":
            self._alpaca_round()
        else:
            self._self_instruct_round()
        accepted = len(self.tasks) - before
        self.journal.sync()
        self.stalled_rounds = 0 if accepted else self.stalled_rounds + 1
        self._progress("bootstrap")
        return accepted

    def _round_size(self) -> int:
        """Requests for this round: full rounds, but no more than the target still needs.

        Sized from the yield so far (accepted per request, with a 25% margin) so the last
        round does not pay for answers that could only end as "over_target". It depends only
        on the run's history, so it is as deterministic as the rest.
        """
        full = self.config.requests_per_round or 1
        if not self.generation_requests or not self.tasks:
            return full
        per_request = len(self.tasks) / self.generation_requests
        needed = math.ceil(1.25 * (self.target - len(self.tasks)) / per_request)
        return max(1, min(full, needed))

    def _self_instruct_round(self) -> None:
        cfg = self.config
        seed_texts = [_prompt_instruction(t.instruction) for t in self.seeds.tasks]
        requests, first_numbers = [], []
        for slot in range(self._round_size()):
            machine = self.rng.sample(self.tasks, min(cfg.machine_examples, len(self.tasks)))
            wanted = cfg.seed_examples + cfg.machine_examples - len(machine)
            human = self.rng.sample(seed_texts, min(wanted, len(seed_texts)))
            examples = [_prompt_instruction(t.instruction) for t in machine] + human
            self.rng.shuffle(examples)
            first = len(examples) + 1
            stop_at = first + 7  # at most 7 new items per answer, as in Self-Instruct
            stop = ([f"\n{stop_at}.", f"{stop_at}."] if cfg.api == "chat"
                    else ["\n\n", f"\n{stop_at}", f"{stop_at}.", f"{stop_at} ."])
            params = self._params("bootstrap", temperature=0.7, top_p=0.5,
                                  presence_penalty=2.0, stop=stop)
            prompt = self.prompts.render("bootstrap", instructions=examples)
            requests.append(self._request("bootstrap", prompt, params,
                                          f"round{self.round}-{slot}"))
            first_numbers.append(first)
        self.generation_requests += len(requests)
        for request, completion, first in zip(requests, self.complete(requests), first_numbers,
                                              strict=True):
            if self._request_failed("bootstrap", request, completion):
                continue
            prompt_hash = sha256_text(request.prompt)
            items = parse_numbered_list(
                completion.text, first, continuation=cfg.api == "completions",
                truncated=completion.finish_reason == "length",
            )
            for item in items:
                self._consider(item.text, item.reason, prompt_hash, completion.request_id)

    def _alpaca_round(self) -> None:
        cfg = self.config
        with_instances = [t for t in self.seeds.tasks if t.instances]
        requests, first_numbers = [], []
        for slot in range(self._round_size()):
            picked = self.rng.sample(with_instances, min(cfg.alpaca_examples, len(with_instances)))
            shown = [{"instruction": _prompt_instruction(t.instruction),
                      "input": t.instances[0].input, "output": t.instances[0].output}
                     for t in picked]
            prompt = self.prompts.render("alpaca", num_tasks=cfg.alpaca_tasks, tasks=shown)
            n = cfg.alpaca_tasks
            params = self._params("alpaca", temperature=1.0, top_p=1.0,
                                  stop=[f"\n{n}", f"{n}.", f"{n} ."])
            requests.append(self._request("alpaca", prompt, params, f"round{self.round}-{slot}"))
            first_numbers.append(len(shown) + 1)
        self.generation_requests += len(requests)
        for request, completion, first in zip(requests, self.complete(requests), first_numbers,
                                              strict=True):
            if self._request_failed("alpaca", request, completion):
                continue
            prompt_hash = sha256_text(request.prompt)
            items = parse_alpaca(
                completion.text, self.prompts.labels, first,
                continuation=cfg.api == "completions",
                truncated=completion.finish_reason == "length",
            )
            for item in items:
                task = self._consider(item.instruction, item.reason, prompt_hash,
                                      completion.request_id)
                if task is not None:
                    task.instance_prompt_hash = prompt_hash
                    self._keep_instances(task, [ParsedInstance(item.input, item.output)],
                                         completion.request_id)

    def _consider(self, text: str, parse_reason: str | None, prompt_hash: str,
                  request_id: str | None) -> Task | None:
        """Run one candidate instruction through parse check, filters, target and novelty."""
        where = {"instruction": text, "prompt_hash": prompt_hash, "request_id": request_id}
        if parse_reason is not None:
            self._reject("parse", Drop(parse_reason), **where)
            return None
        self.funnel.count("parse")
        if self.language == "en" and text[:1].islower():
            text = text[0].upper() + text[1:]  # Self-Instruct capitalises the first letter
            where["instruction"] = text
        drop = first_drop(self.filters, text)
        if drop is not None:
            self._reject("filter", drop, **where)
            return None
        self.funnel.count("filter")
        if len(self.tasks) >= self.target:
            # Judged by nothing: the run already has its N instructions.
            self._reject("target", Drop("over_target", "the run had reached its target"), **where)
            return None
        verdict = self.index.check(text)
        if not verdict.novel:
            detail = (f"rouge_l={verdict.score:.4f} > {self.index.threshold} "
                      f"vs {verdict.neighbour!r}")
            self._reject("novelty", Drop("too_similar", detail), **where)
            return None
        self.funnel.count("novelty")
        neighbours = [{"instruction": t, "score": s} for t, s in self.index.most_similar(text, 10)]
        task = Task(
            id=f"task-{len(self.tasks) + 1:06d}", instruction=text, round=self.round,
            prompt_hash=prompt_hash, request_id=request_id, most_similar=neighbours,
            avg_similarity=self.index.mean_similarity(text) if len(self.index) else None,
        )
        self.index.add(text)
        self.tasks.append(task)
        self._note_accepted(task)
        return task

    def _note_accepted(self, task: Task) -> None:
        earlier = self.journal.accepted.get(task.id)
        if earlier is not None and earlier != task.instruction:
            raise RuntimeError(
                f"{self.journal.path}: replay accepted {task.instruction!r} as {task.id}, but "
                f"the journal recorded {earlier!r}: the seeds, prompts or selfinstruct changed "
                f"since this run started — start a new run instead of resuming")
        self.journal.record_accepted(task.id, task.instruction)

    # -- classification and instances ------------------------------------------------------

    def _classification_examples(self) -> list[SeedTask]:
        """A fixed, balanced few-shot set for the Yes/No prompt (same for every task)."""
        k = self.config.classify_examples
        yes = [t for t in self.seeds.tasks if t.is_classification is True]
        no = [t for t in self.seeds.tasks if t.is_classification is False]
        picked = self.rng.sample(yes, min(len(yes), k // 2))
        picked += self.rng.sample(no, min(len(no), k - len(picked)))
        self.rng.shuffle(picked)
        return picked

    def _pick_instance_examples(self, classification: bool) -> list[dict[str, Any]]:
        """Few-shot tasks for instance prompts: at most 2 instances each, to keep prompts short."""
        pool = [t for t in self.seeds.tasks
                if t.instances and bool(t.is_classification) == classification]
        picked = self.rng.sample(pool, min(len(pool), self.config.instance_examples))
        return [{"instruction": _prompt_instruction(t.instruction),
                 "instances": [{"input": i.input, "output": i.output} for i in t.instances[:2]]}
                for t in picked]

    def batches(self, tasks: list[Task]) -> Iterator[list[Task]]:
        """Coarse batches of tasks: one progress update / one Prefect task each."""
        size = max(16, 4 * (self.config.concurrency or 1))
        for start in range(0, len(tasks), size):
            yield tasks[start:start + size]

    def classify_batch(self, tasks: list[Task]) -> None:
        """Ask whether each task is a classification task (few-shot Yes/No, temperature 0)."""
        if self.config.recipe == "alpaca":
            return  # Alpaca's one-step items carry no such label
        labels = self.prompts.labels
        requests = [
            self._request("classify",
                    self.prompts.render("classify", examples=self._clf_examples,
                                        instruction=t.instruction),
                    self._params("classify", temperature=0.0, top_p=0.0,
                                 stop=["\n", f"{labels.task}:"]),
                    f"classify-{t.id}")
            for t in tasks
        ]
        for task, request, completion in zip(tasks, requests, self.complete(requests),
                                             strict=True):
            if self._request_failed("classify", request, completion):
                task.is_classification = False
                continue
            verdict = parse_yes_no(completion.text, labels)
            # An unreadable verdict is not a reason to lose the task: treat it as generation.
            self.funnel.count("classify", None if verdict is not None else "unreadable_verdict")
            task.is_classification = bool(verdict)
        self._progress("classify")

    def instances_batch(self, tasks: list[Task]) -> None:
        """Generate instances: output-first for classification tasks, input-first otherwise."""
        if self.config.recipe == "alpaca":
            return  # instances came with the instructions
        labels = self.prompts.labels
        requests = []
        for task in tasks:
            name = "instances_output_first" if task.is_classification else "instances_input_first"
            prompt = self.prompts.render(
                name, examples=self._instance_examples[bool(task.is_classification)],
                instruction=task.instruction) + "\n"
            params = self._params("instances", temperature=0.0, top_p=0.0,
                                  stop=[f"{labels.example} 6", f"{labels.task}:"])
            requests.append(self._request("instances", prompt, params, f"instances-{task.id}"))
        for task, request, completion in zip(tasks, requests, self.complete(requests),
                                             strict=True):
            task.instance_prompt_hash = sha256_text(request.prompt)
            if self._request_failed("instances", request, completion):
                continue
            parsed = parse_instances(completion.text, labels,
                                     output_first=bool(task.is_classification),
                                     truncated=completion.finish_reason == "length")
            self._keep_instances(task, parsed, completion.request_id)
        self._progress("instances")

    def _keep_instances(self, task: Task, parsed: list[ParsedInstance],
                        request_id: str | None = None) -> None:
        kept, dropped = filter_instances(parsed, self.config.max_instances)
        for inst, drop in dropped:
            self._reject("instance_filter", drop, instruction=task.instruction, input=inst.input,
                         output=inst.output, prompt_hash=task.instance_prompt_hash,
                         request_id=request_id)
        for _ in kept:
            self.funnel.count("instance_filter")
        task.instances = kept
        if not kept:
            self._reject("instances", Drop("no_valid_instances"), instruction=task.instruction,
                         prompt_hash=task.instance_prompt_hash, request_id=request_id)
        else:
            self.funnel.count("instances")

    # -- output ----------------------------------------------------------------------------

    def train_rows(self) -> list[dict[str, Any]]:
        rows = []
        for task in self.tasks:
            for k, inst in enumerate(task.instances):
                rows.append({
                    "id": f"{task.id}-{k}",
                    "task_id": task.id,
                    "instruction": task.instruction,
                    "input": inst.input,
                    "output": inst.output,
                    "is_classification": task.is_classification,
                    "provenance": {
                        "model": self.client.model,
                        "prompt_hash": task.prompt_hash,
                        "instance_prompt_hash": task.instance_prompt_hash,
                        "request_id": task.request_id,
                        "round": task.round,
                        "most_similar": task.most_similar,
                        "avg_similarity": task.avg_similarity,
                    },
                })
        return rows

    def manifest(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "dataset": cfg.dataset,
            "recipe": cfg.recipe,
            "language": self.language,
            "model": self.client.model,
            "endpoint_kind": self.endpoint_kind,
            "api": cfg.api,
            "demo_quality": cfg.embedded,
            "config": cfg.to_public(),
            "seeds": {"path": str(self.seeds.path), "sha256": self.seeds.sha256,
                      "tasks": len(self.seeds.tasks)},
            "prompts": dict(self.prompts.template_hashes),
            "funnel": self.funnel.stages,
            "usage": {name: vars(s).copy() for name, s in self.usage.stages.items()},
            "cost_usd": self.usage.cost(self.price),
            "request_errors": dict(self.usage.errors),
            "target": {"instructions": self.target, "accepted": len(self.tasks),
                       "reached": len(self.tasks) >= self.target,
                       "stop_reason": self.stop_reason, "rounds": self.round},
            "license": cfg.license,
            "run_id": self.run_id,
            "generator": f"selfinstruct {__version__}",
            "started_at": _iso(self.started_at),
            "finished_at": _iso(time.time()),
        }

    def write_version(self) -> str:
        """Write the immutable version folder and mark the run finished; return its path.

        Idempotent per run: if a crash came between the folder's atomic rename and the
        journal's "finished" event, the resumed run finds its version instead of writing a
        second one.
        """
        from selfinstruct.dataset import list_versions, read_manifest, write_version

        dataset_dir = self.config.data_dir / self.config.dataset
        for name in reversed(list_versions(dataset_dir)):
            if read_manifest(dataset_dir / name).get("run_id") == self.run_id:
                path = dataset_dir / name
                break
        else:
            path = write_version(dataset_dir, self.train_rows(), self.rejected, self.manifest())
        self.journal.record_finished(str(path))
        return str(path)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def direct(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a step in-process (the CLI path)."""
    return fn(*args)


def run(gen: Generator, step: Callable[..., Any] = direct) -> str:
    """The whole job, in the only order it runs; returns the version folder's path.

    `step(name, fn, *args)` executes each coarse step: `direct` for the CLI, a Prefect task
    wrapper for the flow — one loop, two executors.
    """
    while not gen.bootstrapping_done:
        step("bootstrap-round", gen.bootstrap_round)
    for batch in gen.batches(gen.tasks):
        step("classify-batch", gen.classify_batch, batch)
    for batch in gen.batches(gen.tasks):
        step("instances-batch", gen.instances_batch, batch)
    return step("write-version", gen.write_version)
