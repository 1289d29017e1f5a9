"""Do a verifier's answer and the dataset's answer agree? The pure logic of `--verify-model`.

Errors differ between models, so an answer another model reproduces independently is more
likely right (issue 15). Three ways to decide, cheapest first:

* **exact**, for classification tasks: the verifier's label must be the row's label, after
  the same normalisation the label-consistency check uses (case, width, quotes, a trailing
  period, a Japanese copula; "Positive — the reviewer loved it" starts with the label and
  counts). Only the answer's first line is compared: labels are one line.
* **numeric**, when both answers are a bare number (optionally with a short lead-in such as
  "The answer is" / 「答えは」 and one unit word: "42", "$12.50", "42 apples", 「約42個です」).
  Two numbers agree when they differ by at most half a unit in the last digit of the less
  precise one (3.14 vs 3.14159 agree, 0.33 vs 0.333 agree, 1000 vs 1001 do not) or by a
  relative 1e-9 (float noise). Different unit words ("km" vs "miles") leave it to the judge.
  Thousands separators ("1,234") are read; "1,5" is ambiguous and is not a number here.
* **judge** otherwise: a model says whether the two answers say the same thing
  (prompts/<lang>/same_answer.j2), with a short rationale that is kept on the row.

The verifier's numbered answers and the judge's numbered verdicts are read here too
(`parse_answers`, `parse_verdicts`): one request covers all instances of a task.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from selfinstruct.parse_text import drop_closing_remarks, is_fence, unwrap
from selfinstruct.quality import same_label

EXACT, NUMERIC, JUDGE = "exact", "numeric", "judge"
UNANSWERED = "unanswered"  # the verifier (or the judge) gave nothing readable for it
# Relative tolerance below the written precision: only float noise (1e-9).
REL_TOL = Decimal("1e-9")


@dataclass(frozen=True)
class Verdict:
    """One verifier's decision on one answer. `agreed` None: nothing readable to decide on."""

    agreed: bool | None
    method: str
    rationale: str


@dataclass(frozen=True)
class Number:
    """A number as written: its value, how many decimals it was given to, its unit word."""

    value: Decimal
    decimals: int
    unit: str


# Lead-ins a bare numeric answer may carry, after NFKC and casefolding.
_LEAD_IN = re.compile(
    r"^(?:(?:the )?(?:final |correct )?(?:answer|result|total|sum)(?: is)?[:=]?|answer:|"
    r"result:|=|approximately|about|roughly|around|答えは|答え[:]|回答[:]|結果は|合計は|約|およそ)"
    r"\s*")
_TAIL = re.compile(r"(?:です|になります|となります|ぐらい|くらい|程度)?[.。!！]?$")
_NUMBER = re.compile(r"^(?P<sign>[-+−]?)(?P<currency>[$€£¥￥]?)\s*"
                     r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
                     r"(?:e(?P<exp>[-+]?\d{1,3}))?\s*(?P<unit>[^\s\d.,]{0,12})$")
_MARKUP = re.compile(r"[*_`]")


def _without_lead_in(text: str) -> str:
    """"The answer is Positive." -> "positive." (casefolded: labels are compared so)."""
    return _LEAD_IN.sub("", unicodedata.normalize("NFKC", text).strip().casefold())


def as_number(text: str) -> Number | None:
    """The number a short answer consists of, or None (see the module docstring)."""
    text = _MARKUP.sub("", unicodedata.normalize("NFKC", text)).strip().casefold()
    text = _TAIL.sub("", _LEAD_IN.sub("", text)).strip()
    match = _NUMBER.match(text)
    if match is None:
        return None
    frac = match.group("frac") or ""
    digits = match.group("int").replace(",", "") + (f".{frac}" if frac else "")
    value = Decimal(digits) * Decimal(10) ** int(match.group("exp") or 0)
    if match.group("sign") in ("-", "−"):
        value = -value
    unit = match.group("unit") or match.group("currency")
    return Number(value, len(frac) - int(match.group("exp") or 0), unit.strip("%"))


def numbers_agree(a: Number, b: Number) -> bool:
    """Within half a unit of the less precise number's last digit, or float noise apart."""
    half_unit = Decimal(5) * Decimal(10) ** (-min(a.decimals, b.decimals) - 1)
    diff = abs(a.value - b.value)
    return diff <= half_unit or diff <= REL_TOL * max(abs(a.value), abs(b.value))


def first_line(text: str) -> str:
    """The first non-empty line, without markup wrapped around it."""
    for line in text.splitlines():
        if line.strip() and not is_fence(line):
            return unwrap(line.strip())
    return ""


def compare(reference: str, answer: str, *, classification: bool) -> Verdict | None:
    """Exact or numeric verdict on `answer` against the row's `reference`; None: ask the judge.

    A classification task is always decided exactly (a chatty or wrong label is a
    disagreement: the verifier did not confirm the label).
    """
    if classification:
        said = first_line(answer)
        agreed = same_label(said, reference) or same_label(_without_lead_in(said), reference)
        return Verdict(agreed, EXACT, f"label {reference!r} vs {said!r}")
    ours, theirs = as_number(first_line(reference)), as_number(first_line(answer))
    if ours is None or theirs is None:
        return None
    if ours.unit and theirs.unit and ours.unit != theirs.unit:
        return None
    agreed = numbers_agree(ours, theirs)
    return Verdict(agreed, NUMERIC, f"{ours.value} vs {theirs.value}")


