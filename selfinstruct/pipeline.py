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
Generation request j is built from the state after answer j − K was used (K = the run's
lookahead: its first concurrency, stored with the run):
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
from typing import Any, NoReturn, cast

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
from selfinstruct.records import ANSWER_FAILED, ANSWER_UNPARSEABLE, Funnel, Task
from selfinstruct.seeds import SeedSet, SeedTask
from selfinstruct.similarity import Language, NoveltyIndex
from selfinstruct.window import InFlight, Lookahead

# A parse-stage rejected row keeps this much of an unreadable answer (enough to see why).
RAW_ANSWER_CHARS = 2000
UNPARSEABLE_ANSWER = "unparseable_answer"
UNREADABLE_JUDGEMENT = "unparseable_judgement"


class BudgetExhausted(Exception):
    """The run reached --max-requests/--max-tokens/--max-cost; its journal stays resumable."""


class EmptyDataset(RuntimeError):
    """The run ended without one usable row: no version is written, the journal is kept.

    An empty version would be worse than none: it looks like a result, and a release of it
    publishes a split that `datasets` cannot load.
    """


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
        answer_client: Client | None = None,
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
        # With an `answer_client` (a chat client of the same model), instances are the model's
        # direct answers to each instruction instead of few-shot examples: what works for the
        # embedded 135M model, which writes almost no usable few-shot examples (README).
        self.answer_client = answer_client
        self.language = config.language or "en"
        self.filter_settings = config.filters
        self.filters = instruction_filters(self.language, settings=self.filter_settings)
        self.index = NoveltyIndex(threshold=config.similarity_threshold or 0.7,
                                  language=cast(Language, self.language))
        self._seed_texts = [_prompt_instruction(t.instruction) for t in seeds.tasks]
        for text in self._seed_texts:
            self.index.add(text)
        self.tasks: list[Task] = []
        # Accepted instructions the bootstrap stage aims at: the target at first, raised when
        # tasks end without a valid instance so that N means N usable tasks (`top_up`).
        self.accept_target = config.num_instructions
        self.finished_tasks = 0  # tasks that have been through the instance (and quality) stages
        self.rejected: list[dict[str, Any]] = []
        self.funnel = Funnel()
        self.usage = Usage()
        self.round = 0
        self.stalled_rounds = 0
        self.requests_issued = 0  # journal-answered included: the whole run's requests
        self.budget_stop: str | None = None
        self.started_at = time.time()
        self.on_progress: Callable[[Generator, str], None] | None = None
        # The window depth decides which answers each request is built from, so it is the
        # run's stored lookahead (its first concurrency), not today's concurrency: a resume
        # may change the speed without changing a single prompt.
        concurrency = config.lookahead or config.concurrency or 1
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
    def usable(self) -> int:
        """Tasks with at least one valid instance: what --num-instructions counts."""
        return sum(1 for task in self.tasks if task.instances)

    @property
    def bootstrapping_done(self) -> bool:
        return len(self.tasks) >= self.accept_target or self.cannot_bootstrap

    @property
    def cannot_bootstrap(self) -> bool:
        """--max-rounds or the stall limit forbid further bootstrap rounds."""
        return (self.round >= self.config.max_rounds
                or self.stalled_rounds >= self.config.stall_rounds)

    @property
    def stop_reason(self) -> str:
        if self.usable >= self.target:
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
            # a direct answer (answer mode): long enough that most answers end by themselves
            "answer": 512,
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
        """Account for an answer as it is used: its tokens, and a failed request at once (a
        read answer is counted parsed or unparseable by the stage that reads it)."""
        self.usage.record(item.request.stage, completion, cached=item.cached)
        if completion.error is not None:
            self.funnel.answer(ANSWER_FAILED)
        return completion

    @property
    def in_flight(self) -> int:
        """Requests issued and not yet used (some may already be answered)."""
        return sum(len(w) for w in (self._generation, *self._stage_windows.values()))

    def settle(self, timeout: float | None = None) -> None:
        """Let requests in flight finish (journaled) before the run stops early."""
        for window in (self._generation, *self._stage_windows.values()):
            window.settle(timeout)

    def _stop_for_budget(self, *windows: Lookahead) -> NoReturn:
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

    def _request_failed(self, request: Request, completion: Completion,
                        instruction: str = "") -> bool:
        """Record a request that failed after its retries as a rejected row; True if it did."""
        if completion.error is None:
            return False
        kind, _, message = completion.error.partition(":")
        detail = message.strip() or f"the {request.stage} request failed ({kind})"
        self._reject("request", Drop(kind, f"{request.stage}: {detail}"),
                     instruction=instruction, prompt_hash=sha256_text(request.prompt),
                     request_id=completion.request_id)
        return True

    def top_up(self) -> bool:
        """Mark the tasks so far as finished; True if bootstrapping must go on for more.

        Called after the instance and quality stages: the shortfall of usable tasks becomes
        new instructions to accept, unless a round, stall or budget limit forbids it.
        """
        self.finished_tasks = len(self.tasks)
        missing = self.target - self.usable
        if missing <= 0 or self.cannot_bootstrap or self.budget_stop:
            return False
        self.accept_target = len(self.tasks) + missing
        return True

    def _unparseable(self, request: Request, completion: Completion, what: str,
                     instruction: str = "") -> None:
        """Record an answer nothing could be read from: a parse-stage row with the raw text."""
        self.funnel.answer(ANSWER_UNPARSEABLE)
        text = completion.text or ""
        shown = text if len(text) <= RAW_ANSWER_CHARS else text[:RAW_ANSWER_CHARS] + "…"
        finish = completion.finish_reason
        why = "an empty answer" if not text.strip() else f"no {what} in the answer"
        detail = f"{request.stage}: {why} (finish_reason={finish}, {len(text)} chars)"
        self._reject("parse", Drop(UNPARSEABLE_ANSWER, detail), instruction=instruction,
                     output=shown, prompt_hash=sha256_text(request.prompt),
                     request_id=completion.request_id)

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
        remaining = self.accept_target - len(self.tasks)
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
        text = completion.text or ""
        if self.config.recipe != "alpaca":
            items = parse_numbered_list(text, first, continuation=continuation,
                                        truncated=truncated)
            if not items:
                self._unparseable(request, completion, "numbered or bulleted list item")
                return
            self.funnel.answer(None)
            for parsed in items:
                self._consider(parsed.text, parsed.reason, prompt_hash, completion.request_id,
                               parsed.detail)
            return
        tasks = parse_alpaca(text, self.prompts.labels, first, continuation=continuation,
                             truncated=truncated)
        if not tasks:
            self._unparseable(request, completion, "instruction/input/output item")
            return
        self.funnel.answer(None)
        for task_item in tasks:
            task = self._consider(task_item.instruction, task_item.reason, prompt_hash,
                                  completion.request_id, task_item.detail)
            if task is not None:
                task.instance_prompt_hash = prompt_hash
                task.instance_request_id = completion.request_id
                self._keep_instances(task, [ParsedInstance(task_item.input, task_item.output)])

    def _consider(self, text: str, parse_reason: str | None, prompt_hash: str,
                  request_id: str | None, parse_detail: str = "") -> Task | None:
        """Run one candidate instruction through parse check, filters, target and novelty."""
        where: dict[str, Any] = {"instruction": text, "prompt_hash": prompt_hash,
                                 "request_id": request_id}
        if parse_reason is not None:
            detail = parse_detail or f"the item could not be read ({parse_reason})"
            self._reject("parse", Drop(parse_reason, detail), **where)
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
        if len(self.tasks) >= self.accept_target:
            # Judged by nothing: the run already has the instructions it needs.
            self._reject("target", Drop("over_target", f"the run already had "
                                        f"{len(self.tasks)} accepted instructions, all it "
                                        f"needed at this point"), **where)
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
        if self._request_failed(request, completion, task.instruction):
            task.is_classification = False
            return
        verdict = parse_yes_no(completion.text or "", self.prompts.labels)
        task.is_classification = bool(verdict)
        if verdict is not None:
            self.funnel.answer(None)
            self.funnel.count("classify")
            return
        # An unreadable verdict is not a reason to lose the task: it goes on as a generation
        # task, and the answer is kept as a classify row so it is not lost from the accounts.
        self.funnel.answer(ANSWER_UNPARSEABLE)
        text = completion.text or ""
        self._reject("classify", Drop("unreadable_verdict", f"no Yes/No verdict in the answer "
                                      f"(finish_reason={completion.finish_reason}); the task "
                                      f"goes on as a generation task"),
                     instruction=task.instruction, output=text[:RAW_ANSWER_CHARS],
                     prompt_hash=sha256_text(request.prompt), request_id=completion.request_id)

    def instance_request(self, task: Task) -> Request:
        """Output-first for classification tasks (balanced labels), input-first otherwise."""
        if self.answer_client is not None:
            prompt = self.prompts.render("answer", instruction=task.instruction)
            params = self._params("answer", temperature=0.0, top_p=1.0)
            return self._request("instances", prompt, params, f"instances-{task.id}")
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
        if self._request_failed(request, completion, task.instruction):
            self._reject("instances", Drop("no_valid_instances", "its instance request failed"),
                         instruction=task.instruction, prompt_hash=task.instance_prompt_hash,
                         request_id=task.instance_request_id)
            return
        if self.answer_client is not None:
            answer = (completion.text or "").strip()
            parsed = [ParsedInstance("", answer)] if answer else []
            if parsed and completion.finish_reason == "length":
                parsed = [ParsedInstance("", answer, "truncated",
                                         "the answer was cut off at max_tokens")]
        else:
            parsed = parse_instances(completion.text or "", self.prompts.labels,
                                     output_first=bool(task.is_classification),
                                     truncated=completion.finish_reason == "length")
        if not parsed:
            self._unparseable(request, completion, "example", task.instruction)
            self._reject("instances", Drop("no_valid_instances", "no example could be read "
                                           "from its instance answer"),
                         instruction=task.instruction, prompt_hash=task.instance_prompt_hash,
                         request_id=task.instance_request_id)
            return
        self.funnel.answer(None)
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
            client = self.answer_client if stage == "instances" else None
            while not window.full and self._stage_cursors[stage] < len(self.tasks):
                ahead = self.tasks[self._stage_cursors[stage]]
                item = self._issue(build(ahead), ahead, client)
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
            reasons = sorted({drop.reason for _, drop in dropped})
            self._reject("instances", Drop("no_valid_instances",
                                           f"all {len(dropped)} examples were dropped "
                                           f"({', '.join(reasons)})"),
                         instruction=task.instruction, prompt_hash=task.instance_prompt_hash,
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
            answers: list[Completion] = []
            verdicts = check_label_consistency(
                _items(checked), prompts=self.prompts, make_request=self._request,
                complete=lambda requests: _kept(answers, self.complete(requests)),
                settings=settings)
            for answer in answers:  # a label answer is read as it is, whatever it says
                if answer.error is None:
                    self.funnel.answer(None)
            self._apply_verdicts("consistency", checked, verdicts)
        if settings.judge_model is not None:
            judged = [t for t in tasks if t.instances]
            answers = []
            results = judge(
                _items(judged), prompts=self.prompts, make_request=self._request,
                complete=lambda requests: _kept(
                    answers, self.complete(requests, client=self.judge_client)),
                settings=settings)
            for answer, result in zip(answers, results, strict=True):
                if answer.error is None:
                    unreadable = (result.drop is not None
                                  and result.drop.reason == UNREADABLE_JUDGEMENT)
                    self.funnel.answer(ANSWER_UNPARSEABLE if unreadable else None)
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
            "target": {"instructions": self.target, "accepted": self.usable,
                       "accepted_instructions": len(self.tasks),
                       "reached": self.usable >= self.target,
                       "stop_reason": self.stop_reason, "rounds": self.round},
            "license": cfg.license,
            "run_id": self.run_id,
            "generator": f"selfinstruct {__version__}",
            "started_at": _iso(self.started_at),
            "finished_at": _iso(time.time()),
        }

    def _empty_message(self) -> str:
        return (f"no usable row: {len(self.tasks)} instructions were accepted but none kept a "
                f"valid instance ({self.stop_reason}); top rejection reasons: "
                f"{_top_reasons(self.funnel.drops())}; no version was written and the run "
                f"stays resumable in {self.journal.run_dir}")

    def write_version(self) -> str:
        """Write the immutable version folder and mark the run finished; return its path.

        Idempotent per run: if a crash came between the folder's atomic rename and the
        journal's "finished" event, the resumed run finds its version instead of writing a
        second one.
        """
        from selfinstruct.dataset import write_version
        from selfinstruct.dataset.listing import find_run_version
        from selfinstruct.report import write_into_version

        if not self.usable:
            raise EmptyDataset(self._empty_message())
        dataset_dir = self.config.data_dir / self.config.dataset
        path = find_run_version(dataset_dir, self.run_id)
        if path is None:
            path = write_version(dataset_dir, self.train_rows(), self.rejected, self.manifest(),
                                 extra_files=write_into_version)
        self.journal.record_finished(str(path))
        return str(path)


def _top_reasons(drops: dict[str, int], n: int = 3) -> str:
    ranked = sorted(drops.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{reason} {count}" for reason, count in ranked) or "none"


def _kept(store: list[Completion], answers: list[Completion]) -> list[Completion]:
    """Keep a copy of a quality stage's answers for the request-level accounting."""
    store.extend(answers)
    return answers


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

    Tasks that end without a valid instance do not count towards --num-instructions: after
    the instance (and quality) stages, `top_up` raises the bootstrap target by the shortfall
    and the stages run again for the new tasks only, until N tasks are usable or a limit
    (--max-rounds, the stall limit, a budget) stops the run. Each decision depends only on
    answers used so far, so a resumed run replays the same phases from its journal.
    """
    while True:
        while not gen.bootstrapping_done:
            step("bootstrap-round", gen.bootstrap_round)
        new = gen.tasks[gen.finished_tasks:]
        for batch in gen.batches(new):
            step("classify-batch", gen.classify_batch, batch)
        for batch in gen.batches(new):
            step("instances-batch", gen.instances_batch, batch)
        if gen.quality_checks:
            for batch in gen.batches(new):
                step("quality-batch", gen.quality_batch, batch)
        if not gen.top_up():
            break
    return step("write-version", gen.write_version)
