"""Clean instance material: topics, input/output pairs and label sets for a task.

Why a module of its own: the input-first and output-first answers, the Alpaca items and the
label-consistency judge must all derive the same topic and label set from an instruction.
"""

from __future__ import annotations

import random
import re

from tests.servers.instructions import cap_first
from tests.servers.vocab_en import EN_INPUTS, EN_LABEL_SETS, EN_OUTPUTS, EN_TOPICS
from tests.servers.vocab_ja import JA_INPUTS, JA_LABEL_SETS, JA_OUTPUTS, JA_TOPICS

_EN_PHRASE_STOP = frozenset({
    "for", "in", "to", "that", "and", "using", "with", "as", "into", "so", "from", "by",
    "without", "while", "or", "but", "which", "who", "is", "are", "was", "were", "be", "can",
    "should", "will",
})
_EN_VAGUE = frozenset({
    "the", "following", "given", "this", "these", "it", "them", "me", "you", "a", "an", "your",
    "my",
})
_EN_GENERIC_NOUNS = frozenset({
    "sentence", "phrase", "text", "word", "number", "list", "item", "statement", "question",
    "answer", "input", "output", "review", "email", "message", "paragraph", "story", "article",
    "example", "pair", "document", "task", "instruction",
})
_JA_MARKERS = ("について", "に関する", "に関して", "をめぐる", "における", "を題材", "をテーマ",
               "にちなんだ", "に着想")
_JA_PREFIXES = ("次の", "以下の", "与えられた", "この", "下記の")


def find_topic(instruction: str, lang: str, rng: random.Random) -> str:
    """Best guess of what an instruction is about, so instance text stays on topic.

    Known vocabulary topics win; then a short phrase after "about/on/of/for" (en) or before
    "について/に関する/…" (ja); otherwise a vocabulary topic picked by ``rng``: for a generic
    task such as "Classify the sentence as positive or negative" any topic gives a sensible
    input, which is better than echoing words of the instruction.
    """
    if lang == "ja":
        hits = [t for t in JA_TOPICS if t in instruction]
        if hits:
            return max(hits, key=len)
        for marker in _JA_MARKERS:
            if marker in instruction:
                head = instruction.split(marker)[0]
                for prefix in _JA_PREFIXES:
                    head = head.removeprefix(prefix)
                head = re.split(r"[、。「」\s]", head)[-1]
                if 1 <= len(head) <= 12:
                    return head
        return rng.choice(JA_TOPICS)
    low = instruction.lower()
    hits = [t for t in EN_TOPICS if t.lower() in low]
    if hits:
        return max(hits, key=len)
    for m in re.finditer(r"\b(?:about|on|of|for|regarding)\s+([^.?!,:;]+)", instruction):
        words: list[str] = []
        for word in m.group(1).split():
            if word.lower() in _EN_PHRASE_STOP or len(words) == 4:
                break
            words.append(word)
        content = [w for w in words if w.lower() not in _EN_VAGUE]
        if content and not any(w.lower() in ("following", "given", "this") for w in words):
            return " ".join(words)
    # "Explain recursion to a child." -> "recursion"; generic objects ("the sentence") are not.
    obj: list[str] = []
    for word in re.findall(r"[A-Za-z0-9'\-]+", instruction)[1:]:
        if word.lower() in _EN_PHRASE_STOP or len(obj) == 3:
            break
        obj.append(word)
    content = [w for w in obj if w.lower() not in _EN_VAGUE]
    if content and not any(w.lower().rstrip("s") in _EN_GENERIC_NOUNS for w in content):
        return " ".join(obj)
    return rng.choice(EN_TOPICS)


def needs_input(instruction: str, lang: str) -> bool:
    """Whether the instruction refers to a given text, so its examples must have an input."""
    if lang == "ja":
        return any(k in instruction for k in ("次の", "以下の", "与えられた", "下記の", "この"))
    return re.search(r"\b(following|given|this|these)\b", instruction, re.I) is not None


