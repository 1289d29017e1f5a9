"""The 2-prefix filter (selfinstruct.prefixes) against brute force, on streams built to sit on
its edges: texts of one or two tokens (α = 1, one meeting is enough), pairs whose second
shared element is the last one of both 2-prefixes, thresholds from 0 to 1, pools that cross
tail merges and rank rebuilds, and texts longer than the sorted postings hold."""

from __future__ import annotations

import random

import pytest

from selfinstruct import prefixes
from selfinstruct.novelty import NoveltyIndex
from selfinstruct.prefixes import _N_CAP
from selfinstruct.rouge import rouge_l

# The sorted postings start at 2^19 entries (~50K texts); these pools are far smaller, so
# most tests merge from 256 entries on, and the edge streams also run without any merge.
EARLY = 256


@pytest.fixture
def early_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefixes, "_FIRST_MERGE", EARLY)


def brute_force(stream: list[str], threshold: float) -> list[tuple[bool, str | None, float | None]]:
    """Alpaca's rule over every pooled text: keep iff max F <= t; a rejection names the
    earliest pooled text with the maximum F (rouge_l is bit-identical to rouge_score)."""
    pool: list[str] = []
    out: list[tuple[bool, str | None, float | None]] = []
    for text in stream:
        scores = [rouge_l(other, text) for other in pool]
        best = max(scores, default=0.0)
        if best > threshold:
            out.append((False, pool[scores.index(best)], best))
        else:
            out.append((True, None, None))
            pool.append(text)
    return out


def indexed(stream: list[str], threshold: float) -> list[tuple[bool, str | None, float | None]]:
    index = NoveltyIndex(threshold)
    out: list[tuple[bool, str | None, float | None]] = []
    for text in stream:
        verdict = index.check(text)
        out.append((verdict.novel, verdict.neighbour, verdict.score))
        if verdict.novel:
            index.add(text)
    return out


def edge_stream(rng: random.Random, size: int) -> list[str]:
    """Short texts, shared words at the ends of the prefixes, near-duplicates and repeats.

    A few very common words ("the", "a") rank last, so the elements two texts share are often
    the last ones of their 2-prefixes; one- and two-token texts have α = 1 at low thresholds
    and 1 or 2 at 0.7; edits shift the shared words by one position either way.
    """
    rare = [f"r{i}" for i in range(300)]
    common = ["the", "a", "of", "write"]
    stream: list[str] = []
    for _ in range(size):
        roll = rng.random()
        if stream and roll < 0.4:
            words = rng.choice(stream).split()
            for _ in range(rng.randint(1, 2)):
                op = rng.random()
                position = rng.randrange(len(words) + 1)
                if op < 0.4 and words:
                    words[min(position, len(words) - 1)] = rng.choice(rare)
                elif op < 0.7:
                    words.insert(position, rng.choice(common + rare[:5]))
                elif len(words) > 1:
                    del words[min(position, len(words) - 1)]
        elif roll < 0.55:
            words = rng.choices(rare[:20] + common, k=rng.randint(1, 2))
        else:
            words = rng.choices(rare, k=rng.randint(2, 9))
            words += rng.choices(common, k=rng.randint(0, 6))
            rng.shuffle(words)
        stream.append(" ".join(words))
    return stream


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 0.85, 1.0])
@pytest.mark.parametrize("first_merge", [EARLY, prefixes._FIRST_MERGE])
def test_index_equals_brute_force_on_edge_streams(threshold, first_merge, monkeypatch):
    monkeypatch.setattr(prefixes, "_FIRST_MERGE", first_merge)
    stream = edge_stream(random.Random(first_merge + int(threshold * 10)), 500)
    ours = indexed(stream, threshold)
    assert ours == brute_force(stream, threshold)
    kept = sum(novel for novel, _, _ in ours)
    if threshold not in (0.0, 1.0):
        assert 0 < kept < len(stream)  # both kinds of decision occur


def test_stream_crosses_merges_and_rebuilds(early_merges):
    """Enough texts that the sorted postings are merged several times and ranks rebuilt."""
    rng = random.Random(5)
    stream = edge_stream(rng, 1600)
    index = NoveltyIndex(0.7)
    for text in stream:
        index.add_if_novel(text)
    assert len(index) > 512  # rebuilt at 128, 256, 512
    assert index._prefixes._keys.size > 8 * EARLY  # merged several times
    assert indexed(stream, 0.7) == brute_force(stream, 0.7)


@pytest.mark.parametrize("first_merge", [EARLY, prefixes._FIRST_MERGE])
def test_second_shared_element_at_the_end_of_both_prefixes(first_merge, monkeypatch):
    """m = n = 10 at t = 0.7: α = 6, 2-prefixes of 6 elements; pooled texts share exactly L
    tokens placed at the last prefix positions (common words rank last), for L around the
    threshold, in the sorted postings and in the tail."""
    monkeypatch.setattr(prefixes, "_FIRST_MERGE", first_merge)
    threshold = 0.7
    for lcs in range(5, 10):
        pool = []
        for k in range(30):
            own = [f"p{k}x{i}" for i in range(10 - lcs)]
            pool.append(" ".join(own + [f"w{i}" for i in range(lcs)]))
        candidate = " ".join([f"c{i}" for i in range(10 - lcs)] + [f"w{i}" for i in range(lcs)])
        expected = brute_force([*pool, candidate], threshold)
        rebuilt = NoveltyIndex.from_texts(pool, threshold)
        verdict = rebuilt.check(candidate)
        assert (verdict.novel, verdict.neighbour, verdict.score) == expected[-1], lcs


def test_texts_longer_than_the_sorted_postings(early_merges):
    """A pooled text of more than _N_CAP tokens keeps the entry-by-entry form and is found."""
    words = [f"t{i % 5000}" for i in range(_N_CAP + 10)]
    long_text = " ".join(words)
    index = NoveltyIndex(0.7)
    index.add(long_text)
    for i in range(3000):  # push merges past the long text
        index.add(f"filler{i} other{i} more{i}")
    near = " ".join([*words[:-5], "changed"])
    verdict = index.check(near)
    assert not verdict.novel
    assert verdict.neighbour == long_text
    assert verdict.score == rouge_l(long_text, near)
    assert index.check("t1 t2 t3 t4").novel
