"""Channel slots: the unit of coupling.

Every channel that can be removed (an output row of a weight, an element of a
norm's scale, a dimension of an unwrapped parameter) gets an integer *slot*.
Tracing records which slots must be removed together ("unite") and which must
never be removed ("lock"). Connected components of the unite-pairs, computed
once at the end in C (scipy), are the *classes*: the indivisible units that a
group prunes. Doing the coupling on integers instead of walking layer objects is
what keeps graph construction linear in the size of the model.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NO_SLOT = -1  # a position that carries no prunable channel (e.g. an input image channel)
LOCK_SLOT = 0  # every locked slot is united with this one


class SlotTable:
    """Allocates slots and collects unite pairs; resolves them into classes."""

    def __init__(self) -> None:
        self._count = 1  # slot 0 is the lock
        self._pairs_a: list[np.ndarray] = []
        self._pairs_b: list[np.ndarray] = []
        self._struct_a: list[np.ndarray] = []  # unites that keep heads/groups equal in size
        self._struct_b: list[np.ndarray] = []
        self.lock_reasons: list[str] = []

    @property
    def count(self) -> int:
        return self._count

    def new(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape)) if shape else 1
        ids = np.arange(self._count, self._count + n, dtype=np.int64).reshape(shape)
        self._count += n
        return ids

    def unite(self, a: np.ndarray, b: np.ndarray, structural: bool = False) -> None:
        """Unite slots position by position (broadcasting allowed); NO_SLOT entries are skipped.

        `structural` marks unites that only keep equal-sized blocks equal (the same
        position in every attention head): `resolve(fine=True)` leaves them out, so
        whole heads can still be told apart and removed.
        """
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        a = a.ravel()
        b = b.ravel()
        keep = (a >= 0) & (b >= 0) & (a != b)
        if keep.any():
            (self._struct_a if structural else self._pairs_a).append(a[keep])
            (self._struct_b if structural else self._pairs_b).append(b[keep])

    def lock(self, slots: np.ndarray, reason: str = "") -> None:
        slots = np.asarray(slots, dtype=np.int64).ravel()
        slots = slots[slots > 0]
        if slots.size:
            self._pairs_a.append(slots)
            self._pairs_b.append(np.zeros_like(slots))
            if reason and len(self.lock_reasons) < 1000:
                self.lock_reasons.append(reason)

    def resolve(self, fine: bool = False) -> np.ndarray:
        """Return class labels for every slot; label of LOCK_SLOT marks locked classes.

        With `fine=True`, structural unites are ignored: classes then split into
        one class per head (or block) wherever a structural unite joined them.
        """
        n = self._count
        pa = self._pairs_a if fine else self._pairs_a + self._struct_a
        pb = self._pairs_b if fine else self._pairs_b + self._struct_b
        if pa:
            a = np.concatenate(pa)
            b = np.concatenate(pb)
        else:
            a = b = np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        return labels.astype(np.int64)