# "Answer 2:", "**Answer 2.**", "### Answer 2", "Answer 2 - …", "回答2：" at a line start.
_ANSWER_MARK = re.compile(
    r"^[ \t>#*_-]*(?:answer|回答|答え)[ \t]*(?P<n>\d{1,2})[ \t]*[*_]*"
    r"(?:[ \t]*[:：.)]|[ \t]*[-–—](?=[ \t]))?[*_]*[ \t]*",
    re.IGNORECASE | re.MULTILINE)
# Without any such marker, a plain numbered list ("1. …", "2) …") is read the same way.
_NUMBER_MARK = re.compile(r"^[ \t*_]*(?P<n>\d{1,2})[.)．）][*_]*[ \t]+", re.MULTILINE)


def parse_answers(text: str, count: int) -> list[str | None]:
    """The verifier's answer to each of `count` numbered inputs (None where it gave none).

    Text before the first marker is a preamble; closing remarks after the last answer go. A
    single-input answer may come without any marker: then the whole text is the answer.
    """
    found: dict[int, str] = {}
    marks = list(_ANSWER_MARK.finditer(text)) or list(_NUMBER_MARK.finditer(text))
    ends = [following.start() for following in marks[1:]] + ([len(text)] if marks else [])
    for mark, end in zip(marks, ends, strict=True):
        body = _clean_answer(text[mark.end():end])
        number = int(mark.group("n"))
        if body and number not in found and 1 <= number <= count:
            found[number] = body
    if not marks and count == 1:
        body = _clean_answer(re.sub(r"^\s*(?:answer|回答|答え)\s*[:：]", "", text,
                                    flags=re.IGNORECASE))
        if body:
            found[1] = body
    return [found.get(n) for n in range(1, count + 1)]


def _clean_answer(body: str) -> str:
    lines = [line for line in body.strip().splitlines() if not is_fence(line)]
    return unwrap(drop_closing_remarks("\n".join(lines)))


# "Pair 2: SAME — both give the capital", "**Pair 2:** different. …", "ペア2：同じ（…）"; for a
# single pair the marker may be missing ("SAME — both say Paris."). The reason may follow on
# the next line.
_WORD = (r"(?P<word>not the same|same|different|同じではない|同じでない|同じではありません|同じ|"
         r"異なる|違う)[*_]*[ \t]*[.:：,、。—–-]*[ \t]*(?P<why>.*)$")
_VERDICT = re.compile(
    r"^[ \t>#*_-]*(?:pair|ペア)[ \t]*(?P<n>\d{1,2})[ \t]*[*_]*[ \t]*[:：.)-]?[*_ \t]*" + _WORD,
    re.IGNORECASE | re.MULTILINE)
_BARE_VERDICT = re.compile(r"^[ \t>#*_-]*(?:verdict[ \t]*[:：][ \t]*)?[*_]*" + _WORD,
                           re.IGNORECASE | re.MULTILINE)
_SAME = ("same", "同じ")


def parse_verdicts(text: str, count: int) -> list[tuple[bool, str] | None]:
    """The judge's (same?, rationale) for each of `count` numbered pairs; None if missing."""
    text = unicodedata.normalize("NFKC", text)
    found: dict[int, tuple[bool, str]] = {}
    matches = [(int(m.group("n")), m) for m in _VERDICT.finditer(text)]
    if not matches and count == 1:
        bare = _BARE_VERDICT.search(text)
        matches = [(1, bare)] if bare is not None else []
    for number, match in matches:
        if 1 <= number <= count and number not in found:
            why = match.group("why").strip() or _next_line(text, match.end())
            found[number] = (match.group("word").casefold() in _SAME,
                             why.strip("()（）").strip())
    return [found.get(n) for n in range(1, count + 1)]


def _next_line(text: str, end: int) -> str:
    """The first non-empty line after `end`, unless it is the next pair's verdict."""
    for line in text[end:].splitlines():
        if line.strip():
            return "" if _VERDICT.match(line) else line.strip()
    return ""


def share_agreeing(entries: Iterable[Mapping[str, Any]]) -> float:
    """Share of verifiers that agreed; a verifier with no readable answer did not agree."""
    entries = list(entries)
    return sum(1 for e in entries if e.get("agreed") is True) / len(entries) if entries else 1.0


def agreement_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Agreement per verifier over rows carrying `provenance.agreement` (train rows: the
    instances kept; `selfinstruct.verify.run_summary` also counts the dropped ones)."""
    return summarize(entry for row in rows
                     for entry in (row.get("provenance") or {}).get("agreement") or [])


def summarize(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per verifier: kind, answers checked, agreed, `rate` = agreed / checked (None when
    nothing was checked) and how many were decided by each method."""
    verifiers: dict[str, dict[str, Any]] = {}
    for entry in entries:
        stats = verifiers.setdefault(entry["verifier"], {
            "kind": entry.get("kind"), "checked": 0, "agreed": 0, "rate": None, "methods": {}})
        stats["checked"] += 1
        stats["agreed"] += entry.get("agreed") is True
        method = entry.get("method") or UNANSWERED
        stats["methods"][method] = stats["methods"].get(method, 0) + 1
    for stats in verifiers.values():
        stats["rate"] = round(stats["agreed"] / stats["checked"], 4) if stats["checked"] else None
    return {"verifiers": verifiers}
