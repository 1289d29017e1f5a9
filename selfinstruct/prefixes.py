"""Candidate generation for selfinstruct.novelty: the 2-prefix filter over sorted postings.

Why this exists: past ~100K pooled texts, one shared element in the prefixes (the classic
prefix filter) lets through hundreds of pooled texts per candidate that share one popular
word and nothing else, and each needed an exact LCS. Requiring TWO shared prefix elements
cuts those survivors ~7x at a 200K pool, and keeping the postings sorted by (element, n,
position) lets a lookup read only the entries that can pass the positional bound instead of
every entry of every probed list. The proofs use the notation of selfinstruct.novelty
(candidate x with m tokens, pooled y with n tokens, τ = t − 1e-9, O = shared elements, α).

The 2-prefix (ℓ-prefix filter with ℓ = 2). Let ℓ(k) = min(2, α(k)) and list each text under
the first k − α(k) + ℓ(k) of its elements in the global order. If F > t then O ≥ α(m) and
O ≥ α(n); with e_1 < e_2 < … the common elements in that order, e_h sits at a position
≤ m − O + h in X (O − h common elements follow it) and ≤ n − O + h in Y. So e_1 is in both
prefixes, and if α(m) ≥ 2 so is e_2: in X because O ≥ α(m); in Y because O ≥ α(n) when
α(n) ≥ 2, and because a text with α(n) = 1 is listed under all of its n elements (O ≥ 2).
A candidate with α(m) ≥ 2 therefore meets every pooled text it can exceed t with in two
lookups, and a shorter one in at least one.

The relaxed positional bound. At the h-th common element, with r_x, r_y the elements left in
X and Y from it on (itself included), every common element is one of the h − 1 before it or
one of the min(r_x, r_y) from it on: O ≤ h − 1 + min(r_x, r_y). For h ∈ {1, 2} this gives
2(1 + min(r_x, r_y)) > τ(m + n) at e_1 and at e_2 whenever F > t (B0 of novelty). An entry
is read only if it meets that test, so a pair that can exceed t still meets in ℓ read
entries: ℓ = 2 needs two distinct lookups returning the same y, ℓ = 1 one.

Layout. Sorted postings: ``keys`` = element id << 32 | n << 16 | (0xFFFF − r_y), ``items``
the text ids, both sorted by key: for one element and one n the entries that pass are a
prefix of their (element, n) run (r_y ≥ a floor that depends on m and n), and the n that
pass for one lookup form one range (from r_x), so every lookup is a set of key ranges found
by ``searchsorted``, and the test costs nothing per entry. New entries go to a tail (a dict
of packed item << 32 | r_y per element, tested entry by entry) that is merged into the
sorted arrays when it reaches 1/64 of them (np.insert: O(size), amortised O(64) per entry),
the first time at _FIRST_MERGE entries.
Texts of more than 0xFFFF tokens keep the tail form for good. Every floor and ceiling
here is rounded toward reading MORE entries, so float rounding (~1e-13 absolute against the
1e-9·(m+n) slack of τ) can only admit an entry, never drop one.
"""

from __future__ import annotations

from array import array

import numpy as np

_N_CAP = 0xFFFF  # longest text the sorted postings hold (16 bits of the key each for n, r_y)
# Tail entries before the first merge. Below ~50K texts reading whole lists entry by entry
# is cheaper than the ~25 numpy calls of the sorted lookup (measured: 2.4x at a 20K pool).
_FIRST_MERGE = 1 << 19
# The tail is merged when it reaches 1/_TAIL_SHARE of the sorted entries: reading it costs
# per entry, a merge costs one np.insert of the sorted arrays (~60 ms at 1M texts).
_TAIL_SHARE = 64


