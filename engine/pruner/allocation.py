"""How many channel sets each group of a ranking scope loses: arithmetic, no torch.

Ratios refer to ORIGINAL widths, so step k of n targets
`round(orig * (1 - ratio_k))` remaining channels and n steps end exactly where
one shot would. A scope pools one or more groups: local pruning is a scope of
one group; global, isomorphic and user scopes pool many and compare sets by
score per channel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class Candidate:
    """One group's channel sets, ordered from least to most important."""

    set_sizes: list[int]  # sizes in ranking order
    set_scores: list[float]  # per-channel score of each set, in ranking order
    orig_width: int  # root's prunable width when the pruner was built
    min_keep: int  # fewest channels the root may keep (max_pruning_ratio, >= 1)

    @property
    def width(self) -> int:
        return sum(self.set_sizes)


def round_half_up(x: float) -> int:
    """Nearest integer, halves up; tolerant of float noise like 0.7000000000000001."""
    return int(math.floor(x + 0.5 + 1e-9))


def target_width(orig: int, ratio: float) -> int:
    return round_half_up(orig * (1.0 - ratio))


def allocate(cands: list[Candidate], ratio: float, round_to: int | None = None) -> list[int]:
    """Number of leading sets each candidate removes so the scope keeps ~`(1-ratio)` of its
    original channels; the least important sets across the scope go first."""
    target = target_width(sum(c.orig_width for c in cands), ratio)
    if len(cands) == 1:  # local pruning: a prefix of one ranking, no scope order needed
        removed = [_single_prefix(cands[0], target)]
    else:
        removed = _pooled_prefixes(cands, target)
    if round_to and round_to > 1:
        removed = [_round(c, k, round_to) if k else 0 for c, k in zip(cands, removed, strict=True)]
    return removed


def _single_prefix(c: Candidate, target: int) -> int:
    """`_pooled_prefixes([c], target)[0]`, vectorized: the first set the loop would stop
    at. Removing set j needs, with `left` channels before it: left > target, left - size
    >= min_keep, j not the last set, and left - size / 2 > target."""
    sizes = np.asarray(c.set_sizes, dtype=np.int64)
    if sizes.size == 0:
        return 0
    left = c.width - np.concatenate(([0], np.cumsum(sizes)[:-1]))
    go = (left > target) & (left - sizes >= c.min_keep) & (left - sizes / 2 > target)
    go[-1] = False
    return int(np.argmin(go))  # go[-1] is False, so there is a first False


def _pooled_prefixes(cands: list[Candidate], target: int) -> list[int]:
    """Walk all sets of the scope by score; each group loses a prefix of its ranking."""
    remaining = sum(c.width for c in cands)
    removed = [0] * len(cands)
    kept = [c.width for c in cands]
    blocked = [False] * len(cands)
    for i, j in _scope_order(cands):
        if remaining <= target:
            break
        c = cands[i]
        if blocked[i] or j != removed[i]:
            continue  # a group only loses a prefix of its own ranking
        size = c.set_sizes[j]
        if kept[i] - size < c.min_keep or j == len(c.set_sizes) - 1:
            blocked[i] = True  # this group is at its floor; others may continue
            continue
        if remaining - size / 2 <= target:
            break  # removing it would land further from the target than stopping
        removed[i] += 1
        kept[i] -= size
        remaining -= size
    return removed


def _scope_order(cands: list[Candidate]) -> list[tuple[int, int]]:
    """(candidate, set) pairs by score, ties by candidate then set: one lexsort, no key calls."""
    lens = [len(c.set_sizes) for c in cands]
    if not sum(lens):
        return []
    scores = np.concatenate([np.asarray(c.set_scores, dtype=np.float64) for c in cands])
    cand = np.repeat(np.arange(len(cands)), lens)
    sets = np.concatenate([np.arange(n) for n in lens])
    order = np.lexsort((sets, cand, scores))
    return list(zip(cand[order].tolist(), sets[order].tolist(), strict=True))


def _round(c: Candidate, k: int, round_to: int) -> int:
    """Adjust k so the kept width is a multiple of round_to: prefer pruning a bit more
    (as Torch-Pruning does), else a bit less, else leave it when the width does not allow."""
    kept_after = [c.width]
    for size in c.set_sizes:
        kept_after.append(kept_after[-1] - size)
    n = len(c.set_sizes)

    def ok(j: int) -> bool:
        return kept_after[j] % round_to == 0 and kept_after[j] >= max(c.min_keep, 1)

    for j in range(k, n):
        if ok(j):
            return j
    for j in range(k - 1, -1, -1):
        if ok(j):
            return j
    return k
