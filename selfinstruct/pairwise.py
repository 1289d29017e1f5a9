"""The pairwise judge: which of two answers to one instruction is better, asked in both orders.

AlpacaEval-style (Li et al. 2023; Dubois et al. 2024): a judge model reads one instruction
(and its input) and two answers, and names the better one with a short reason
(``prompts/<lang>/pairwise.j2``). LLM judges favour one position — often the first answer
shown — far more often than chance (Zheng et al. 2023, "Judging LLM-as-a-judge", measured it),
so each pair is asked twice, A/B and then B/A. An answer wins only when both orders name it;
when the orders disagree the verdict is a tie, because the only thing that changed between
the two requests was the position. An answer nothing can be read from is recorded as
unreadable (``winner`` None), never guessed — and one readable order alone is not used
either, since that would bring the position bias back.

Judges do not answer in the two-line format the prompt asks for. `read_choice` reads what
real models write: ``Better: B``, ``**A**``, ``Output (a)`` (AlpacaEval's own format),
``Answer A is better``, JSON ``{"better": "A"}``, Japanese ``より良い回答：「Ｂ」`` or
``回答Aの方が優れています``, ties ("equally good", 引き分け). A copied prompt
(``Better: A or B``), a refusal, or an answer naming both letters as better is unreadable.

Pure functions over texts plus `pairwise_requests`, which builds the two requests through the
engine's dispatcher (or any object with the same ``params``/``request``), so the generate
pipeline's preference feature and ``selfinstruct compare`` send exactly the same prompts.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from selfinstruct.llm import Request
from selfinstruct.prompts import PromptSet

PAIRWISE_STAGE = "pairwise"
PAIRWISE_MAX_TOKENS = (300, 160)  # (remote, embedded): two short lines, room for chatter
# The template's render values, as `Recipe.templates` declares them: a feature or a command
# that uses the judge loads its PromptSet with these (`PromptSet(..., extra_templates=...)`).
TEMPLATES: dict[str, dict[str, Any]] = {
    "pairwise": {"instruction": "Name a fruit.", "input": "", "answer_a": "Apple.",
                 "answer_b": "A fruit is the seed-bearing part of a plant."},
}

Choice = Literal["first", "second", "tie"]
Winner = Literal["a", "b", "tie"]


class RequestMaker(Protocol):
    """What `pairwise_requests` needs: `selfinstruct.engine.dispatch.Dispatcher` has it."""

    def params(self, stage: str, **extra: Any) -> dict[str, Any]: ...

    def request(self, stage: str, prompt: str, params: dict[str, Any], nonce: str) -> Request: ...


@dataclass(frozen=True)
class Verdict:
    """The judgement of one pair from both orders.

    `winner`: "a"/"b" when both orders chose that answer, "tie" when they disagree (or both
    said tie), None when either answer was unreadable. `rationale`: the A/B order's reason
    (its letters name answer a and answer b as given; "" without a verdict). `detail`: what
    each order said, in words, never empty.
    """

    winner: Winner | None
    rationale: str
    detail: str


def pairwise_requests(maker: Any, prompts: PromptSet, instruction: str, input: str,
                      answer_a: str, answer_b: str, nonce: str, *,
                      stage: str = PAIRWISE_STAGE) -> tuple[Request, Request]:
    """The A/B and the B/A request for one pair (temperature 0, nonces ``{nonce}-ab/-ba``).

    `maker`: an Engine (its ``dispatch`` is used) or a `RequestMaker`. A dispatcher's
    ``max_tokens`` table gets `PAIRWISE_MAX_TOKENS` for `stage` unless the caller set its own,
    so a new stage name cannot fail for want of a default.
    """
    maker = getattr(maker, "dispatch", maker)
    table = getattr(maker, "max_tokens", None)
    if isinstance(table, dict):
        table.setdefault(stage, PAIRWISE_MAX_TOKENS)
    params = maker.params(stage, temperature=0.0, top_p=1.0)
    ab = prompts.render("pairwise", instruction=instruction, input=input,
                        answer_a=answer_a, answer_b=answer_b)
    ba = prompts.render("pairwise", instruction=instruction, input=input,
                        answer_a=answer_b, answer_b=answer_a)
    return (maker.request(stage, ab, params, f"{nonce}-ab"),
            maker.request(stage, ba, params, f"{nonce}-ba"))


def read_verdict(text_ab: str, text_ba: str) -> Verdict:
    """Combine the A/B order's answer and the B/A order's answer into one `Verdict`."""
    first, reason = read_choice(text_ab)
    second, _ = read_choice(text_ba)
    ab = _AB_ORDER[first] if first is not None else None
    ba = _BA_ORDER[second] if second is not None else None
    if ab is None or ba is None:
        quoted = "; ".join(f"{name} order answered {_snippet(text)!r}" for name, choice, text
                           in (("A/B", ab, text_ab), ("B/A", ba, text_ba)) if choice is None)
        return Verdict(None, "", f"unreadable verdict ({quoted})")
    said = f"A/B order {_NAME[ab]}, B/A order {_NAME[ba]}"
    if ab == ba:
        return Verdict(ab, reason, f"{said}: {'a tie' if ab == 'tie' else 'both agree'}")
    return Verdict("tie", reason, f"{said}: the orders disagree (position bias), a tie")


_AB_ORDER: dict[Choice, Winner] = {"first": "a", "second": "b", "tie": "tie"}
_BA_ORDER: dict[Choice, Winner] = {"first": "b", "second": "a", "tie": "tie"}
_NAME: dict[Winner, str] = {"a": "preferred answer A", "b": "preferred answer B",
                            "tie": "said tie"}


def read_choice(text: str) -> tuple[Choice | None, str]:
    """The position one answer chose ("first" = the answer shown as A) and its reason.

    Tried in order, the first that decides wins: a JSON object with a verdict key; labelled
    lines (``Better: B``); lines that are a bare choice (``**A**``, ``Output (a)``, 「B」);
    sentences (``Answer A is better``, 回答Bの方が優れています); tie statements. Two different
    choices in the JSON, the labelled lines or the sentences make the answer unreadable
    (None): the judge contradicted itself. Bare lines naming both letters are headings (an
    answer that walks through "Answer A" and "Answer B"), so the next rule decides.
    """
    normal = unicodedata.normalize("NFKC", text)
    clean = _MARKUP.sub("", normal)
    json_choice, json_reason = _from_json(normal)
    reason = json_reason or _reason_line(clean)
    # A markdown heading "### Answer A" is the template echoed back, not a verdict (the
    # embedded SmolLM2 model answers the judge prompt that way).
    unheaded = _MARKUP.sub("", _HEADING.sub("", normal))
    rules = ((lambda: json_choice, True), (lambda: _from_labels(clean), True),
             (lambda: _from_bare(unheaded), False), (lambda: _from_sentences(clean), True),
             (lambda: _from_ties(clean), True))
    for rule, strict in rules:
        found = rule()
        if found == "ambiguous":
            if strict:
                return None, reason
            continue
        if found is not None:
            return found, reason
    return None, reason


# Markdown emphasis, and '#' so that "### Verdict: A" reads as a labelled line.
_MARKUP = re.compile(r"[*_`#]")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t].*$", re.MULTILINE)
_OPEN, _CLOSE = r"[\"'「『(\[<]", r"[\"'」』)\]>]"
_PREFIX = r"(?i:answer|output|response|option|回答|出力)"
# One choice token: a prefixed letter ("Output (a)", "回答B") in any case, or a bare capital,
# in up to two brackets (MT-Bench-trained judges write "[[A]]").
_TOKEN = (rf"(?:{_PREFIX}\s*{_OPEN}?\s*(?P<p>[abAB])\s*{_CLOSE}?"
          rf"|{_OPEN}{{0,2}}\s*(?P<b>[AB])\s*{_CLOSE}{{0,2}})")
# A subject: "Answer A", "Output (b)", or a capital letter standing alone ("B is better").
_SUBJECT = rf"(?:{_PREFIX}\s*\(?(?P<p>[abAB])\)?|\b(?P<b>[AB]))"
_LABELS = (r"(?i:better(?: answer| one)?|winner|verdict|final verdict|final answer|preferred"
           r"|preference|choice|answer|best)|より良い回答|良い回答|優れた回答|判定|結論|勝者|回答")
_LABEL_LINE = re.compile(rf"^\s*(?:{_LABELS})\s*[:=\-–—]\s*(?P<value>.+?)\s*$", re.MULTILINE)
_VALUE = re.compile(rf"\s*{_TOKEN}(?![A-Za-z0-9])(?P<rest>.*)", re.DOTALL)
# "A or B", "A/B", "AまたはB": the template's own placeholder copied back, not a choice.
_ALTERNATIVE = re.compile(r"\s*(?:(?i:or|and)\b|/|または|か|と|、|,)\s*[\"'「『(\[<]?\s*"
                          r"(?:(?i:answer|output|回答)\s*)?[AB](?![A-Za-z])")
_TIE_VALUE = re.compile(r"(?i:tie|draw|equal|neither|both|none)\b|引き分け|同等|どちらも|なし")
_TIE = re.compile(
    r"(?i:\btie\b|\bequally\s+(?:good|bad|helpful|correct|valid|strong|weak|poor)"
    r"|\bboth\s+(?:answers\s+|responses\s+)?(?:are\s+)?equally\b"
    r"|\bneither\s+(?:answer\s+|one\s+)?is\s+better\b|\bno\s+clear\s+winner\b)"
    r"|引き分け|甲乙つけ|優劣(?:は|を)?つけ|どちらも同(?:程度|等|じくらい)"
    r"|同等(?:です|である|だ|に(?:良い|よい|優れ))")
_BARE_LINE = re.compile(rf"^\s*{_TOKEN}\s*(?:です|だ)?\s*[.。!！]?\s*$", re.MULTILINE)
_BETTER = (r"(?i:better|superior|preferable|stronger|best|more\s+\w+|the\s+winner"
           r"|the\s+(?:better|stronger)\s+(?:one|answer|response))")
_SENTENCES = (
    re.compile(rf"{_SUBJECT}\s+(?i:is|was|seems|appears|looks)\s+"
               rf"(?i:(?:clearly|much|slightly|definitely|far|overall|a|bit)\s+){{0,3}}"
               rf"{_BETTER}"),
    re.compile(rf"(?i:i\s+(?:would\s+)?(?:prefer|choose|pick|select|go\s+with)|winner\s+is"
               rf"|better\s+(?:one|answer|response)\s+is)\s+{_TOKEN}(?![A-Za-z0-9])"),
    re.compile(rf"(?:{_PREFIX}\s*)?[「『]?(?P<b>[AB])[」』]?\s*(?:の方|のほう)?\s*(?:が|は)\s*"
               rf"(?:より|明らかに|やや|少し)?\s*(?:優れ|良い|よい|良く|適切|正確|上|勝)"),
    re.compile(rf"(?:{_PREFIX}\s*)?[「『]?(?P<b>[AB])[」』]?\s*を選"),
    re.compile(r"(?:より良い|より優れた|優れた|良い)(?:方の)?回答は\s*[「『]?(?:回答\s*)?"
               r"(?P<b>[AB])(?![A-Za-z])"),
)
_POSITION_VALUE = re.compile(r"\s*(?i:the\s+)?(?P<pos>(?i:first|second))\s+"
                             r"(?i:answer|response|one)\b")
# "The first answer is better": the position in words (the A/B letters are the norm).
_POSITION = re.compile(r"(?i:the\s+(?P<pos>first|second)\s+(?:answer|response|one|output)\s+"
                       r"(?:is|was|seems)\s+(?:clearly\s+|much\s+|slightly\s+)?"
                       r"(?:better|superior|preferable|stronger|more\s+\w+))")
_WORSE = re.compile(rf"{_SUBJECT}\s+(?i:is|was|seems)\s+(?i:(?:clearly|much|slightly|far)\s+)?"
                    rf"(?i:worse|inferior|weaker)")
_REASON = re.compile(r"^\s*(?:(?i:reason|rationale|explanation|because)|理由)\s*[:=\-–—]\s*"
                     r"(?P<reason>.+?)\s*$", re.MULTILINE)
_JSON_VERDICT_KEYS = ("better", "winner", "preferred", "preference", "choice", "verdict",
                      "answer", "best", "better_answer", "より良い回答", "勝者", "判定")
_JSON_REASON_KEYS = ("reason", "rationale", "explanation", "理由")


def _letter(match: re.Match[str]) -> Choice:
    groups = match.groupdict()
    letter = groups.get("p") or groups["b"]
    return "first" if letter.upper() == "A" else "second"


def _one(choices: list[Choice]) -> Choice | Literal["ambiguous"] | None:
    distinct = set(choices)
    if not distinct:
        return None
    return choices[0] if len(distinct) == 1 else "ambiguous"


def _value_choice(value: str) -> Choice | None:
    """The choice a label's value names ("B", "Answer (a)", "tie"), else None."""
    match = _VALUE.match(value)
    if match is not None:
        return None if _ALTERNATIVE.match(match.group("rest")) else _letter(match)
    position = _POSITION_VALUE.match(value)
    if position is not None:
        return "first" if position.group("pos").lower() == "first" else "second"
    return "tie" if _TIE_VALUE.match(value.strip()) else None


