"""The stages of --preference: K responses, the pairwise judge in both orders, the ranking.

For each usable task (one with a kept instance after the quality and verification checks) the
prompt is its user turn — the instruction, then the first kept instance's input after a blank
line — so a pair is about exactly what the train row asks. The stages, in order:

* ``response_<k>`` (k < K): slot k's model answers the prompt (`preference_rank.slots`),
  through ``prompts/<lang>/respond.j2``. A failed request, an empty answer or one cut off at
  max_tokens leaves the slot empty (request row, parse row, or a ``responses`` drop row).
* ``prefer_<i>_<j>_ab`` and ``prefer_<i>_<j>_ba`` for every pair i < j: the pairwise judge
  (`selfinstruct.pairwise`) with response i shown first, then second. No request when either
  response is missing or both are the same text (a tie without asking), and the B/A request
  only when the A/B answer was readable (one readable order alone decides nothing).
* ``preference``: asks nothing; ranks what the judge said (`preference_rank.rank`) and keeps
  one pair or records why not. It is a stage so that it runs, per batch, once every judgement
  of the phase is in — the same point the ledger rows must be written at.

Judge: ``--judge-model`` when set (the run's judge client), else the generating model. Every
request is journaled under a stable nonce (``response_<k>-<task>``, ``prefer-<task>-<i>-<j>-ab``),
so a resumed run rebuilds the same state from its journal and pays nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfinstruct.engine.ledger import Where, raw_answer
from selfinstruct.export import user_turn
from selfinstruct.filters import Drop
from selfinstruct.llm import Client, Completion, Request
from selfinstruct.pairwise import Verdict, pairwise_requests, read_choice, read_verdict
from selfinstruct.preference_rank import Ranking, Slot, pairs, rank
from selfinstruct.prompts import sha256_text
from selfinstruct.records import Task

if TYPE_CHECKING:
    from selfinstruct.engine.core import Engine

RESPONSES_STAGE = "responses"  # funnel: responses read → usable
PREFERENCE_STAGE = "preference"  # funnel: prompts ranked → pairs; also the ranking stage
RESPONSE_MAX_TOKENS = (512, 256)  # (remote, embedded), like the direct-answer stage


@dataclass(frozen=True)
class Response:
    text: str
    request_id: str | None


@dataclass
class Prompted:
    """What the stages learnt about one task's prompt."""

    prompt_hash: str | None = None
    responses: dict[int, Response] = field(default_factory=dict)
    first_order: dict[tuple[int, int], str] = field(default_factory=dict)  # readable A/B texts
    verdicts: dict[tuple[int, int], Verdict] = field(default_factory=dict)


def prompt_of(task: Task) -> tuple[str, str]:
    """(instruction, input) the pair is about: the task's first kept instance."""
    return task.instruction, task.instances[0].input


class Preferences:
    """The run's preference state: per task, then the kept rows and the counts."""

    def __init__(self, engine: Engine, slots: list[Slot], judge_model: str) -> None:
        self.engine = engine
        self.slots = slots
        self.judge_model = judge_model
        self.tasks: dict[str, Prompted] = {}
        self.ranked: set[str] = set()
        self.rows: list[dict[str, Any]] = []
        self.counts = {"prompts": 0, "judged": 0, "pairs": 0, "ties": 0, "unjudged": 0}

    def state(self, task: Task) -> Prompted:
        return self.tasks.setdefault(task.id, Prompted())

    def rank_task(self, task: Task) -> None:
        """Rank one task's responses and keep its pair, or record why there is none."""
        if task.id in self.ranked or not task.instances:
            return
        self.ranked.add(task.id)
        self.counts["prompts"] += 1
        st = self.tasks.get(task.id, Prompted())
        usable = sorted(st.responses)
        where = Where(task.instruction, st.prompt_hash, None)
        _, input_ = prompt_of(task)
        ledger = self.engine.ledger
        if len(usable) < 2:
            self.counts["unjudged"] += 1
            ledger.record(PREFERENCE_STAGE, Drop(
                "too_few_responses", f"{len(usable)} of {len(self.slots)} responses usable (the "
                "others failed, were empty or were cut off)"), where, input=input_)
            return
        winners: dict[tuple[int, int], str] = {}
        said: list[str] = []  # what decided each comparison, for a drop's detail
        for i, j in pairs(len(self.slots)):
            if i in st.responses and j in st.responses:
                if st.responses[i].text == st.responses[j].text:
                    winners[(i, j)] = "tie"
                    said.append(f"{i} vs {j}: identical responses")
                elif (verdict := st.verdicts.get((i, j))) is not None \
                        and verdict.winner is not None:
                    winners[(i, j)] = verdict.winner
                    said.append(f"{i} vs {j}: {verdict.detail}")
        if not winners:
            self.counts["unjudged"] += 1
            ledger.record(PREFERENCE_STAGE, Drop(
                "not_judged", "no comparison could be decided: the judge's answers failed or "
                "were unreadable (their rows are in the parse and request stages)"),
                where, input=input_)
            return
        self.counts["judged"] += 1
        ranking = rank(usable, winners)
        if not ranking.paired:
            self.counts["ties"] += 1
            ledger.record(PREFERENCE_STAGE, Drop("preference_tie", f"{ranking.why} "
                                                 f"({'; '.join(said)})"), where, input=input_)
            return
        ledger.record(PREFERENCE_STAGE, None, where)
        self.counts["pairs"] += 1
        self.rows.append(self._row(task, st, ranking, len(winners)))

    def _row(self, task: Task, st: Prompted, ranking: Ranking, comparisons: int
             ) -> dict[str, Any]:
        chosen, rejected = ranking.chosen, ranking.rejected
        assert chosen is not None and rejected is not None
        pair = (min(chosen, rejected), max(chosen, rejected))
        verdict = st.verdicts[pair]
        first, second = ("chosen", "rejected") if chosen == pair[0] else ("rejected", "chosen")
        instruction, input_ = prompt_of(task)
        good, bad = self.slots[chosen], self.slots[rejected]
        return {
            "id": f"{task.id}-0",
            "task_id": task.id,
            "prompt": user_turn({"instruction": instruction, "input": input_}),
            "instruction": instruction,
            "input": input_,
            "chosen": st.responses[chosen].text,
            "rejected": st.responses[rejected].text,
            "chosen_score": ranking.scores[chosen],
            "rejected_score": ranking.scores[rejected],
            "chosen_model": good.model,
            "rejected_model": bad.model,
            "judge_model": self.judge_model,
            # The judge's letters, named: it saw the pair as A and B in its A/B order.
            "rationale": f"(A = {first}, B = {second}) {verdict.rationale or verdict.detail}",
            "provenance": {
                "chosen_temperature": good.temperature,
                "rejected_temperature": bad.temperature,
                "same_model": good.model == bad.model,
                "responses": len(st.responses),
                "comparisons": comparisons,
                "chosen_request_id": st.responses[chosen].request_id,
                "rejected_request_id": st.responses[rejected].request_id,
                "prompt_hash": st.prompt_hash or "",
            },
        }


