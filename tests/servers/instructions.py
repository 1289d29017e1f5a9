"""Clean instructions: plausible good items plus deliberately bad ones at fixed rates.

Why: every classic filter (dedup, ROUGE-L, blacklist, length, "Write a program",
punctuation) must see real traffic from the clean style; ``BAD_ITEM_RATES`` sets how much.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from tests.servers.vocab_en import (
    EN_AUDIENCE_LEADS,
    EN_AUDIENCES,
    EN_BLACKLISTED,
    EN_CLASSIFICATION_FRAMES,
    EN_CLASSIFICATION_TAILS,
    EN_CONSTRAINTS,
    EN_FILLERS,
    EN_FORMATS,
    EN_IMPERATIVE_FRAMES,
    EN_LANGUAGES,
    EN_NUMBERS,
    EN_PROGRAMS,
    EN_QUESTION_FRAMES,
    EN_TOO_SHORT,
    EN_TOPICS,
    EN_WRAPPERS,
)
from tests.servers.vocab_ja import (
    JA_ASPECTS,
    JA_AUDIENCE_OPENERS,
    JA_AUDIENCES,
    JA_BLACKLISTED,
    JA_CLASSIFICATION_FRAMES,
    JA_CONSTRAINTS,
    JA_CREATIVE_COUNTS,
    JA_CREATIVE_FORMS,
    JA_CREATIVE_LINKS,
    JA_CREATIVE_VERBS,
    JA_DOC_VERBS,
    JA_DOCUMENTS,
    JA_ENDINGS,
    JA_EVENTS,
    JA_EXTRACTS,
    JA_NEAR_DUP_CHARS,
    JA_NOUN_ENDINGS,
    JA_PROGRAMS,
    JA_PURPOSES,
    JA_QUESTION_FRAMES,
    JA_TEXT_TASKS,
    JA_TEXTS,
    JA_TOO_SHORT,
    JA_TOPICS,
    JA_VERBS,
    JA_VIEWPOINTS,
)


def cap_first(text: str) -> str:
    """Upper-case the first character only (``str.capitalize`` would lower the rest)."""
    return text[:1].upper() + text[1:]


_ALT_RE = re.compile(r"\[([^\[\]]*)\]")


def _expand(template: str, rng: random.Random) -> str:
    """Replace every ``[a|b|c]`` group by one alternative (an empty alternative is allowed)."""
    return _ALT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), template)


_ARTICLE_RE = re.compile(r"\b([Aa]n?) ([A-Za-z][\w'-]*)")
_CONSONANT_SOUND = ("eu", "one", "uni", "use", "usu", "ur")  # "a eulogy", "a one-day"
_VOWEL_SOUND = ("hour", "honest", "FAQ")


def _fix_article(match: re.Match[str]) -> str:
    """Choose "a" or "an" by the next word's sound, so slot filling stays grammatical."""
    article, word = match.group(1), match.group(2)
    low = word.lower()
    vowel = (low[0] in "aeiou" and not low.startswith(_CONSONANT_SOUND)) or word.startswith(
        _VOWEL_SOUND
    ) or low.startswith(("urg", "urb"))
    fixed = "an" if vowel else "a"
    return f"{fixed.capitalize() if article[0].isupper() else fixed} {word}"


def en_good_instruction(rng: random.Random) -> str:
    """A plausible, grammatical English instruction assembled from independent slots."""
    topic = rng.choice(EN_TOPICS)
    topic2 = rng.choice([t for t in EN_TOPICS if t != topic])
    roll = rng.random()
    if roll < 0.15:
        frame = rng.choice(EN_CLASSIFICATION_FRAMES) + rng.choice(EN_CLASSIFICATION_TAILS)
        imperative = False
    elif roll < 0.35:
        frame, imperative = rng.choice(EN_QUESTION_FRAMES), False
    else:
        frame, imperative = rng.choice(EN_IMPERATIVE_FRAMES), True
    lead = rng.choice(EN_AUDIENCE_LEADS) if imperative else "for {a}"
    aud = " " + lead.format(a=rng.choice(EN_AUDIENCES)) if rng.random() < 0.55 else ""
    cons = " " + rng.choice(EN_CONSTRAINTS) if rng.random() < 0.55 else ""
    text = _expand(frame, rng).format(
        topic=topic, topic2=topic2, aud=aud, cons=cons, fmt=rng.choice(EN_FORMATS),
        n=rng.choice(EN_NUMBERS), lang=rng.choice(EN_LANGUAGES),
    )
    if len(text.split()) < 5:  # "Explain inflation." would fail the length filter
        text = f"{text[:-1]} {rng.choice(EN_CONSTRAINTS)}{text[-1]}"
    text = _ARTICLE_RE.sub(_fix_article, text)
    if imperative and rng.random() < 0.1:
        text = rng.choice(EN_WRAPPERS).format(x=text[0].lower() + text[1:-1])
    return text


