"""Quality checks that ask a model: label consistency and an LLM judge.

Heuristics (selfinstruct.filters) cannot tell a wrong answer from a right one; these checks
can, at the price of one request per instance. They are plain functions over `Item`s and
take two callables from the engine instead of a client (`engine.review` passes them):

* ``make_request(stage, prompt, params, nonce) -> Request`` (`Dispatcher.request`), which
  derives the sampling seed from the run seed and the nonce, and
* ``complete(requests) -> list[Completion]`` (`Dispatcher.complete`), which answers from the
  run journal where it can and journals every fresh answer.

So a resumed run replays these answers instead of paying twice, and a test can drive the
checks against any endpoint. The nonce of each request is derived from `Item.key`, which must
be stable across runs (the row id).

Consistency: output-first generation makes a classification instance label-first — the model
picks a label, then writes an input for it. The check asks, in a separate request at a
temperature above 0, which label that input deserves. If the second sample disagrees, the
input does not clearly carry its label and the instance is dropped (Self-Instruct's audit
found exactly such rows). A second model could be asked instead of a second sample; that needs
a second client in the pipeline, so the same model is the default.

Judge: a rubric prompt (``prompts/<lang>/judge.j2``) scores instruction clarity and output
correctness from 1 to 5 in a fixed two-line format; judges answer in many others (bold,
dashes, ``4/5``, JSON, Japanese score names from labels.json), and `parse_judgement` reads
them all. Both scores are kept on the row; an instance scoring below the threshold on either
is dropped, and an answer that cannot be read is dropped as ``unparseable_judgement`` (never
a crash, never a silent pass).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.filters import Drop, FilterSettings
from selfinstruct.llm import Completion, Request
from selfinstruct.prompts import LANGUAGES, Labels, PromptSet

MakeRequest = Callable[[str, str, dict[str, Any], str], Request]
Complete = Callable[[list[Request]], list[Completion]]

CONSISTENCY_STAGE = "consistency"
JUDGE_STAGE = "judge"
SCORE_RANGE = range(1, 6)
@dataclass(frozen=True)
class Item:
    """One instance under review; `key` (the row id) makes its request nonces stable."""

    key: str
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class Judgement:
    """The judge's scores for one item (None when unreadable) and the drop, if any."""

    clarity: int | None
    correctness: int | None
    drop: Drop | None


def check_label_consistency(
    items: Sequence[Item],
    *,
    prompts: PromptSet,
    make_request: MakeRequest,
    complete: Complete,
    settings: FilterSettings | None = None,
) -> list[Drop | None]:
    """Sample each classification item's label again; a disagreement drops the item.

    Pass all instances of a task together: their labels are offered as the choices, so the
    model picks among the task's own classes. A failed request keeps the item unchecked (the
    failure is counted in the run's usage): a missing second opinion is no evidence against
    the first.
    """
    s = settings or FilterSettings()
    options: dict[str, list[str]] = {}
    for item in items:
        labels = options.setdefault(item.instruction, [])
        if item.output not in labels:
            labels.append(item.output)
    params = {"temperature": s.consistency_temperature, "top_p": 1.0, "max_tokens": 16,
              "stop": ["\n"]}
    requests = [
        make_request(
            CONSISTENCY_STAGE,
            prompts.render("label", instruction=item.instruction, input=item.input,
                           options=sorted(options[item.instruction])
                           if len(options[item.instruction]) > 1 else []),
            params,
            f"{CONSISTENCY_STAGE}-{item.key}",
        )
        for item in items
    ]
    verdicts: list[Drop | None] = []
    for item, completion in zip(items, complete(requests), strict=True):
        if completion.error is not None:
            verdicts.append(None)
            continue
        answer = _first_line(completion.text, prompts.labels.class_label)
        if same_label(answer, item.output):
            verdicts.append(None)
        else:
            detail = f"generated {item.output!r}, second sample {answer!r}"
            verdicts.append(Drop("label_disagreement", detail))
    return verdicts


