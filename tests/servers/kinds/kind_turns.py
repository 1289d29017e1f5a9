"""Multi-turn prompt kinds (`--turns`): the user's follow-up, and the assistant's next answer.

Three kinds:

* ``followup`` (prompts/<lang>/followup.j2): the conversation so far; the answer is the user's
  next message. A clean one quotes a phrase of the assistant's last answer and asks about it.
* ``continue`` (prompts/<lang>/continue.j2, completions): a transcript ending with the
  assistant's heading; the answer continues it with the assistant's reply.
* ``followup_reply``: a chat request whose last user message is a follow-up. The server reads
  only the last user message of a chat (tests/servers/responses.py), so this kind is
  recognised by the fixed openings of the clean follow-ups below (each is a distinctive
  prefix up to the quoted phrase); the answer takes up the quoted phrase, so a follow-up gets
  a plausible answer on chat endpoints too.

The messy style (``messy``) writes what chat models do when asked for a user's next message:
wrappers (a "User:" label, quotes, a preamble), follow-ups that ignore the conversation, the
assistant's answer instead of the user's message, refusals, the prompt copied back, the first
user message repeated, the wrong language and rambling loops; and for answers: refusals, the
wrong language, running on into the next user turn, loops.

`hold` lets a test stop the server at a deterministic point (the first follow-up of turn k)
to SIGKILL a run there.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.servers.instances import fill_template, find_topic
from tests.servers.styled import StyledAnswer, draw
from tests.servers.vocab_en import EN_OUTPUTS
from tests.servers.vocab_ja import JA_OUTPUTS

HEADERS: tuple[tuple[str, str, str], ...] = (
    ("followup", "en", "Write the user's next message in the conversation below."),
    ("followup", "ja", "次の会話で、ユーザーが次に送るメッセージを書いてください。"),
    ("continue", "en", "The following is a conversation between a user and a helpful AI"),
    ("continue", "ja", "以下は、ユーザーと親切なAIアシスタントとの会話です。"),
)
# Clean follow-ups, {q}: a phrase quoted from the assistant's last answer.
FOLLOWUPS: dict[str, tuple[str, ...]] = {
    "en": (
        'Thanks! Could you explain "{q}" in more detail?',
        'Thanks. Can you give me a concrete example of "{q}"?',
        'Following up on "{q}": how would that change for a complete beginner?',
        'Following up on your answer, please rewrite the part about "{q}" in two sentences.',
        'Thanks, but what exactly do you mean by "{q}"?',
    ),
    "ja": (
        "ありがとうございます。「{q}」について、もう少し詳しく説明してもらえますか？",
        "ありがとうございます。「{q}」の具体例を一つ挙げてください。",
        "なるほど。「{q}」の部分を、初心者にもわかるように書き直してもらえますか？",
        "なるほど。では、「{q}」について、箇条書き三つでまとめ直してください。",
    ),
}
HEADERS += tuple(("followup_reply", lang, template.split("{q}")[0])
                 for lang, templates in FOLLOWUPS.items() for template in templates)
_HEADINGS = {"en": ("### User", "### Assistant"), "ja": ("### ユーザー", "### アシスタント")}
_QUOTED = re.compile(r'"([^"]+)"|「([^」]+)」')
_EN_PHRASE = re.compile(r"\b[A-Za-z]{5,}(?: [A-Za-z]{3,}){0,2}")
_EN_COMMON = frozenset(("about", "after", "again", "being", "could", "every", "first", "other",
                       "their", "there", "these", "those", "three", "which", "while", "would",
                       "people", "think", "happy", "course", "question", "explain"))
_JA_PHRASE = re.compile(r"[\u4e00-\u9fff\u30a1-\u30fa\u30fc々]{2,8}")
_LEADS = {"en": ("Of course.", "Good question.", "Happy to explain."),
          "ja": ("もちろんです。", "よい質問ですね。", "承知しました。")}
_UNRELATED = {
    "en": ("What is the capital of Australia?", "Can you recommend a podcast for my commute?",
           "How do I keep basil alive on a windowsill?", "Tell me a joke about penguins."),
    "ja": ("ところで、おすすめの映画を教えてください。", "週末に行けるキャンプ場を探しています。",
           "明日の天気はどうなりますか？"),
}
_REFUSALS = {"en": ("I'm sorry, but I can't help with that request.",
                    "As an AI language model, I cannot pretend to be the user."),
             "ja": ("申し訳ありませんが、そのご依頼にはお答えできません。",
                    "AIとして、ユーザーになりきることはできません。")}
_OTHER_LANGUAGE = {"en": "ありがとうございます。もう少し詳しく教えていただけますか？",
                   "ja": "Thanks, could you tell me a little more about that?"}
_WRAPPERS = {"en": ("User: {m}", "**User:** {m}", '"{m}"', "Follow-up: {m}",
                    "Here is the user's next message:\n\n{m}"),
             "ja": ("ユーザー：{m}", "「{m}」", "次のメッセージ：{m}",
                    "ユーザーの次のメッセージは以下のとおりです：\n\n{m}")}
# Messy follow-ups: (shape, rate); the rest are clean.
FOLLOWUP_SHAPES = (("wrapped", 0.25), ("ignores", 0.08), ("answers", 0.06), ("refusal", 0.03),
                   ("copied", 0.03), ("repeat", 0.03), ("other_language", 0.03),
                   ("rambling", 0.02))
REPLY_SHAPES = (("refusal", 0.04), ("other_language", 0.03), ("runs_on", 0.04),
                ("loop", 0.02))


def parse_transcript(text: str, lang: str) -> list[tuple[str, str]]:
    """(role, content) of the transcript in a followup or continue prompt; a trailing empty
    heading (where the model is to write) is left out."""
    user, assistant = _HEADINGS[lang]
    messages: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if line.strip() in (user, assistant):
            messages.append(("user" if line.strip() == user else "assistant", []))
        elif messages:
            messages[-1][1].append(line)
    found = [(role, "\n".join(lines).strip()) for role, lines in messages]
    return [(role, content) for role, content in found if content]


def quote_from(texts: list[str], lang: str, rng: random.Random) -> str:
    """A phrase a user could quote back from the first of `texts` that has one: a few words
    (en) or a kanji/katakana compound (ja); a topic guess when none has."""
    for text in texts:
        if lang == "ja":
            found = _JA_PHRASE.findall(text)
        else:
            found = [m for m in _EN_PHRASE.findall(text)
                     if m.split()[0].lower() not in _EN_COMMON]
        if found:
            return str(rng.choice(found))
    return find_topic(texts[0] if texts else "", lang, rng)


def followup(text: str, lang: str, rng: random.Random) -> str:
    """The clean follow-up to the conversation of a followup prompt: it quotes the latest
    message that has a quotable phrase (a label answer such as "Positive" has none), in a
    wording the conversation has not used yet (a user does not ask the same thing twice)."""
    conversation = parse_transcript(text, lang)
    latest_first = [content for _, content in reversed(conversation)]
    asked = [content for role, content in conversation if role == "user"]
    fresh = [t for t in FOLLOWUPS[lang] if not any(a.startswith(t.split("{q}")[0])
                                                   for a in asked)]
    template = rng.choice(fresh or FOLLOWUPS[lang])
    return template.format(q=quote_from(latest_first, lang, rng))


def reply(message: str, lang: str, rng: random.Random) -> str:
    """The clean answer to a follow-up: it takes up the phrase the follow-up quotes."""
    quoted = _QUOTED.search(message)
    topic = (quoted.group(1) or quoted.group(2)) if quoted else find_topic(message, lang, rng)
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    sentences = [fill_template(t, topic) for t in rng.sample(outputs, 2)]
    return " ".join([rng.choice(_LEADS[lang]), *sentences]) if lang == "en" \
        else rng.choice(_LEADS[lang]) + "".join(sentences)


def _last_user(text: str, lang: str) -> str:
    conversation = parse_transcript(text, lang)
    return next((c for role, c in reversed(conversation) if role == "user"), text)


def clean(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> str:
    _HOLD.wait_if_held(kind, text, lang)
    if kind == "followup":
        body = followup(text, lang, rng)
    elif kind == "continue":
        body = reply(_last_user(text, lang), lang, rng)
    else:  # followup_reply: the text is the follow-up itself
        body = reply(text, lang, rng)
    return body if chat else "\n" + body  # a completion starts on the line after the heading


def messy(kind: str, text: str, lang: str, rng: random.Random, chat: bool) -> StyledAnswer:
    """A realistically bad answer at the rates of FOLLOWUP_SHAPES / REPLY_SHAPES."""
    _HOLD.wait_if_held(kind, text, lang)
    if kind == "followup":
        shape = draw(FOLLOWUP_SHAPES, rng)
        body = _messy_followup(shape, text, lang, rng)
    else:
        shape = draw(REPLY_SHAPES, rng)
        message = _last_user(text, lang) if kind == "continue" else text
        body = _messy_reply(shape, message, lang, rng, chat)
    return StyledAnswer(kind, lang, body if chat else "\n" + body,
                        shapes=[f"{kind}:{shape}"] if shape else [])


def _messy_followup(shape: str | None, text: str, lang: str, rng: random.Random) -> str:
    clean_message = followup(text, lang, rng)
    conversation = parse_transcript(text, lang)
    if shape == "wrapped":
        return rng.choice(_WRAPPERS[lang]).format(m=clean_message)
    if shape == "ignores":
        return rng.choice(_UNRELATED[lang])
    if shape == "answers":
        topic = quote_from([content for _, content in reversed(conversation)], lang, rng)
        outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
        detail = fill_template(rng.choice(outputs), topic)
        return (f'Sure! Here is more detail about "{topic}": {detail}' if lang == "en"
                else f"もちろんです。「{topic}」について詳しく説明します。{detail}")
    if shape == "refusal":
        return rng.choice(_REFUSALS[lang])
    if shape == "copied":
        return "\n".join(text.split("\n")[:2])
    if shape == "repeat":
        return conversation[0][1] if conversation else clean_message
    if shape == "other_language":
        return _OTHER_LANGUAGE[lang]
    if shape == "rambling":
        return " ".join([clean_message] * 40)
    return clean_message


def _messy_reply(shape: str | None, message: str, lang: str, rng: random.Random,
                 chat: bool) -> str:
    answer = reply(message, lang, rng)
    if shape == "refusal":
        return rng.choice(_REFUSALS[lang])
    if shape == "other_language":
        other = "ja" if lang == "en" else "en"
        return reply(message, other, rng)
    if shape == "runs_on":
        user = "User:" if lang == "en" else "ユーザー："
        return f"{answer}\n\n{user} {rng.choice(_UNRELATED[lang])}"
    if shape == "loop":
        return " ".join([answer] * 30)
    return answer


class _Hold:
    """Requests of one kind and turn wait here until released (see `hold`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kind: str | None = None
        self.turn = 0
        self.reached = threading.Event()
        self.released = threading.Event()

    def wait_if_held(self, kind: str, text: str, lang: str) -> None:
        with self.lock:
            held = self.kind == kind
        if not held:
            return
        users = sum(role == "user" for role, _ in parse_transcript(text, lang))
        if users + 1 != self.turn:  # a followup prompt holds the turns before the one asked
            return
        self.reached.set()
        self.released.wait(timeout=120)


_HOLD = _Hold()


@contextmanager
def hold(kind: str, turn: int) -> Iterator[threading.Event]:
    """While active, the in-process server does not answer `kind` requests (``followup``)
    for turn `turn` until the block ends; the yielded event is set when the first arrives.

    A test starts a run, waits for the event (the run is then blocked on that answer, with
    every earlier stage's answers journaled), SIGKILLs it, and resumes.
    """
    with _HOLD.lock:
        _HOLD.kind, _HOLD.turn = kind, turn
        _HOLD.reached.clear()
        _HOLD.released.clear()
    try:
        yield _HOLD.reached
    finally:
        with _HOLD.lock:
            _HOLD.kind = None
        _HOLD.released.set()
