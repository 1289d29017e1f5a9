"""Multi-turn conversations (`--turns N`, N >= 2): a feature any recipe can be followed by.

After the recipe's answer, the model writes the user's next message (a follow-up question, a
clarification or a new constraint that depends on the conversation), then the assistant's
answer to the whole conversation, until the conversation has N user turns. For each k in
2..N there are two stages, run in this order for every batch of tasks:

* ``turn{k}_user``: prompts/<lang>/followup.j2 shows the conversation so far and asks for the
  user's next message only; the answer is read by `turn_text.clean_followup` and judged by
  `turn_text.check_followup`;
* ``turn{k}_answer``: the assistant's answer. Chat endpoints get the conversation itself as
  the request's messages; completions endpoints get prompts/<lang>/continue.j2, a transcript
  ending with the assistant's heading. Judged by the instance filters
  (`turn_text.check_answer`). In answer mode (the embedded model) it goes through the
  run's answer client, like the recipe's own answers.

One conversation per task: it continues the task's first kept answer (user = instruction
and input, assistant = output). A task's other answers are dropped when its conversation
starts (reason ``not_continued``): a row of a `--turns N` run always holds N user turns.
The task has no row while its conversation is under way (`Task.instances` is empty), so a
run stopped part-way never writes a half conversation, and a task whose conversation is
dropped does not count towards --num-instructions (the engine tops up).

Every turn is judged; a bad one drops the conversation with a rejected row of stage
``turns`` whose detail starts with "turn k:" (and later turns of it ask nothing). The
``turns`` funnel line counts the recipe's answers that reached this feature: each either
ends as a finished conversation (kept) or is dropped once. Novelty stays the recipe's: it is
checked on the first user turn, the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from selfinstruct.engine.ledger import UNPARSEABLE_ANSWER, Where, raw_answer
from selfinstruct.filters import Drop, mask_pii
from selfinstruct.llm import Client, Completion, Request
from selfinstruct.prompts import sha256_text
from selfinstruct.records import ANSWER_UNPARSEABLE, Instance, Task
from selfinstruct.turn_messages import Message, first_user_message
from selfinstruct.turn_text import (
    ASSISTANT_HEADINGS,
    USER_HEADINGS,
    check_answer,
    check_followup,
    clean_answer,
    clean_followup,
    user_turn_filters,
)

if TYPE_CHECKING:
    from selfinstruct.config import GenerateConfig
    from selfinstruct.engine.core import Engine
    from selfinstruct.engine.stages import Stage

STAGE = "turns"  # the funnel stage and the rejected rows' stage of this feature
# max_tokens per stage kind, (remote endpoint, embedded model): a follow-up is one message;
# an answer as long as the recipe's direct answers ("answer").
FOLLOWUP_MAX_TOKENS = (256, 128)
ANSWER_MAX_TOKENS = (512, 512)
TEMPERATURE = 0.7  # follow-ups must differ between conversations; answers are chat answers

_SAMPLE: list[Message] = [
    {"role": "user", "content": "Name a fruit."},
    {"role": "assistant", "content": "Apple."},
    {"role": "user", "content": "Why did you pick the apple?"},
]
TEMPLATES: dict[str, dict[str, Any]] = {
    "followup": {"messages": _SAMPLE[:2]},
    "continue": {"messages": _SAMPLE},
}


def enabled(config: GenerateConfig) -> bool:
    return config.turns >= 2


def stages(engine: Engine) -> list[Stage]:
    """``turn2_user``, ``turn2_answer``, …, ``turn{N}_answer``; none without --turns."""
    if not enabled(engine.config):
        return []
    book = Conversations(engine)
    found: list[Stage] = []
    for turn in range(2, engine.config.turns + 1):
        found += [FollowUp(book, turn), Reply(book, turn)]
    for stage in found:
        limits = FOLLOWUP_MAX_TOKENS if isinstance(stage, FollowUp) else ANSWER_MAX_TOKENS
        engine.dispatch.max_tokens.setdefault(stage.name, limits)
    return found


@dataclass
class Conversation:
    """A conversation under way: the recipe's answer it continues, and its messages."""

    instance: Instance
    messages: list[Message]


class Conversations:
    """The conversations of one run, by task id, and what ends them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.turns = engine.config.turns
        self.open: dict[str, Conversation] = {}
        self.user_filters = user_turn_filters(engine.language, engine.filter_settings)

    def messages_before(self, task: Task, turn: int) -> list[Message] | None:
        """The task's conversation before the stages of `turn`, or None when there is nothing
        to continue: it was dropped, or (turn 2) the task has no answer."""
        conversation = self.open.get(task.id)
        if conversation is not None:
            return conversation.messages
        if turn != 2 or not task.instances:
            return None
        return _opening(task, task.instances[0])

    def start(self, task: Task) -> Conversation:
        """Open the task's conversation on its first answer; its other answers are dropped."""
        first, *others = task.instances
        where = Where(task.instruction, task.instance_prompt_hash, task.instance_request_id)
        for number, other in enumerate(others, start=2):
            self.engine.ledger.record(
                STAGE, Drop("not_continued", f"one conversation per task: it continues the "
                                             f"task's first answer, not answer {number} of "
                                             f"{len(task.instances)}"),
                where, input=other.input, output=other.output)
        conversation = Conversation(first, _opening(task, first))
        self.open[task.id] = conversation
        task.instances = []  # no row until the conversation is finished
        return conversation

    def drop(self, task: Task, turn: int, drop: Drop, where: Where,
             output: str | None = None) -> None:
        del self.open[task.id]
        self.engine.ledger.record(STAGE, Drop(drop.reason, f"turn {turn}: {drop.detail}"),
                                  where, output=output)

    def finish(self, task: Task, where: Where) -> None:
        conversation = self.open.pop(task.id)
        task.instances = [replace(conversation.instance, messages=conversation.messages)]
        self.engine.ledger.record(STAGE, None, where)