def _excl_cumsum(counts: np.ndarray) -> np.ndarray:
    """Start offset of each run when runs of these lengths are laid end to end."""
    starts = np.zeros(counts.size, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; several times faster than np.unique on a few hundred values."""
    if not values.size:
        return values
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


class PrefixPostings:
    """Pooled texts listed under their 2-prefix elements; ``candidates`` applies the filter."""

    def __init__(self, tau: float) -> None:
        self._tau = tau
        self._element_ids: dict[int, int] = {}
        self._keys = np.zeros(0, dtype=np.int64)
        self._items = np.zeros(0, dtype=np.int64)
        self._tail_keys: array[int] = array("q")
        self._tail_items: array[int] = array("q")
        self._tail: dict[int, array[int]] = {}  # element -> item << 32 | r_y, not yet merged
        self._long: dict[int, array[int]] = {}  # the same for texts longer than _N_CAP
        self._max_n = 0  # longest text in the sorted form: no run past it is read
        self._mark = np.zeros(1024, dtype=np.int64)

    def clear(self) -> None:
        """Forget every text (before a re-ranking lists them all again)."""
        self.__init__(self._tau)  # type: ignore[misc]

    def add(self, item: int, n: int, prefix: list[int]) -> None:
        """List text ``item`` of ``n`` tokens under ``prefix``, its first elements in order."""
        if n > _N_CAP:  # tested entry by entry for good
            self._append(self._long, item, n, prefix)
            return
        self._append(self._tail, item, n, prefix)
        self._max_n = max(self._max_n, n)
        ids = self._element_ids
        keys, items = self._tail_keys, self._tail_items
        for j, element in enumerate(prefix):
            eid = ids.setdefault(element, len(ids))
            keys.append((eid << 32) | (n << 16) | (_N_CAP - (n - j)))
            items.append(item)
        if len(keys) >= (self._keys.size // _TAIL_SHARE if self._keys.size else _FIRST_MERGE):
            self.merge()

    @staticmethod
    def _append(postings: dict[int, array[int]], item: int, n: int, prefix: list[int]) -> None:
        """Entries of the per-element form: item << 32 | r_y under each prefix element."""
        for j, element in enumerate(prefix):
            entry = (item << 32) | (n - j)
            posting = postings.get(element)
            if posting is None:
                postings[element] = array("q", (entry,))
            else:
                posting.append(entry)

    def merge(self) -> None:
        """Move the tail into the sorted arrays."""
        if not self._tail_keys:
            return
        keys = np.frombuffer(self._tail_keys, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        at = self._keys.searchsorted(keys)
        self._keys = np.insert(self._keys, at, keys)
        self._items = np.insert(self._items, at, np.frombuffer(self._tail_items, np.int64)[order])
        self._tail_keys, self._tail_items = array("q"), array("q")
        self._tail = {}

    def candidates(
        self, m: int, probe: list[tuple[int, int]], need_two: bool, lengths: np.ndarray
    ) -> np.ndarray:
        """Sorted ids of the pooled texts that pass the 2-prefix filter against a candidate.

        ``probe``: (element, r_x) of the candidate's 2-prefix (its first m − α(m) + ℓ(m)
        elements) that the pool knows, in the global order. ``need_two``: α(m) ≥ 2.
        ``lengths``: token count of every pooled text by id (its size bounds the ids).
        """
        found_items: list[np.ndarray] = []
        found_lists: list[np.ndarray] = []
        self._read_sorted(m, probe, found_items, found_lists)
        self._read_tail(m, probe, lengths, found_items, found_lists)
        if not found_items:
            return np.zeros(0, dtype=np.int64)
        items = np.concatenate(found_items)
        if not need_two or not items.size:
            return _unique(items)
        lists = np.concatenate(found_lists)
        if self._mark.size < lengths.size:
            self._mark = np.zeros(lengths.size, dtype=np.int64)
        # Met in two lookups: write each entry's lookup number at its item; an item read in
        # two lookups keeps one of them, so one of its entries sees another number (this
        # holds whichever write numpy lets win; an item is read at most once per lookup).
        mark = self._mark
        mark[items] = lists
        twice = mark[items] != lists
        return _unique(items[twice])

    def _read_sorted(
        self, m: int, probe: list[tuple[int, int]], found_items: list[np.ndarray],
        found_lists: list[np.ndarray],
    ) -> None:
        """Entries of the sorted arrays that pass the relaxed bound, as key ranges."""
        ids = self._element_ids
        lookup = np.array([g for g, (e, _) in enumerate(probe) if e in ids], dtype=np.int64)
        if not lookup.size or not self._keys.size:
            return
        eids = np.array([ids[probe[g][0]] for g in lookup], dtype=np.int64)
        rest_x = np.array([probe[g][1] for g in lookup], dtype=np.int64)
        tau = self._tau
        if tau <= 0:  # t = 0: every pair sharing a token exceeds it
            n_lo, n_hi = 1, np.full(eids.size, self._max_n)
        else:
            n_lo = max(1, int(tau * m / (2 - tau)))  # L ≤ n and B0: n > τm/(2 − τ)
            # The largest n with 2(1 + r_x) > τ(m + n), the float test itself deciding.
            n_hi = (2 * (1 + rest_x) / tau - m).astype(np.int64) + 1
            for _ in range(2):
                n_hi -= 2 * (1 + rest_x) <= tau * (m + n_hi)
            n_hi = np.minimum(self._max_n, n_hi)
        runs = np.maximum(n_hi - n_lo + 1, 0)
        total = int(runs.sum())
        if total == 0:
            return
        n = n_lo + np.arange(total) - np.repeat(_excl_cumsum(runs), runs)
        # The smallest r_y with 2(1 + r_y) > τ(m + n), the float test itself deciding.
        floor = np.maximum(0, (tau * (m + n) / 2 - 1).astype(np.int64) - 1)
        for _ in range(2):
            floor += 2 * (1 + floor) <= tau * (m + n)
        base = (np.repeat(eids, runs) << 32) | (n << 16)
        # Run starts and ends in one call on sorted queries (each search starts where the
        # previous one ended: a few cache misses per probed element instead of per query).
        bounds = np.concatenate((base, (base | (_N_CAP - floor)) + 1))
        order = np.argsort(bounds)
        found = np.empty_like(bounds)
        found[order] = self._keys.searchsorted(bounds[order])
        starts, stops = found[: base.size], found[base.size :]
        sizes = stops - starts
        count = int(sizes.sum())
        if count == 0:
            return
        at = np.repeat(starts - _excl_cumsum(sizes), sizes) + np.arange(count)
        found_items.append(self._items[at])
        found_lists.append(np.repeat(np.repeat(lookup, runs), sizes))

    def _read_tail(
        self, m: int, probe: list[tuple[int, int]], lengths: np.ndarray,
        found_items: list[np.ndarray], found_lists: list[np.ndarray],
    ) -> None:
        """Tail entries that pass the relaxed bound, tested one by one (vectorised)."""
        hits = [
            (tail[e], rest, g)
            for tail in (self._tail, self._long) if tail
            for g, (e, rest) in enumerate(probe) if e in tail
        ]
        if not hits:
            return
        sizes = [len(h) for h, _, _ in hits]
        entries = np.concatenate([h for h, _, _ in hits])
        items = entries >> 32
        rest = np.minimum(np.repeat([r for _, r, _ in hits], sizes), entries & 0xFFFFFFFF)
        passing = 2 * (1 + rest) > self._tau * (m + lengths[items])
        found_items.append(items[passing])
        found_lists.append(np.repeat([g for _, _, g in hits], sizes)[passing])
