"""Reading evol-instruct's answers: the evolved instruction, the Equal verdict, the answer checks.

Pure functions over text, kept apart from the recipe so they can be tested on the shapes real
chat models write (shared DESIGN.md §10): a rewritten prompt comes wrapped in a preamble
("Sure! Here is the rewritten prompt:"), a label ("#Rewritten Prompt#:", "**Rewritten
Prompt:**", "#書き換えたプロンプト#："), quotes, a code fence, or a closing remark. Those
wrappers are taken off; what is left is the candidate instruction.

The elimination rules are WizardLM's (Xu et al. 2023, §3.3), each with a stable reason:

* `copied_prompt`: the evolved text still contains the mutation prompt's own words ("#Given
  Prompt#", "rewritten prompt", "#元のプロンプト#", …) after its wrapper was taken off;
* `unrelated_to_parent` (ours): an in-depth rewrite that keeps almost none of its parent's
  content words (`MIN_PARENT_KEPT`) is not a rewrite but junk, or an answer to the parent;
* `answer_too_short`: the answer to the evolved instruction is a few words (the paper: only
  punctuation and stop words);
* `answer_sorry`: the answer says "sorry" and is short (the paper: "sorry" in an answer of
  fewer than 80 words): the model could not really answer the evolved instruction.

The phrases of every language are matched whatever the run's language: a model asked in
Japanese may still copy the English labels, and no real instruction needs either.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import LCSseq

from selfinstruct.text_filters import Drop, text_length

# Words of the mutation prompts (prompts/*/evol_depth.j2, evol_breadth.j2) that must not
# appear in an evolved instruction.
_COPIED = re.compile(
    r"#\s*(?:given|rewritten|created)\s+prompt\s*#|\b(?:given|rewritten|created)\s+prompt\b"
    r"|#\s*(?:元の|書き換えた|新しい)プロンプト\s*#|元のプロンプト|書き換えたプロンプト"
    r"|書き換え後のプロンプト|与えられたプロンプト",
    re.IGNORECASE)
# A label the model puts before its rewritten prompt, at the very start (after markup).
_LEADING_LABEL = re.compile(
    r"^[\s*_#>]*(?:(?:the\s+)?(?:rewritten|created|new|evolved)\s+(?:prompt|instruction)"
    r"|(?:書き換えた|書き換え後の|新しい)(?:プロンプト|指示))[\s*_#]*[:：][\s*_]*",
    re.IGNORECASE)
# A chatty first line that introduces the answer ("Sure! Here is …:", "以下が…です：").
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|here is|here's|here are|below is|below are"
    r"|absolutely|great|the rewritten|the new|rewritten version"
    r"|もちろん|承知|はい|以下|こちら|かしこまり)[^\n]*[:：!！。]\s*$",
    re.IGNORECASE)
# A closing remark after the answer ("Let me know …", "お役に立てば幸いです。").
_CLOSING = re.compile(
    r"^\s*(?:let me know|i hope|hope this|feel free|this (?:rewritten|new|version|prompt)"
    r"|他にも|お役に立て|ご不明|いかがでしょうか|必要に応じて)",
    re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)
_QUOTES = (('"', '"'), ("“", "”"), ("「", "」"), ("'", "'"), ("『", "』"), ("**", "**"))

# WizardLM: an answer with "sorry" in fewer than 80 words failed; in characters (Japanese),
# about 3 characters a word.
SORRY_LIMIT = {"words": 80, "chars": 240}
_SORRY = re.compile(r"\bsorry\b|\bapologi[sz]e\b|申し訳|すみません|ごめんなさい", re.IGNORECASE)
# Fewer than this many words (characters, for Japanese) is no answer to an evolved
# instruction, which asks for more than a label.
MIN_ANSWER = {"words": 5, "chars": 10}

# An in-depth rewrite keeps its parent's task: at least this share of the parent's content
# tokens, in order (ROUGE-L recall over content tokens). A real rewrite keeps the input and
# most of the task words; junk, a refusal or an answer in place of a prompt keeps ~none.
MIN_PARENT_KEPT = 0.15
# Content tokens in any language: words of 4+ letters or digits (English function words are
# shorter), and single kanji and katakana (Japanese particles and endings are hiragana).
_CONTENT = re.compile(r"[^\W_]{4,}|[\u4e00-\u9fff\u30a0-\u30ff]")
_LATIN_WORD = re.compile(r"[a-z0-9]{4,}")

_NOT_EQUAL = re.compile(r"not\s+equal|unequal|not\s+the\s+same|異な|同じで(?:は)?(?:な|あり)"
                        r"|等しくな", re.IGNORECASE)
_EQUAL = re.compile(r"\bequal\b|\bthe\s+same\b|同じ|等しい|同等", re.IGNORECASE)


def _wraps_whole(text: str, left: str, right: str) -> bool:
    """`left` … `right` enclose the whole text (nested pairs such as 「…「…」…」 allowed)."""
    if len(text) <= len(left) + len(right) or not text.startswith(left) \
            or not text.endswith(right):
        return False
    inner = text[len(left):-len(right)]
    if left == right:
        return left not in inner
    depth = 0
    for ch in inner:
        depth += (ch == left) - (ch == right)
        if depth < 0:
            return False  # the opening quote closes before the end: "「a」と「b」"
    return depth == 0


def _unwrap(text: str) -> str:
    """Take one pair of quotes (or bold markers) off a text they wrap whole."""
    for left, right in _QUOTES:
        if _wraps_whole(text, left, right):
            return text[len(left):-len(right)].strip()
    return text


def _unfence(text: str) -> str:
    fenced = _FENCE.match(text)
    return fenced.group("body").strip() if fenced else text


def parse_evolved(text: str) -> str:
    """The evolved instruction in an answer, wrappers taken off; "" if nothing is left.

    Inner line breaks are kept (an evolved instruction may carry a table, code or its input
    on lines of its own); spaces inside each line are collapsed.
    """
    lines = _unfence(text.strip()).split("\n")
    while lines and (not lines[0].strip() or (len(lines) > 1 and _PREAMBLE.match(lines[0]))):
        lines.pop(0)
    while len(lines) > 1 and (not lines[-1].strip() or _CLOSING.match(lines[-1])):
        lines.pop()
    text = "\n".join(lines).strip()
    text = _unfence(text)  # a fence inside the preamble and closing remark
    text = _LEADING_LABEL.sub("", text, count=1).strip()
    text = _unwrap(text)
    kept = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def copied_prompt(text: str) -> Drop | None:
    """WizardLM's rule: the evolved text copies the mutation prompt's own words."""
    match = _COPIED.search(text)
    if match is None:
        return None
    return Drop("copied_prompt", f"contains the mutation prompt's own words {match.group(0)!r}")


def content_tokens(text: str) -> list[str]:
    """The tokens `unrelated_to_parent` compares: see `_CONTENT`."""
    tokens = []
    for token in _CONTENT.findall(unicodedata.normalize("NFKC", text).lower()):
        if len(token) == 1 or _LATIN_WORD.fullmatch(token):
            tokens.append(token)
        else:  # a run of letters mixing scripts: keep its kanji/katakana one by one
            tokens.extend(ch for ch in token if _CONTENT.fullmatch(ch))
    return tokens


def unrelated_to_parent(evolved: str, parent: str) -> Drop | None:
    """An in-depth rewrite that lost its parent: junk, or an answer instead of a prompt."""
    wanted = content_tokens(parent)
    if not wanted:
        return None  # nothing to compare (a parent of short words only)
    kept = LCSseq.similarity(wanted, content_tokens(evolved)) / len(wanted)
    if kept >= MIN_PARENT_KEPT:
        return None
    return Drop("unrelated_to_parent", f"keeps {kept:.0%} of its parent's content words "
                                       f"(needs {MIN_PARENT_KEPT:.0%}): {parent[:80]!r}")


def parse_equal(text: str) -> bool | None:
    """The evol_check verdict: True for "Equal", False for "Not Equal", None if unreadable."""
    if _NOT_EQUAL.search(text):
        return False
    if _EQUAL.search(text):
        return True
    return None


def answer_drop(answer: str, unit: str) -> Drop | None:
    """WizardLM's answer rules: too short to be an answer, or a short "sorry"."""
    size = text_length(answer, unit)
    if size < MIN_ANSWER[unit]:
        return Drop("answer_too_short", f"the answer has {size} {unit} (needs at least "
                                        f"{MIN_ANSWER[unit]}): {answer[:80]!r}")
    sorry = _SORRY.search(answer)
    if sorry is not None and size < SORRY_LIMIT[unit]:
        return Drop("answer_sorry", f"the answer says {sorry.group(0)!r} in {size} {unit} "
                                    f"(under {SORRY_LIMIT[unit]}): the model could not answer "
                                    f"the evolved instruction")
    return None
