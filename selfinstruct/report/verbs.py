"""Leading verbs and their objects: the Self-Instruct paper's verb-noun view of diversity.

* English uses a documented heuristic over lemminflect's lexicon (it ships its data in the
  wheel; spaCy or NLTK models are separate downloads): the verb is the first word of an
  imperative — after "Please", "Can you" or a leading clause that ends in a comma — and its
  object is the head (last noun) of the noun phrase after it, skipping an indirect object
  pronoun ("Tell me a joke" → tell/joke). Questions and statements have no leading verb and
  are counted as such, as the paper's verb-noun figure leaves them out too.
* Japanese uses SudachiPy with the packaged core dictionary: the predicate is the last content
  verb of the first sentence (auxiliaries after て/で such as ください are skipped; a サ変 noun
  plus する counts as one verb, 説明する), and its object is the compound noun before the
  nearest preceding を.

Both analysers load their lexicons on first use only: importing this module stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

# "Given a list, sort it": a leading clause opened by one of these ends at the first comma.
_EN_OPENERS = frozenset({"given", "using", "based", "in", "for", "after", "before", "with",
                         "without", "from", "as", "if", "when", "once", "considering",
                         "assuming", "according", "under", "on", "at", "by", "within"})
_EN_POLITE = frozenset({"please", "kindly", "now", "then", "also", "briefly", "quickly",
                        "carefully", "just", "simply", "first", "next", "finally"})
_EN_ASKING = frozenset({"can", "could", "would", "will"})  # "Can you explain …"
_EN_QUESTION = frozenset({"what", "how", "why", "when", "where", "which", "who", "whom",
                          "whose", "is", "are", "was", "were", "do", "does", "did", "can",
                          "could", "would", "will", "should", "shall", "may", "might", "has",
                          "have", "had", "if", "am"})
# Phrasal verbs common in instructions: "Come up with a slogan" is come up with/slogan.
_EN_PHRASAL = (("come", "up", "with"), ("point", "out"), ("figure", "out"), ("find", "out"),
               ("sum", "up"), ("break", "down"), ("write", "down"), ("think", "of"),
               ("look", "up"), ("fill", "in"), ("set", "up"), ("carry", "out"),
               ("make", "up"), ("list", "out"), ("rule", "out"), ("work", "out"))
_EN_INDIRECT = frozenset({"me", "us", "him", "her", "them", "you", "someone", "somebody"})
# A noun phrase ends at a preposition, conjunction, relative or question word.
_EN_NP_END = frozenset({
    "about", "above", "across", "after", "against", "along", "among", "around", "as", "at",
    "based", "before", "behind", "below", "between", "beyond", "by", "during", "except", "for",
    "from", "in", "including", "inside", "into", "like", "near", "of", "off", "on", "onto",
    "out", "over", "per", "since", "than", "through", "throughout", "to", "toward", "towards",
    "under", "until", "upon", "using", "via", "with", "within", "without", "that", "which",
    "who", "whom", "whose", "where", "when", "why", "how", "what", "whether", "if", "and",
    "or", "but", "so", "because", "while", "is", "are", "was", "were", "be",
})
_EN_NOT_HEAD = frozenset({"a", "an", "the", "this", "that", "these", "those", "my", "your",
                          "his", "her", "its", "our", "their", "some", "any", "each", "every",
                          "all", "both", "few", "several", "many", "more", "most", "other",
                          "another", "such", "one", "two", "three", "four", "five"})


def leading_verbs(texts: Iterable[str], language: str) -> list[tuple[str | None, str | None]]:
    """(verb, object) per instruction, in dictionary form; None where there is none."""
    analyse = _japanese_predicate if language == "ja" else _english_verb
    return [analyse(text) for text in texts]


@cache
def _lemminflect() -> Any:
    import lemminflect  # loads its lexicon (~0.7 s): only when a report is built

    return lemminflect


def _english_verb(text: str) -> tuple[str | None, str | None]:
    lex = _lemminflect()
    first = re.split(r"[.?!:;\n]", text, maxsplit=1)[0]
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", first)
    if words and words[0].lower() in _EN_OPENERS and "," in first:
        words = re.findall(r"[A-Za-z][A-Za-z'-]*", first.partition(",")[2])
    while words and words[0].lower() in _EN_POLITE:
        words = words[1:]
    if len(words) >= 2 and words[0].lower() in _EN_ASKING and words[1].lower() == "you":
        words = words[2:]
        while words and words[0].lower() in _EN_POLITE:
            words = words[1:]
    if not words or words[0].lower() in _EN_QUESTION or not _is_verb(words[0]):
        return None, None
    verb = lex.getLemma(words[0].lower(), upos="VERB")[0].lower()
    rest = words[1:]
    for phrase in _EN_PHRASAL:
        if (verb, *(w.lower() for w in rest[:len(phrase) - 1])) == phrase:
            verb, rest = " ".join(phrase), rest[len(phrase) - 1:]
            break
    if rest and rest[0].lower() in _EN_INDIRECT and len(rest) > 1:
        rest = rest[1:]  # "Give me three ideas": the object is what is given
    head = None
    for word in rest:
        low = word.lower()
        lemmas = lex.getAllLemmas(low)
        if low in _EN_NP_END or (head and set(lemmas) == {"VERB"}):
            break  # a verb-only word ("asking") after a noun starts a new clause
        # A word the lexicon lacks is most likely a new noun ("podcasts"); its rules lemmatise it.
        if ("NOUN" in lemmas or not lemmas) and low not in _EN_NOT_HEAD:
            head = lex.getLemma(low, upos="NOUN")[0].lower()
    return verb, head


def _is_verb(word: str) -> bool:
    return "VERB" in _lemminflect().getAllLemmas(word.lower())


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


def _japanese_predicate(text: str) -> tuple[str | None, str | None]:
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