class ResponseStage:
    """``response_<k>``: slot k's answer to each usable task's prompt."""

    def __init__(self, prefs: Preferences, k: int, client: Client | None) -> None:
        self.prefs = prefs
        self.k = k
        self.slot = prefs.slots[k]
        self.name = f"response_{k}"
        self.client = client

    def request(self, task: Task) -> Request | None:
        if not task.instances:
            return None
        engine = self.prefs.engine
        instruction, input_ = prompt_of(task)
        prompt = engine.prompts.render("respond", instruction=instruction, input=input_)
        params = engine.dispatch.params(self.name, temperature=self.slot.temperature, top_p=1.0)
        return engine.dispatch.request(self.name, prompt, params, f"{self.name}-{task.id}")

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        engine = self.prefs.engine
        st = self.prefs.state(task)
        st.prompt_hash = sha256_text(request.prompt)
        if engine.ledger.request_failed(request, completion, task.instruction):
            return
        text = (completion.text or "").strip()
        if not text:
            engine.ledger.unparseable(request, completion, "response", task.instruction)
            return
        engine.funnel.answer(None)
        where = Where(task.instruction, st.prompt_hash, completion.request_id)
        if completion.finish_reason == "length":
            engine.ledger.record(RESPONSES_STAGE, Drop(
                "truncated_response", f"response {self.k} ({self.slot.model}, temperature "
                f"{self.slot.temperature}) was cut off at max_tokens"), where,
                input=prompt_of(task)[1], output=raw_answer(completion))
            return
        engine.ledger.record(RESPONSES_STAGE, None, where)
        st.responses[self.k] = Response(text, completion.request_id)


class PreferStage:
    """``prefer_<i>_<j>_<order>``: one order of the pairwise judgement of responses i and j."""

    def __init__(self, prefs: Preferences, i: int, j: int, order: str,
                 client: Client | None) -> None:
        self.prefs = prefs
        self.pair = (i, j)
        self.order = order  # "ab": response i shown first; "ba": shown second
        self.name = f"prefer_{i}_{j}_{order}"
        self.client = client

    def request(self, task: Task) -> Request | None:
        st = self.prefs.tasks.get(task.id)
        i, j = self.pair
        if st is None or i not in st.responses or j not in st.responses:
            return None
        if st.responses[i].text == st.responses[j].text:
            return None  # identical answers: a tie without asking (preference_rank)
        if self.order == "ba" and self.pair not in st.first_order:
            return None  # the A/B order was unreadable or failed: no verdict either way
        instruction, input_ = prompt_of(task)
        requests = pairwise_requests(self.prefs.engine, self.prefs.engine.prompts, instruction,
                                     input_, st.responses[i].text, st.responses[j].text,
                                     f"prefer-{task.id}-{i}-{j}", stage=self.name)
        return requests[0] if self.order == "ab" else requests[1]

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        engine = self.prefs.engine
        if engine.ledger.request_failed(request, completion, task.instruction):
            return
        text = completion.text or ""
        choice, _ = read_choice(text)
        if choice is None:
            engine.ledger.unparseable(request, completion, "verdict (A or B)",
                                      task.instruction)
            return
        engine.funnel.answer(None)
        st = self.prefs.state(task)
        if self.order == "ab":
            st.first_order[self.pair] = text
        else:
            st.verdicts[self.pair] = read_verdict(st.first_order[self.pair], text)


class RankStage:
    """``preference``: no request; ranks each task once all its judgements are in."""

    name = PREFERENCE_STAGE
    client: Client | None = None

    def __init__(self, prefs: Preferences) -> None:
        self.prefs = prefs

    def request(self, task: Task) -> Request | None:
        self.prefs.rank_task(task)  # idempotent per task: safe if the engine builds twice
        return None

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        raise RuntimeError("the preference ranking stage sends no request")