def _from_json(text: str) -> tuple[Choice | Literal["ambiguous"] | None, str]:
    """The verdict and reason of the JSON objects in the answer (fenced or inline)."""
    decoder = json.JSONDecoder()
    choices: list[Choice] = []
    reason = ""
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if not isinstance(obj, dict):
            continue
        keys = {str(k).casefold(): v for k, v in obj.items()}
        for key in _JSON_VERDICT_KEYS:
            value = keys.get(key)
            if isinstance(value, str) and (choice := _value_choice(value)) is not None:
                choices.append(choice)
                break
        for key in _JSON_REASON_KEYS:
            if isinstance(keys.get(key), str) and not reason:
                reason = " ".join(keys[key].split())
    return _one(choices), reason


def _from_labels(text: str) -> Choice | Literal["ambiguous"] | None:
    found = [_value_choice(m.group("value")) for m in _LABEL_LINE.finditer(text)]
    return _one([c for c in found if c is not None])


def _from_bare(text: str) -> Choice | Literal["ambiguous"] | None:
    return _one([_letter(m) for m in _BARE_LINE.finditer(text)])


def _from_sentences(text: str) -> Choice | Literal["ambiguous"] | None:
    found = [_letter(m) for pattern in _SENTENCES for m in pattern.finditer(text)]
    found += ["second" if _letter(m) == "first" else "first" for m in _WORSE.finditer(text)]
    found += ["first" if m.group("pos").lower() == "first" else "second"
              for m in _POSITION.finditer(text)]
    return _one(found)


def _from_ties(text: str) -> Choice | None:
    return "tie" if _TIE.search(text) else None


def _reason_line(text: str) -> str:
    """The ``Reason:`` line; else what the answer says besides its verdict lines."""
    match = _REASON.search(text)
    if match:
        return " ".join(match.group("reason").split())[:500]
    rest = _BARE_LINE.sub("", _LABEL_LINE.sub("", text))
    return " ".join(rest.split())[:500]


def _snippet(text: str) -> str:
    return " ".join(text.split())[:120]