def fill_template(template: str, topic: str) -> str:
    """Put the topic into an input/output template's ``{topic}``/``{Topic}``/``{t}`` slots."""
    return template.format(topic=topic, Topic=cap_first(topic), t=topic)


def instance_pairs(
    instruction: str, lang: str, rng: random.Random
) -> list[tuple[str, str, str]]:
    """1-4 ``(input, output, category)`` triples for an input-first instance answer.

    Injects the instance-filter cases at low, deterministic rates: input identical to output
    (~3 %), empty output (~3 %), output ending with ":" (~2 %).
    """
    topic = find_topic(instruction, lang, rng)
    inputs = EN_INPUTS if lang == "en" else JA_INPUTS
    outputs = EN_OUTPUTS if lang == "en" else JA_OUTPUTS
    count = rng.choices((1, 2, 3, 4), weights=(15, 35, 30, 20))[0]
    no_input = not needs_input(instruction, lang) and rng.random() < 0.3
    in_texts = rng.sample(inputs, count)
    pairs: list[tuple[str, str, str]] = []
    for i in range(count):
        inp = "" if no_input else fill_template(in_texts[i], topic)
        out_templates = rng.sample(outputs, rng.choice((1, 1, 2)))
        sep = " " if lang == "en" else ""
        out = sep.join(fill_template(t, topic) for t in out_templates)
        roll = rng.random()
        category = "good"
        if roll < 0.03:
            inp = inp or fill_template(in_texts[i], topic)
            out, category = inp, "input_equals_output"
        elif roll < 0.06:
            out, category = "", "empty_output"
        elif roll < 0.08:
            lead = "Here is the answer" if lang == "en" else "答えは次のとおりです"
            out, category = f"{lead}:", "ends_with_colon"
        pairs.append((inp, out, category))
    return pairs


def label_set(instruction: str, lang: str, rng: random.Random) -> list[tuple[str, str]]:
    """Labels named or implied by a classification instruction, each with an input template."""
    table = EN_LABEL_SETS if lang == "en" else JA_LABEL_SETS
    if lang == "ja":
        quoted = re.findall(r"「([^「」]{1,12})」", instruction)
        for triggers, labels in table:
            if any(t in instruction for t in triggers):
                return list(labels)
        if len(quoted) >= 2:
            return [(q, f"{{t}}について、「{q}」に当てはまる短い文。") for q in quoted]
        return list(table[0][1][:2])
    low = instruction.lower()
    for triggers, labels in table:
        if any(t in low for t in triggers):
            return list(labels)
    m = re.search(r"\b(?:as|into)\s+([A-Za-z\- ]+?)(?:,\s*|\s+)or\s+([A-Za-z\- ]+?)[.?]", low)
    if m:
        return [
            (cap_first(lab), f"A short text about {{topic}} that is clearly {lab}.")
            for lab in (m.group(1).strip(), m.group(2).strip())
        ]
    return list(table[0][1][:2])


# Appended to the input of a repeated label, so two instances of one task never share an input.
REPEAT_SUFFIX: dict[str, str] = {"en": " Really.", "ja": "本当に。"}


def label_pairs(instruction: str, lang: str, rng: random.Random) -> list[tuple[str, str]]:
    """2-3 ``(label, input)`` pairs for an output-first (classification) answer."""
    topic = find_topic(instruction, lang, rng)
    labels = label_set(instruction, lang, rng)
    if len(labels) > 3:
        chosen = rng.sample(labels, rng.choice((2, 3)))
    elif len(labels) == 3:
        chosen = labels if rng.random() < 0.7 else rng.sample(labels, 2)
    else:
        chosen = list(labels)
        if rng.random() < 0.3:
            chosen.append(rng.choice(labels))
    out: list[tuple[str, str]] = []
    for i, (label, template) in enumerate(chosen):
        text = fill_template(template, topic)
        if i >= len(labels):  # a repeated label gets a different input
            text = text + REPEAT_SUFFIX[lang]
        out.append((label, text))
    return out