def ja_good_instruction(rng: random.Random) -> str:
    """A plausible Japanese instruction whose characters vary a lot from slot to slot.

    Several clause structures, each built from kanji-heavy vocabularies and ``[a|b]``
    alternations, keep the character-level ROUGE-L between two random instructions low
    (typically 0.15-0.35), so a 0.5 threshold still accepts most of them.
    """
    t = rng.choice(JA_TOPICS)
    t2 = rng.choice([x for x in JA_TOPICS if x != t])
    a = rng.choice(JA_AUDIENCES)
    asp = rng.choice(JA_ASPECTS)
    verb = rng.choice(JA_VERBS)
    end = rng.choice(JA_ENDINGS)
    ctx_roll = rng.random()
    opener = ""
    if ctx_roll < 0.3:
        opener = rng.choice(JA_AUDIENCE_OPENERS).format(a=a)
    elif ctx_roll < 0.6:
        opener = rng.choice(JA_PURPOSES) + "、"
    cons = rng.choice(JA_CONSTRAINTS) if rng.random() < 0.45 else ""
    roll = rng.random()
    if roll < 0.10:
        doc = rng.choice(("レビュー", "口コミ", "投稿", "文", "感想", "発言"))
        return _expand(rng.choice(JA_CLASSIFICATION_FRAMES), rng).format(t=t, doc=doc, end=end)
    if roll < 0.26:
        return _expand(rng.choice(JA_QUESTION_FRAMES), rng).format(t=t, t2=t2, a=a, asp=asp)
    if roll < 0.50:
        return f"{opener}{t}の{asp}を{cons}{verb}{end}"
    if roll < 0.58:
        link = rng.choice(("に関する", "についての", "をめぐる", "における"))
        return f"{opener}{t}{link}{asp}の{verb}を{rng.choice(JA_NOUN_ENDINGS)}"
    if roll < 0.72:
        count = rng.choice(JA_CREATIVE_COUNTS)
        form = rng.choice(JA_CREATIVE_FORMS)
        link = rng.choice(JA_CREATIVE_LINKS)
        return f"{opener}{t}{link}{form}を{count}{rng.choice(JA_CREATIVE_VERBS)}{end}"
    if roll < 0.82:
        event, doc = rng.choice(JA_EVENTS), rng.choice(JA_DOCUMENTS)
        link = rng.choice(("向けの", "を対象とした", "のための", "が参加する"))
        return f"{a}{link}{t}{event}の{doc}を{cons}{rng.choice(JA_DOC_VERBS)}{end}"
    if roll < 0.92:
        text = rng.choice(JA_TEXTS)
        where = rng.choice(("次の", "以下の", "与えられた", "この", "下記の"))
        if rng.random() < 0.5:
            return f"{opener}{where}{t}の{text}を{rng.choice(JA_TEXT_TASKS)}{end}"
        verb = rng.choice(("抽出", "列挙", "特定"))
        return f"{opener}{where}{t}の{text}から{rng.choice(JA_EXTRACTS)}を{verb}{end}"
    return f"{opener}{t}と{t2}を{rng.choice(JA_VIEWPOINTS)}の観点で{cons}比較{end}"


def _near_duplicate(original: str, lang: str, rng: random.Random) -> str:
    """Change one word (en) or two characters (ja): ROUGE-L stays far above any threshold."""
    if lang == "ja":
        if len(original) < 4:
            return original + "ね"
        pos = rng.randrange(0, len(original) - 2)
        repl = rng.choice(JA_NEAR_DUP_CHARS) + rng.choice(JA_NEAR_DUP_CHARS)
        return original[:pos] + repl + original[pos + 2 :]
    words = original.split()
    if len(words) < 2:
        return original + " " + rng.choice(EN_FILLERS)
    i = rng.randrange(1, len(words))
    tail = re.sub(r"^[A-Za-z0-9'\-]+", "", words[i])
    words[i] = rng.choice(EN_FILLERS) + tail
    return " ".join(words)


# Cumulative thresholds for the deliberately bad items (see generate_instruction).
BAD_ITEM_RATES: tuple[tuple[str, float], ...] = (
    ("copy", 0.08),
    ("near_duplicate", 0.05),
    ("blacklisted", 0.04),
    ("too_short", 0.03),
    ("program", 0.02),
    ("punctuation", 0.02),
)


def generate_instruction(
    lang: str, rng: random.Random, in_context: Sequence[str],
    rewrite: Callable[[str], str] | None = None,
) -> tuple[str, str]:
    """Return ``(instruction, category)``; category is ``"good"`` or the bad-item kind.

    About 24 % of items are deliberately bad, in the proportions of ``BAD_ITEM_RATES``, so
    that exact dedup, ROUGE-L near-duplicate rejection, the keyword blacklist, the length
    filter, the "Write a program" filter and the punctuation filter all see real traffic.
    """
    roll = rng.random()
    acc = 0.0
    category = "good"
    for name, rate in BAD_ITEM_RATES:
        acc += rate
        if roll < acc:
            category = name
            break
    if category in ("copy", "near_duplicate") and not in_context:
        category = "good"
    topic = rng.choice(EN_TOPICS if lang == "en" else JA_TOPICS)
    if category == "copy":
        return rng.choice(list(in_context)), category
    if category == "near_duplicate":
        return _near_duplicate(rng.choice(list(in_context)), lang, rng), category
    if category == "blacklisted":
        frames = EN_BLACKLISTED if lang == "en" else JA_BLACKLISTED
        return rng.choice(frames).format(topic=topic, t=topic), category
    if category == "too_short":
        return rng.choice(EN_TOO_SHORT if lang == "en" else JA_TOO_SHORT), category
    if category == "program":
        frames = EN_PROGRAMS if lang == "en" else JA_PROGRAMS
        return rng.choice(frames).format(topic=topic, t=topic), category
    good = en_good_instruction(rng) if lang == "en" else ja_good_instruction(rng)
    if rewrite is not None:  # a plugin's rewrite (a persona): no RNG draw, clean bytes kept
        good = rewrite(good)
    if category == "punctuation":
        return (f"- {good}" if rng.random() < 0.5 else f'"{good}"'), category
    return good, "good"
