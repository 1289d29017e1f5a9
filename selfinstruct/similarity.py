"""ROUGE-L similarity and an exact, fast novelty index for near-duplicate removal.

Self-Instruct and Alpaca keep a generated instruction only if its ROUGE-L F-measure against
every instruction already kept (seeds included) is at most 0.7; this makes the same decisions
orders of magnitude faster, and Japanese text has tokens at all. The front door of these
modules:

- selfinstruct.tokenizers: rouge_score's tokenizer bit for bit, and the unicode one (a token
  per CJK character);
- selfinstruct.rouge: which tokenizer and default threshold a language has (its profile in
  selfinstruct.languages, or "auto"), and ROUGE-L F with rouge_score's own float expression;
- selfinstruct.novelty: `NoveltyIndex`, the exact pruned search (the bounds are proved there);
- selfinstruct.neighbours: the provenance of a kept row (its 10 nearest instructions and mean
  similarity), pruned exactly from token postings.
"""

from __future__ import annotations

from selfinstruct.novelty import NoveltyIndex, Verdict
from selfinstruct.rouge import DEFAULT_THRESHOLDS, Language, default_threshold, rouge_l, tokenize

__all__ = [
    "DEFAULT_THRESHOLDS", "Language", "NoveltyIndex", "Verdict", "default_threshold", "rouge_l",
    "tokenize",
]
