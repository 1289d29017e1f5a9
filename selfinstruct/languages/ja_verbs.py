"""Japanese predicates and their objects (the report's verb-noun view of diversity).

SudachiPy with the packaged core dictionary: the predicate is the last content verb of the
first sentence (auxiliaries after て/で such as ください are skipped; a サ変 noun plus する
counts as one verb, 説明する), and its object is the compound noun before the nearest
preceding を. The dictionary loads on first use only: importing this module stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def _sudachi() -> Any:
    from sudachipy import Dictionary, SplitMode

    return Dictionary(dict="core").tokenizer(mode=SplitMode.C)


# Verbs that only carry a request or "do": the action is the verb before よう or the サ変
# noun they take as object ("要約をお願いします", "比較するよう依頼します").
_JA_LIGHT = frozenset({"する", "行う", "願う", "お願いする", "依頼する", "頼む", "希望する",
                       "求める", "要望する"})
_JA_NOMINALISERS = frozenset({"こと", "もの"})
_Unit = tuple[int, str]  # a verb: index of its first token, dictionary form


def japanese_predicate(text: str) -> tuple[str | None, str | None]:
    first = re.split(r"[。？！?!\n]", text, maxsplit=1)[0]
    morphemes = list(_sudachi().tokenize(first))
    surfaces = [m.surface() for m in morphemes]
    tags = [m.part_of_speech() for m in morphemes]
    units = _ja_verb_units(morphemes, tags)
    if not units:
        return None, None
    start, verb = units[-1]  # the last one: Japanese puts the predicate last
    if verb in _JA_LIGHT:
        you = next((i for i in range(start - 1, max(start - 3, -1), -1)
                    if tags[i][1] == "助動詞語幹"), None)  # "…するよう(に)願います"
        inner = [unit for unit in units if you is not None and unit[0] < you]
        particle = _particle_before(surfaces, tags, start)
        if inner:
            start, verb = inner[-1]
        elif particle and "サ変可能" in tags[particle - 1]:
            action = particle - 1  # "成功事例の列挙をお願い": 列挙する, of 成功事例
            begin = _compound_start(tags, action)
            if begin == action and begin > 0 and surfaces[begin - 1] == "の":
                return surfaces[action] + "する", "".join(
                    surfaces[_compound_start(tags, begin - 1):begin - 1]) or None
            return surfaces[action] + "する", "".join(surfaces[begin:action]) or None
    particle = _particle_before(surfaces, tags, start)
    if particle is None:
        return verb, None
    return verb, "".join(surfaces[_compound_start(tags, particle):particle]) or None


def _ja_verb_units(morphemes: Sequence[Any], tags: Sequence[Sequence[str]]) -> list[_Unit]:
    """(first token, dictionary form) of each content verb, in order.

    Skipped: auxiliaries (after て/で, or right after another verb: しなさい, お願いします) and
    verbs that modify the next noun (山火事をめぐる課題). A noun followed by する is one verb
    (説明する); a sentence ending in a サ変 noun (要約をお願い) ends with that verb.
    """
    units = []
    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i else None
        if tag[0] != "動詞":
            continue
        if prev is not None and (prev[0] == "動詞" or (
                prev[1] == "接続助詞" and morphemes[i - 1].surface() in ("て", "で"))):
            continue
        if (i + 1 < len(tags) and tags[i + 1][0] == "名詞"
                and morphemes[i + 1].surface() not in _JA_NOMINALISERS):
            continue
        form = morphemes[i].dictionary_form()
        if form == "する" and prev is not None and prev[0] == "名詞":
            units.append((i - 1, morphemes[i - 1].surface() + "する"))
        else:
            units.append((i, form))
    last = max((i for i, tag in enumerate(tags) if tag[0] not in ("補助記号", "助詞", "助動詞")),
               default=None)
    if last is not None and "サ変可能" in tags[last] and (not units or units[-1][0] < last):
        units.append((last, morphemes[last].surface() + "する"))
    return units


def _particle_before(surfaces: Sequence[str], tags: Sequence[Sequence[str]],
                     end: int) -> int | None:
    """Index of the nearest object marker を before `end`, if a noun precedes it."""
    for i in range(end - 1, 0, -1):
        if surfaces[i] == "を" and tags[i][0] == "助詞":
            return i if tags[i - 1][0] in ("名詞", "接尾辞") else None
    return None


def _compound_start(tags: Sequence[Sequence[str]], end: int) -> int:
    """Where the compound noun ending just before `end` starts (numbers are not part of it)."""
    begin = end
    while begin > 0 and tags[begin - 1][0] in ("名詞", "接頭辞", "接尾辞") and \
            tags[begin - 1][1] != "数詞":
        begin -= 1
    return begin
