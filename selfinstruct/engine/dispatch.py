"""Dispatch: the one way any stage asks a model.

Every request goes through `Dispatcher.issue`: the journal is asked first (a resumed run
pays nothing twice), then a budget may refuse, then the client sends it and the answer becomes
usable only once the journal holds it. Answers are used strictly in issue order through
look-ahead windows (`window.Lookahead`), which is what makes a run deterministic whatever
the endpoint's timing, and therefore resumable.

Recipes build requests (`request`, `params`) but never send them themselves: budgets, usage
and the journal stay in this one place.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from selfinstruct.batch_lines import batch_price
from selfinstruct.confidence import wants_logprobs
from selfinstruct.config import GenerateConfig
from selfinstruct.journal import Journal
from selfinstruct.llm import Client, Completion, Request, Usage
from selfinstruct.records import ANSWER_FAILED, Funnel
from selfinstruct.window import InFlight, Lookahead


class BudgetExhausted(Exception):
    """The run reached --max-requests/--max-tokens/--max-cost; its journal stays resumable."""


# max_tokens per stage when the config names none (answer: a direct answer in answer mode,
# long enough that most answers end by themselves).
# max_tokens defaults of the shared stages, (remote, embedded); a recipe adds its own
# (`Recipe.max_tokens`, merged into `Dispatcher.max_tokens` when the engine starts).
_MAX_TOKENS = {"bootstrap": (1024, 256), "classify": (5, 5), "instances": (350, 200),
               "answer": (512, 512)}


class Dispatcher:
    """Requests, their answers, and what they cost, for one run."""

    def __init__(self, config: GenerateConfig, client: Client, journal: Journal,
                 funnel: Funnel) -> None:
        self.config = config
        self.client = client
        self.journal = journal
        self.funnel = funnel
        self.max_tokens = dict(_MAX_TOKENS)
        self.usage = Usage()
        self.requests_issued = 0  # journal-answered included: the whole run's requests
        self.budget_stop: str | None = None
        # The window depth decides which answers each request is built from, so it is the
        # run's stored lookahead (its first concurrency), not today's concurrency: a resume
        # may change the speed without changing a single prompt.
        self.depth = config.lookahead or config.concurrency or 1
        self.windows: dict[str, Lookahead] = {}
        self.cursors: dict[str, int] = {}
        # Stages answered by another model than the run's (the judge, verifiers, response
        # models): priced at that model's price.
        self.stage_models: dict[str, str] = {}

    def window(self, name: str, depth: int) -> Lookahead:
        """A named look-ahead window; all of them count as in flight and are settled."""
        self.windows[name] = Lookahead(depth=depth)
        self.cursors[name] = 0
        return self.windows[name]

    # -- building requests -----------------------------------------------------------------

    def params(self, stage: str, **extra: Any) -> dict[str, Any]:
        remote, embedded = self.max_tokens[stage]
        default = embedded if self.config.embedded else remote
        # --confidence: the stages whose answers are outputs ask for token log-probs (an
        # API-neutral marker wire.request_body translates); otherwise nothing changes, so
        # the journal keys of runs without it are the same as ever.
        return {"max_tokens": self.config.stage_max_tokens.get(stage, default),
                **wants_logprobs(self.config.confidence, stage), **extra}

    def request(self, stage: str, prompt: str, params: dict[str, Any], nonce: str,
                messages: tuple[tuple[str, str], ...] | None = None) -> Request:
        """Build a request with a sampling seed derived from the run seed and the nonce.

        OpenAI, vLLM, Ollama and llama.cpp honour `seed` (best effort), which makes a rerun
        with the same --seed reproduce the same answers where the server can. `messages`:
        a conversation chat endpoints get instead of one user message of `prompt`.
        """
        digest = hashlib.sha256(f"{self.config.seed}:{nonce}".encode()).hexdigest()
        return Request(stage, prompt, {**params, "seed": int(digest[:8], 16) % 2**31}, nonce,
                       messages)

    # -- budgets and cost ------------------------------------------------------------------

    @property
    def price(self) -> dict[str, float] | None:
        """USD per 1M tokens for this run's answers (Batch API answers at their discount)."""
        if self.config.embedded:
            return {"input": 0.0, "output": 0.0}
        price = self.config.prices.get(self.client.model)
        return batch_price(price) if self.client.describe().get("batch") else price

    def cost(self) -> float | None:
        """USD so far: each stage's tokens at the price of the model that answered it.

        None when the run's model has no price, or a stage with tokens was answered by a
        model without one (a number that leaves out part of the bill would mislead).
        """
        run_price = self.price
        if run_price is None:
            return None
        total = 0.0
        for name, stage in self.usage.stages.items():
            model = self.stage_models.get(name)
            price = run_price if model is None or self.config.embedded \
                else self.config.prices.get(model)
            if price is None:
                if stage.prompt_tokens or stage.completion_tokens:
                    return None
                continue
            total += (stage.prompt_tokens * price["input"]
                      + stage.completion_tokens * price["output"]) / 1_000_000
        return total

    def budget_refusal(self) -> str | None:
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
        cost = self.cost()
        if cfg.max_cost is not None and cost is not None and cost >= cfg.max_cost:
            return f"--max-cost {cfg.max_cost}: ${cost:.4f} spent"
        return None

    def stop_for_budget(self, *windows: Lookahead) -> NoReturn:
        for window in windows:
            window.settle()  # answers already paid for reach the journal first
        raise BudgetExhausted(self.budget_stop)

    # -- issuing and using -----------------------------------------------------------------

    def issue(self, request: Request, context: Any = None,
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
        refusal = self.budget_refusal()
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

    def used(self, item: InFlight, completion: Completion) -> Completion:
        """Account for an answer as it is used: its tokens, and a failed request at once (a
        read answer is counted parsed or unparseable by the stage that reads it)."""
        self.usage.record(item.request.stage, completion, cached=item.cached)
        if completion.error is not None:
            self.funnel.answer(ANSWER_FAILED)
        return completion

    def complete(self, requests: list[Request],
                 client: Client | None = None) -> list[Completion]:
        """Answer a list of requests (journal first), in order; for stages that need all
        answers of a batch at once. `client`: another model (the judge)."""
        window = Lookahead(depth=len(requests) or 1)
        for request in requests:
            item = self.issue(request, client=client)
            if item is None:
                self.stop_for_budget(window)
            window.push(item)
        answers = []
        while window:
            item, completion = window.pop()
            answers.append(self.used(item, completion))
        return answers

    def run_ahead(self, name: str, items: Iterable[Any], ahead: list[Any],
                  build: Callable[[Any], Request | None],
                  apply: Callable[[Any, Request, Completion], None],
                  client: Client | None = None) -> None:
        """Use the answers for `items`, issuing requests for later items of `ahead` early.

        Items must come in the order of `ahead` (as `run` and the flow pass them): the window
        runs ahead across batch boundaries, so the endpoint never idles between batches.
        `build` returns None for an item this stage has nothing to ask about (a conversation
        dropped at an earlier turn): it takes its place in the window without a request, so
        the order check still holds, and `apply` is not called for it.
        """
        window = self.windows[name]
        for item_ in items:
            while not window.full and self.cursors[name] < len(ahead):
                later = ahead[self.cursors[name]]
                request = build(later)
                issued = self.issue(request, later, client) if request is not None \
                    else _nothing_to_ask(name, later)
                if issued is None:
                    break
                window.push(issued)
                self.cursors[name] += 1
            if not window:
                self.stop_for_budget()
            flight, completion = window.pop()
            if flight.context is not item_:
                raise RuntimeError(f"{name} batches must be used in task order")
            if not flight.nothing_asked:
                apply(item_, flight.request, self.used(flight, completion))
        self.journal.sync()

    @property
    def in_flight(self) -> int:
        """Requests issued and not yet used (some may already be answered)."""
        return sum(len(w) for w in self.windows.values())

    def settle(self, timeout: float | None = None) -> None:
        """Let requests in flight finish (journaled) before the run stops early."""
        for window in self.windows.values():
            window.settle(timeout)


def _nothing_to_ask(stage: str, item: Any) -> InFlight:
    """A window slot for an item without a request: already "answered" with nothing."""
    done: concurrent.futures.Future[Completion] = concurrent.futures.Future()
    done.set_result(Completion(text="", finish_reason=None))
    return InFlight(Request(stage, "", {}, ""), item, done, cached=True, nothing_asked=True)
