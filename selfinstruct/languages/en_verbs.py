"""English leading verbs and their objects (the report's verb-noun view of diversity).

A documented heuristic over lemminflect's lexicon (it ships its data in the wheel; spaCy or
NLTK models are separate downloads): the verb is the first word of an imperative — after
"Please", "Can you" or a leading clause that ends in a comma — and its object is the head
(last noun) of the noun phrase after it, skipping an indirect object pronoun ("Tell me a
joke" → tell/joke). Questions and statements have no leading verb and are counted as such,
as the Self-Instruct paper's verb-noun figure leaves them out too. The lexicon loads on first
use only: importing this module stays cheap.
"""

from __future__ import annotations

import re
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




@cache
def _lemminflect() -> Any:
    import lemminflect  # loads its lexicon (~0.7 s): only when a report is built

    return lemminflect


def english_verb(text: str) -> tuple[str | None, str | None]:
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
