"""SlotTable: classes are the connected components of the unite pairs, numbered like scipy's."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.graph.slots import SLOT_DTYPE, SlotTable


def _scipy_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def test_hand_made_classes_locks_and_structural_unites() -> None:
    t = SlotTable()
    s = t.new((8,))  # slots 1..8
    t.unite(s[[0, 1]], s[[2, 3]])  # 1-3, 2-4
    t.unite(s[5:6], s[6:7], structural=True)  # 6-7 only in coarse classes
    t.lock(s[7:8], "output")  # 8 joins the lock slot 0
    t.unite(s[:1], np.array([-1]))  # NO_SLOT: ignored
    coarse, fine = t.resolve_both()
    assert fine.dtype == SLOT_DTYPE and coarse.dtype == SLOT_DTYPE
    # slot:            0  1  2  3  4  5  6  7  8
    assert fine.tolist() == [0, 1, 2, 1, 2, 3, 4, 5, 0]
    assert coarse.tolist() == [0, 1, 2, 1, 2, 3, 4, 4, 0]
    assert t.lock_reasons == ["output"]


def test_random_graphs_match_scipy_connected_components() -> None:
    rng = np.random.default_rng(0)
    for n_new, n_pairs in [(50, 10), (2000, 1500), (20000, 30000)]:
        t = SlotTable()
        s = t.new((n_new,))
        a = rng.integers(0, n_new, n_pairs)
        b = rng.integers(0, n_new, n_pairs)
        t.unite(s[a[: n_pairs // 2]], s[b[: n_pairs // 2]])
        t.unite(s[a[n_pairs // 2 :]], s[b[n_pairs // 2 :]])
        sa = rng.integers(0, n_new, n_pairs // 10)
        sb = rng.integers(0, n_new, n_pairs // 10)
        t.unite(s[sa], s[sb], structural=True)
        locked = rng.integers(0, n_new, 5)
        t.lock(s[locked])
        n = t.count
        lock_a = s[locked]
        fa = np.concatenate([s[a], lock_a])
        fb = np.concatenate([s[b], np.zeros_like(lock_a)])
        ref_fine = _scipy_labels(n, fa, fb)
        ref_coarse = _scipy_labels(n, np.concatenate([fa, s[sa]]), np.concatenate([fb, s[sb]]))
        assert t.resolve(fine=True).tolist() == ref_fine.tolist()
        assert t.resolve().tolist() == ref_coarse.tolist()
        coarse, fine = t.resolve_both()
        assert fine.tolist() == ref_fine.tolist()
        assert coarse.tolist() == ref_coarse.tolist()
        assert coarse[0] == 0 and fine[0] == 0