def _opening(task: Task, first: Instance) -> list[Message]:
    return [{"role": "user", "content": first_user_message(task.instruction, first.input)},
            {"role": "assistant", "content": first.output}]


class FollowUp:
    """``turn{k}_user``: the model writes the user's k-th message."""

    client: Client | None = None

    def __init__(self, book: Conversations, turn: int) -> None:
        self.book = book
        self.turn = turn
        self.name = f"turn{turn}_user"

    def request(self, task: Task) -> Request | None:
        messages = self.book.messages_before(task, self.turn)
        if messages is None:
            return None
        engine = self.book.engine
        prompt = engine.prompts.render("followup", messages=messages)
        params = engine.dispatch.params(self.name, temperature=TEMPERATURE, top_p=1.0,
                                        stop=[f"\n{h}" for h in ASSISTANT_HEADINGS])
        return engine.dispatch.request(self.name, prompt, params, f"{self.name}-{task.id}")

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        book, engine, turn = self.book, self.book.engine, self.turn
        conversation = book.start(task) if turn == 2 else book.open[task.id]
        where = Where(task.instruction, sha256_text(request.prompt), completion.request_id)
        if engine.ledger.request_failed(request, completion, task.instruction):
            book.drop(task, turn, Drop("request_failed", "the follow-up request failed"),
                      where)
            return
        message = clean_followup(completion.text or "")
        if not message:
            _unreadable(book, task, turn, "follow-up message", completion, where)
            return
        engine.funnel.answer(None)
        if completion.finish_reason == "length":
            book.drop(task, turn, Drop("truncated", "the follow-up was cut off at max_tokens"),
                      where, output=message)
            return
        message = mask_pii(message, engine.filter_settings)  # a no-op unless pii = "mask"
        drop = check_followup(message, conversation.messages, request.prompt, engine.language,
                              book.user_filters)
        if drop is not None:
            book.drop(task, turn, Drop(drop.reason, f"user message: {drop.detail}"), where,
                      output=message)
            return
        conversation.messages.append({"role": "user", "content": message})


class Reply:
    """``turn{k}_answer``: the assistant answers the conversation's k-th user message."""

    def __init__(self, book: Conversations, turn: int) -> None:
        self.book = book
        self.turn = turn
        self.name = f"turn{turn}_answer"
        # Through the recipe's answer client when it has one (the embedded model answers in
        # chat), else the run's client.
        self.client: Client | None = book.engine.answer_client

    def request(self, task: Task) -> Request | None:
        messages = self.book.messages_before(task, self.turn)
        if messages is None:
            return None
        engine = self.book.engine
        prompt = engine.prompts.render("continue", messages=messages)
        params = engine.dispatch.params(self.name, temperature=TEMPERATURE, top_p=1.0,
                                        stop=[f"\n{h}" for h in USER_HEADINGS])
        chat = (self.client or engine.client).api == "chat"
        pairs = tuple((m["role"], m["content"]) for m in messages) if chat else None
        return engine.dispatch.request(self.name, prompt, params, f"{self.name}-{task.id}",
                                       messages=pairs)

    def read(self, task: Task, request: Request, completion: Completion) -> None:
        book, engine, turn = self.book, self.book.engine, self.turn
        conversation = book.open[task.id]
        where = Where(task.instruction, sha256_text(request.prompt), completion.request_id)
        if engine.ledger.request_failed(request, completion, task.instruction):
            book.drop(task, turn, Drop("request_failed", "the answer request failed"), where)
            return
        answer = clean_answer(completion.text or "")
        if not answer:
            _unreadable(book, task, turn, "answer", completion, where)
            return
        engine.funnel.answer(None)
        answer, drop = check_answer(answer, completion.finish_reason == "length",
                                    conversation.messages[-1]["content"],
                                    conversation.messages, engine.language,
                                    engine.filter_settings)
        if drop is not None:
            book.drop(task, turn, Drop(drop.reason, f"answer: {drop.detail}"), where,
                      output=answer)
            return
        conversation.messages.append({"role": "assistant", "content": answer})
        if turn == book.turns:
            book.finish(task, where)


def _unreadable(book: Conversations, task: Task, turn: int, what: str,
                completion: Completion, where: Where) -> None:
    """An answer with nothing to read: counted unparseable, the conversation dropped with
    the raw answer on its row (one row: the answer and the conversation end together)."""
    book.engine.funnel.answer(ANSWER_UNPARSEABLE)
    text = completion.text or ""
    why = "an empty answer" if not text.strip() else f"no {what} in the answer"
    book.drop(task, turn, Drop(UNPARSEABLE_ANSWER, f"{why} (finish_reason="
                                                   f"{completion.finish_reason}, "
                                                   f"{len(text)} chars)"),
              where, output=raw_answer(completion))
