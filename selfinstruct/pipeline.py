"""The generation pipeline: bootstrap rounds, classification, instances, the dataset version.

`Generator` holds one run's state and exposes coarse steps — a bootstrap round, a batch of
classification or instance answers, writing the version — as plain methods. `run()` loops
over them for the CLI; the Prefect flow calls the very same methods as tasks, so the two
paths cannot diverge.

Determinism is a design rule, because resume depends on it: all randomness comes from one
`random.Random(seed)`, every request carries a stable nonce, and answers are used strictly in
the order requests were issued (`window.Lookahead`). Replaying the journal's answers therefore
rebuilds exactly the same pool, and the run continues where it stopped.

Throughput: up to `concurrency` requests stay in flight across round and batch boundaries.
Generation request j is built from the state after answer j − K was used (K = concurrency):
the pool it samples machine examples from lags by at most K answers, fixed by the count of
answers used, not by timing. Classification and instance requests do not depend on each
other, so they run ahead by up to 2K.

The two recipes:

* ``self-instruct`` (Wang et al. 2022): prompts list 6 human + 2 machine instructions and ask
  for more; new instructions pass heuristic filters and the exact ROUGE-L novelty check against
  seeds + pool; then each is classified (classification task or not) and gets instances,
  output-first for classification tasks so labels are balanced, input-first otherwise.
* ``alpaca`` (Taori et al. 2023): one request yields up to 20 (instruction, input, output)
  items from 3 seed examples; instructions go through the same filters and novelty check.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from selfinstruct import __version__
from selfinstruct.batch_api import batch_price
from selfinstruct.config import GenerateConfig
from selfinstruct.filters import (
    Drop,
    filter_instances,
    first_drop,
    instruction_filters,
    mask_pii,
)
from selfinstruct.journal import Journal
from selfinstruct.llm import Client, Completion, Request, Usage
from selfinstruct.parsing import (
    ParsedInstance,
    parse_alpaca,
    parse_instances,
    parse_numbered_list,
    parse_yes_no,
)
from selfinstruct.prompts import PromptSet, sha256_text
from selfinstruct.quality import Item, check_label_consistency, judge
from selfinstruct.records import Funnel, Task
from selfinstruct.seeds import SeedSet, SeedTask
from selfinstruct.similarity import NoveltyIndex
from selfinstruct.window import InFlight, Lookahead


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
        client: Client,
        journal: Journal,
        *,
        run_id: str,
        endpoint_kind: str,
        judge_client: Client | None = None,
    ) -> None:
        self.config = config
        self.seeds = seeds
        self.prompts = prompts
        self.client = client
        self.journal = journal
        self.run_id = run_id
        self.endpoint_kind = endpoint_kind
        self.rng = random.Random(config.seed)
        self.judge_client = judge_client or client
        self.language = config.language or "en"
        self.filter_settings = config.filters
        self.filters = instruction_filters(self.language, settings=self.filter_settings)
        self.index = NoveltyIndex(threshold=config.similarity_threshold or 0.7,
                                  language=self.language)
        self._seed_texts = [_prompt_instruction(t.instruction) for t in seeds.tasks]
        for text in self._seed_texts:
            self.index.add(text)
        self.tasks: list[Task] = []
        self.rejected: list[dict[str, Any]] = []
        self.funnel = Funnel()
        self.usage = Usage()
        self.round = 0
        self.stalled_rounds = 0
        self.requests_issued = 0  # journal-answered included: the whole run's requests
        self.budget_stop: str | None = None
        self.started_at = time.time()
        self.on_progress: Callable[[Generator, str], None] | None = None
        concurrency = config.concurrency or 1
        self._generation = Lookahead(depth=concurrency)
        self._generation_issued = 0
        self._generation_used = 0
        self._stage_windows = {stage: Lookahead(depth=2 * concurrency)
                               for stage in ("classify", "instances")}
        self._stage_cursors = {stage: 0 for stage in self._stage_windows}
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

    @property
    def price(self) -> dict[str, float] | None:
        """USD per 1M tokens for this run's answers (Batch API answers at their discount)."""
        if self.config.embedded:
            return {"input": 0.0, "output": 0.0}
        price = self.config.prices.get(self.client.model)
        return batch_price(price) if self.client.describe().get("batch") else price

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

    def _budget_refusal(self) -> str | None:
        """Why one more request may not be sent, if a budget says so.

        Requests are counted when issued, so --max-requests is never exceeded; tokens and
        cost are known only once answers arrive, so those stop at the first request after
        the limit (overshooting by at most the requests already in flight).
        """
        cfg, usage = self.config, self.usage
        if cfg.max_requests is not None and self.requests_issued >= cfg.max_requests:
            return f"--max-requests {cfg.max_requests}: {self.requests_issued} sent"
        if cfg.max_tokens is not None and usage.total_tokens >= cfg.max_tokens:
            return f"--max-tokens {cfg.max_tokens}: {usage.total_tokens} used"
        cost = usage.cost(self.price)
        if cfg.max_cost is not None and cost is not None and cost >= cfg.max_cost:
            return f"--max-cost {cfg.max_cost}: ${cost:.4f} spent"
        return None

    def _issue(self, request: Request, context: Any = None,
               client: Client | None = None) -> InFlight | None:
        """Answer from the journal, or start the request; None when a budget forbids it."""
        client = client or self.client
        key = request.key(client.model, client.api)
        cached = self.journal.take_answer(key)
        if cached is not None:
            future: concurrent.futures.Future[Completion] = concurrent.futures.Future()
            future.set_result(cached)
            self.requests_issued += 1
            return InFlight(request, context, future, cached=True)
        refusal = self._budget_refusal()
        if refusal is not None:
            self.budget_stop = refusal
            return None
        self.requests_issued += 1
        durable: concurrent.futures.Future[Completion] = concurrent.futures.Future()

        def arrived(sent: concurrent.futures.Future[Completion]) -> None:
            # Runs on the client's thread; the answer is usable once the journal has it.
            error = sent.exception()
            if error is not None:
                durable.set_exception(error)
                return
            completion = sent.result()
            self.journal.record_answer(key, request.stage, completion,
                                       then=lambda: durable.set_result(completion), keep=False)

        client.submit(request).add_done_callback(arrived)
        return InFlight(request, context, durable, cached=False)

    def _used(self, item: InFlight, completion: Completion) -> Completion:
        self.usage.record(item.request.stage, completion, cached=item.cached)
        return completion

    @property
    def in_flight(self) -> int:
        """Requests issued and not yet used (some may already be answered)."""
        return sum(len(w) for w in (self._generation, *self._stage_windows.values()))

    def settle(self, timeout: float | None = None) -> None:
        """Let requests in flight finish (journaled) before the run stops early."""
        for window in (self._generation, *self._stage_windows.values()):
            window.settle(timeout)

    def _stop_for_budget(self, *windows: Lookahead) -> None:
        for window in windows:
            window.settle()  # answers already paid for reach the journal first
        raise BudgetExhausted(self.budget_stop)

    def complete(self, requests: list[Request],
                 client: Client | None = None) -> list[Completion]:
        """Answer a list of requests (journal first), in order; for stages that need all
        answers of a batch at once. `client`: another model (the judge)."""
        window = Lookahead(depth=len(requests) or 1)
        for request in requests:
            item = self._issue(request, client=client)
            if item is None:
                self._stop_for_budget(window)
            window.push(item)
        answers = []
        while window:
            item, completion = window.pop()
            answers.append(self._used(item, completion))
        return answers

    def _reject(self, stage: str, drop: Drop, *, instruction: str = "", input: str | None = None,
                output: str | None = None, prompt_hash: str | None = None,
                request_id: str | None = None) -> None:
        self.funnel.count(stage, drop.reason)
        self.rejected.append({
            "stage": stage, "reason": drop.reason, "instruction": instruction, "input": input,
            "output": output, "detail": drop.detail, "prompt_hash": prompt_hash,
            "request_id": request_id,
        })

    def _request_failed(self, request: Request, completion: Completion) -> bool:
        if completion.error is None:
            return False
        kind, _, message = completion.error.partition(":")
        self._reject("request", Drop(kind, message.strip()),
                     prompt_hash=sha256_text(request.prompt))
        return True

    # -- bootstrap -------------------------------------------------------------------------

    def bootstrap_round(self) -> int:
        """Use the next `requests_per_round` generation answers; return how many were kept.

        New requests are issued as answers are used, so the endpoint stays busy across
        rounds. When bootstrapping ends, answers still in flight are used too (they were
        paid for): their candidates are recorded as over the target.
        """
        self.round += 1
        before = len(self.tasks)
        for _ in range(self.config.requests_per_round or 1):
            self._fill_generation_window()
            if not self._generation:
                break
            item, completion = self._generation.pop()
            self._generation_used += 1
            self._apply_generation(item, self._used(item, completion))
        accepted = len(self.tasks) - before
        self.stalled_rounds = 0 if accepted else self.stalled_rounds + 1
        if self.bootstrapping_done:
            while self._generation:
                item, completion = self._generation.pop()
                self._apply_generation(item, self._used(item, completion))
        self.journal.sync()
        self._progress("bootstrap")
        if self.budget_stop and not self._generation and not self.bootstrapping_done:
            self._stop_for_budget()
        return accepted

    def _fill_generation_window(self) -> None:
        while not self._generation.full and self._want_generation():
            cfg = self.config
            nonce = f"gen-{self._generation_issued}"
            if cfg.recipe == "alpaca":
                request, first = self._alpaca_request(nonce)
            else:
                request, first = self._self_instruct_request(nonce)
            item = self._issue(request, first)
            if item is None:
                return
            self._generation_issued += 1
            self._generation.push(item)

    def _want_generation(self) -> bool:
        """Issue another generation request only if the target may still need it.

        Sized from the yield so far (accepted per answer, with a 25% margin) so the end of
        bootstrapping does not pay for answers that could only be "over_target". It depends
        only on the answers used so far, so it is as deterministic as the rest.
        """
        remaining = self.target - len(self.tasks)
        if remaining <= 0 or self.bootstrapping_done:
            return False
        max_requests = self.config.max_rounds * (self.config.requests_per_round or 1)
        if self._generation_issued >= max_requests:
            return False
        if not self._generation_used or not self.tasks:
            return True
        per_answer = len(self.tasks) / self._generation_used
        return len(self._generation) < math.ceil(1.25 * remaining / per_answer)

    def _self_instruct_request(self, nonce: str) -> tuple[Request, int]:
        cfg = self.config
        machine = self.rng.sample(self.tasks, min(cfg.machine_examples, len(self.tasks)))
        wanted = cfg.seed_examples + cfg.machine_examples - len(machine)
        human = self.rng.sample(self._seed_texts, min(wanted, len(self._seed_texts)))
        examples = [_prompt_instruction(t.instruction) for t in machine] + human
        self.rng.shuffle(examples)
        first = len(examples) + 1
        stop_at = first + 7  # at most 7 new items per answer, as in Self-Instruct
        stop = ([f"\n{stop_at}.", f"{stop_at}."] if cfg.api == "chat"
                else ["\n\n", f"\n{stop_at}", f"{stop_at}.", f"{stop_at} ."])
        params = self._params("bootstrap", temperature=0.7, top_p=0.5,
                              presence_penalty=2.0, stop=stop)
        prompt = self.prompts.render("bootstrap", instructions=examples)
        return self._request("bootstrap", prompt, params, nonce), first

    def _alpaca_request(self, nonce: str) -> tuple[Request, int]:
        cfg = self.config
        with_instances = [t for t in self.seeds.tasks if t.instances]
        picked = self.rng.sample(with_instances, min(cfg.alpaca_examples, len(with_instances)))
        shown = [{"instruction": _prompt_instruction(t.instruction),
                  "input": t.instances[0].input, "output": t.instances[0].output}
                 for t in picked]
        prompt = self.prompts.render("alpaca", num_tasks=cfg.alpaca_tasks, tasks=shown)
        n = cfg.alpaca_tasks
        params = self._params("alpaca", temperature=1.0, top_p=1.0,
                              stop=[f"\n{n}", f"{n}.", f"{n} ."])
        return self._request("alpaca", prompt, params, nonce), len(shown) + 1

    def _apply_generation(self, item: InFlight, completion: Completion) -> None:
        request, first = item.request, item.context
        if self._request_failed(request, completion):
            return
        prompt_hash = sha256_text(request.prompt)
        continuation = self.config.api == "completions"
        truncated = completion.finish_reason == "length"
        if self.config.recipe != "alpaca":
            for parsed in parse_numbered_list(completion.text, first, continuation=continuation,
                                              truncated=truncated):
                self._consider(parsed.text, parsed.reason, prompt_hash, completion.request_id)
            return
        for task_item in parse_alpaca(completion.text, self.prompts.labels, first,
                                      continuation=continuation, truncated=truncated):
            task = self._consider(task_item.instruction, task_item.reason, prompt_hash,
                                  completion.request_id)
            if task is not None:
                task.instance_prompt_hash = prompt_hash
                task.instance_request_id = completion.request_id
                self._keep_instances(task, [ParsedInstance(task_item.input, task_item.output)])

    def _consider(self, text: str, parse_reason: str | None, prompt_hash: str,
                  request_id: str | None) -> Task | None:
        """Run one candidate instruction through parse check, filters, target and novelty."""
        where = {"instruction": text, "prompt_hash": prompt_hash, "request_id": request_id}
        if parse_reason is not None:
            self._reject("parse", Drop(parse_reason), **where)
            return None
        self.funnel.count("parse")
        text = mask_pii(text, self.filter_settings)  # a no-op unless pii = "mask"
        where["instruction"] = text
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
        neighbours = self.index.most_similar(text, 10)
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

    def batches(self, tasks: list[Task]) -> list[list[Task]]:
        """Coarse batches of tasks: one progress update / one Prefect task each."""
        size = max(16, 4 * (self.config.concurrency or 1))
        return [tasks[start:start + size] for start in range(0, len(tasks), size)]

    def classification_request(self, task: Task) -> Request:
        """The few-shot Yes/No request for one task (temperature 0)."""
        labels = self.prompts.labels
        prompt = self.prompts.render("classify", examples=self._clf_examples,
                                     instruction=task.instruction)
        params = self._params("classify", temperature=0.0, top_p=0.0,
                              stop=["\n", f"{labels.task}:"])
        return self._request("classify", prompt, params, f"classify-{task.id}")

    def apply_classification(self, task: Task, request: Request, completion: Completion) -> None:
        if self._request_failed(request, completion):
            task.is_classification = False
            return
        verdict = parse_yes_no(completion.text, self.prompts.labels)
        # An unreadable verdict is not a reason to lose the task: treat it as generation.
        self.funnel.count("classify", None if verdict is not None else "unreadable_verdict")
        task.is_classification = bool(verdict)

    def instance_request(self, task: Task) -> Request:
        """Output-first for classification tasks (balanced labels), input-first otherwise."""
        labels = self.prompts.labels
        name = "instances_output_first" if task.is_classification else "instances_input_first"
        prompt = self.prompts.render(
            name, examples=self._instance_examples[bool(task.is_classification)],
            instruction=task.instruction) + "\n"
        params = self._params("instances", temperature=0.0, top_p=0.0,
                              stop=[f"{labels.example} 6", f"{labels.task}:"])
        return self._request("instances", prompt, params, f"instances-{task.id}")

    def apply_instances(self, task: Task, request: Request, completion: Completion) -> None:
        task.instance_prompt_hash = sha256_text(request.prompt)
        task.instance_request_id = completion.request_id
        if self._request_failed(request, completion):
            return
        parsed = parse_instances(completion.text, self.prompts.labels,
                                 output_first=bool(task.is_classification),
                                 truncated=completion.finish_reason == "length")
        self._keep_instances(task, parsed)

    def classify_batch(self, tasks: list[Task]) -> None:
        """Ask whether each task is a classification task (few-shot Yes/No)."""
        if self.config.recipe != "alpaca":  # Alpaca's one-step items carry no such label
            self._stage_batch("classify", tasks, self.classification_request,
                              self.apply_classification)
        self._progress("classify")

    def instances_batch(self, tasks: list[Task]) -> None:
        """Generate and filter the instances of each task."""
        if self.config.recipe != "alpaca":  # instances came with the instructions
            self._stage_batch("instances", tasks, self.instance_request, self.apply_instances)
        self._progress("instances")

    def _stage_batch(self, stage: str, tasks: list[Task], build: Callable[[Task], Request],
                     apply: Callable[[Task, Request, Completion], None]) -> None:
        """Use the answers for `tasks`, issuing requests for later tasks ahead of time.

        Batches must come in task order (as `run` and the flow pass them): the window runs
        ahead over `self.tasks`, across batch boundaries, so the endpoint never idles between
        batches.
        """
        window = self._stage_windows[stage]
        for task in tasks:
            while not window.full and self._stage_cursors[stage] < len(self.tasks):
                ahead = self.tasks[self._stage_cursors[stage]]
                item = self._issue(build(ahead), ahead)
                if item is None:
                    break
                window.push(item)
                self._stage_cursors[stage] += 1
            if not window:
                self._stop_for_budget()
            item, completion = window.pop()
            if item.context is not task:
                raise RuntimeError(f"{stage} batches must be used in task order")
            apply(task, item.request, self._used(item, completion))
        self.journal.sync()

    def _keep_instances(self, task: Task, parsed: list[ParsedInstance]) -> None:
        kept, dropped = filter_instances(parsed, self.config.max_instances,
                                         instruction=task.instruction, language=self.language,
                                         settings=self.filter_settings)
        for inst, drop in dropped:
            self._reject("instance_filter", drop, instruction=task.instruction, input=inst.input,
                         output=inst.output, prompt_hash=task.instance_prompt_hash,
                         request_id=task.instance_request_id)
        for _ in kept:
            self.funnel.count("instance_filter")
        task.instances = kept
        if not kept:
            self._reject("instances", Drop("no_valid_instances"), instruction=task.instruction,
                         prompt_hash=task.instance_prompt_hash,
                         request_id=task.instance_request_id)
        else:
            self.funnel.count("instances")

    # -- LLM quality checks ----------------------------------------------------------------

    @property
    def quality_checks(self) -> bool:
        return self.filter_settings.consistency or self.filter_settings.judge_model is not None

    def quality_batch(self, tasks: list[Task]) -> None:
        """Label consistency (classification tasks), then the LLM judge, for these tasks.

        Both cost requests, so both are opt-in ([filters] consistency / --judge-model). Their
        answers are journaled like every other, so a resumed run does not pay twice.
        """
        settings = self.filter_settings
        if settings.consistency:
            checked = [t for t in tasks if t.is_classification and t.instances]
            verdicts = check_label_consistency(
                _items(checked), prompts=self.prompts, make_request=self._request,
                complete=self.complete, settings=settings)
            self._apply_verdicts("consistency", checked, verdicts)
        if settings.judge_model is not None:
            judged = [t for t in tasks if t.instances]
            results = judge(
                _items(judged), prompts=self.prompts, make_request=self._request,
                complete=lambda requests: self.complete(requests, client=self.judge_client),
                settings=settings)
            scores = iter([(r.clarity, r.correctness) for r in results])
            for task in judged:
                task.scores = [next(scores) for _ in task.instances]
            self._apply_verdicts("judge", judged, [r.drop for r in results])
        self.journal.sync()
        self._progress("quality")

    def _apply_verdicts(self, stage: str, tasks: list[Task], verdicts: list[Drop | None]) -> None:
        """Keep the instances whose verdict is None; record the others as rejected."""
        verdict = iter(verdicts)
        for task in tasks:
            kept, kept_scores = [], []
            for k, inst in enumerate(task.instances):
                drop = next(verdict)
                if drop is None:
                    self.funnel.count(stage)
                    kept.append(inst)
                    kept_scores.append(task.scores[k] if task.scores else (None, None))
                else:
                    self._reject(stage, drop, instruction=task.instruction, input=inst.input,
                                 output=inst.output, prompt_hash=task.instance_prompt_hash,
                                 request_id=task.instance_request_id)
            task.instances = kept
            task.scores = kept_scores if task.scores else None

    # -- output ----------------------------------------------------------------------------

    def train_rows(self) -> Iterator[dict[str, Any]]:
        """The rows of train.jsonl, one per instance, made as they are written (a 52K run has
        ~130K rows with 10 neighbours each: building them all at once costs hundreds of MB)."""
        for task in self.tasks:
            for k, inst in enumerate(task.instances):
                clarity, correctness = task.scores[k] if task.scores else (None, None)
                yield {
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
                        "most_similar": [{"instruction": text, "score": score}
                                         for text, score in task.most_similar],
                        "avg_similarity": task.avg_similarity,
                        "judge_clarity": clarity,
                        "judge_correctness": correctness,
                    },
                }

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
        from selfinstruct.report import write_into_version

        dataset_dir = self.config.data_dir / self.config.dataset
        for name in reversed(list_versions(dataset_dir)):
            if read_manifest(dataset_dir / name).get("run_id") == self.run_id:
                path = dataset_dir / name
                break
        else:
            path = write_version(dataset_dir, self.train_rows(), self.rejected, self.manifest(),
                                 extra_files=write_into_version)
        self.journal.record_finished(str(path))
        return str(path)


def _items(tasks: list[Task]) -> list[Item]:
    """The instances of `tasks` as review items, keyed by their row id (stable nonces)."""
    return [Item(f"{t.id}-{k}", t.instruction, inst.input, inst.output)
            for t in tasks for k, inst in enumerate(t.instances)]


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
    if gen.quality_checks:
        for batch in gen.batches(gen.tasks):
            step("quality-batch", gen.quality_batch, batch)
    return step("write-version", gen.write_version)