def judge(
    items: Sequence[Item],
    *,
    prompts: PromptSet,
    make_request: MakeRequest,
    complete: Complete,
    settings: FilterSettings | None = None,
) -> list[Judgement]:
    """Score each item with the judge rubric; drop those below ``judge_min_score``.

    `make_request`/`complete` must reach the judge model (a second client when
    ``judge_model`` differs from the generating model). A failed request drops the item as
    ``judge_failed``: the threshold is a gate, and an unjudged row has not passed it.
    """
    s = settings or FilterSettings()
    params = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 32}
    requests = [
        make_request(
            JUDGE_STAGE,
            prompts.render("judge", instruction=item.instruction, input=item.input,
                           output=item.output),
            params,
            f"{JUDGE_STAGE}-{item.key}",
        )
        for item in items
    ]
    results = []
    for completion in complete(requests):
        if completion.error is not None:
            results.append(Judgement(None, None, Drop("judge_failed", completion.error)))
            continue
        scores = parse_judgement(completion.text, prompts.labels)
        if scores is None:
            snippet = " ".join(completion.text.split())[:120]
            drop = Drop("unparseable_judgement", f"answer was {snippet!r}")
            results.append(Judgement(None, None, drop))
            continue
        clarity, correctness = scores
        low = min(clarity, correctness)
        low_score: Drop | None = (Drop("low_judge_score", f"clarity {clarity}, correctness "
                                                          f"{correctness} (needs "
                                                          f"{s.judge_min_score})")
                                 if low < s.judge_min_score else None)
        results.append(Judgement(clarity, correctness, low_score))
    return results


def parse_judgement(text: str, labels: Labels | None = None) -> tuple[int, int] | None:
    """(clarity, correctness) from a judge answer, else None.

    Judges answer ``Clarity: 4``, ``Clarity - 4``, ``**Clarity:** 4/5``, ``clarity=4``,
    ``Clarity (1-5): 4``, JSON ``{"clarity": 4, "correctness": 5}``, 「明確さ：４」. The score
    names are the ones `labels` (labels.json) defines plus the English ones (models often
    answer in English); without `labels`, those of every bundled language. A score outside
    1-5, a decimal score or a missing field makes the answer unreadable.
    """
    text = _MARKUP.sub("", unicodedata.normalize("NFKC", text))
    scores = []
    for pattern in _score_patterns(labels):
        match = pattern.search(text)
        if match is None or int(match.group("score")) not in SCORE_RANGE:
            return None
        scores.append(int(match.group("score")))
    return scores[0], scores[1]


_MARKUP = re.compile(r"[*_`#]")


def _score_patterns(labels: Labels | None) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The clarity and correctness patterns for `labels` (None: every bundled language)."""
    sets = [labels] if labels is not None else _bundled_labels()
    return (_score_pattern(("Clarity", *(n for s in sets for n in s.clarity))),
            _score_pattern(("Correctness", *(n for s in sets for n in s.correctness))))


@functools.lru_cache(maxsize=1)
def _bundled_labels() -> list[Labels]:
    return [PromptSet(language).labels for language in LANGUAGES]


@functools.lru_cache(maxsize=16)
def _score_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(unicodedata.normalize("NFKC", n))
                     for n in sorted(set(names), key=len, reverse=True))
    return re.compile(
        rf"(?<![A-Za-z])[\"']?(?:{words})[\"']?(?:[ \t]+score)?"
        rf"(?:[ \t]*\([^)\n]{{0,20}}\))?[ \t]*(?:[:=\-–—]|is)?[ \t]*"
        rf"(?P<score>\d{{1,2}})(?!\d|\.\d)",
        re.IGNORECASE)


def _first_line(text: str, label_word: str) -> str:
    """The answer's first non-empty line, without an echoed ``Class label:`` prefix."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return re.sub(rf"^(?:{re.escape(label_word)}|class label)\s*[:：]\s*", "", line,
                          flags=re.IGNORECASE)
    return ""


def _normalise_label(text: str) -> str:
    """Case, width, quotes, end punctuation and a Japanese copula ("ポジティブです") go."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.strip().strip("\"'`*「」『』()（）[]").rstrip(".。!！?？").strip()
    return re.sub(r"(?:です|でした|である|だ)$", "", text).strip("「」『』\"' ")


def same_label(answer: str, label: str) -> bool:
    """Equal after normalising, or the answer starts with the label and then explains."""
    a, b = _normalise_label(answer), _normalise_label(label)
    if not a or not b:
        return False
    return a == b or (a.startswith(b) and not a[len(b)].isalnum())
