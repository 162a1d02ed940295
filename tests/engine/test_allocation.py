"""allocate(): the vectorized single-group path agrees with the scope walk it shortcuts,
and hand-worked cases."""

from __future__ import annotations

import random

import pytest

from engine.pruner.allocation import Candidate, _pooled_prefixes, _single_prefix, allocate


def _cand(sizes: list[int], min_keep: int = 1, orig: int | None = None) -> Candidate:
    scores = sorted(random.random() for _ in sizes)
    return Candidate(list(sizes), scores, orig if orig is not None else sum(sizes), min_keep)


def test_hand_worked_local_cases():
    c = Candidate([1] * 10, [0.1 * i for i in range(10)], 10, 1)
    assert allocate([c], 0.5) == [5]
    assert allocate([c], 0.0) == [0]
    assert allocate([c], 1.0) == [9]  # the last set always stays
    assert allocate([c], 0.34) == [3]  # keep round(6.6) = 7
    assert allocate([c], 0.5, round_to=4) == [6]  # keep 4: prune a bit more
    floor = Candidate([1] * 10, [0.1 * i for i in range(10)], 10, 8)
    assert allocate([floor], 0.5) == [2]  # max_pruning_ratio floor keeps 8
    units = Candidate([3, 3, 3, 3], [0.1, 0.2, 0.3, 0.4], 12, 1)
    assert allocate([units], 0.5) == [2]  # 6 of 12 channels in whole units of 3
    assert allocate([units], 0.4) == [2]  # target 7: 6 is nearer than 9


@pytest.mark.parametrize("seed", range(200))
def test_single_prefix_equals_the_pooled_walk(seed: int):
    random.seed(seed)
    n = random.randint(0, 40)
    sizes = [random.choice([1, 1, 1, 2, 3, 4]) for _ in range(n)]
    width = sum(sizes)
    c = _cand(sizes, min_keep=random.randint(1, max(1, width)), orig=width + random.randint(0, 5))
    target = random.randint(0, c.orig_width)
    assert _single_prefix(c, target) == _pooled_prefixes([c], target)[0]
