"""Channel slots: the unit of coupling.

Every channel that can be removed (an output row of a weight, an element of a
norm's scale, a dimension of an unwrapped parameter) gets an integer *slot*.
Tracing records which slots must be removed together ("unite") and which must
never be removed ("lock"). Connected components of the unite-pairs, computed
once at the end, are the *classes*: the indivisible units that a group prunes.
Doing the coupling on integers instead of walking layer objects is what keeps
graph construction linear in the size of the model.

Slots are int32: a 70 B Llama has ~14 M slots and ~17 M unite pairs, so int64
ids and a sparse matrix for the components cost most of its trace's memory.
"""

from __future__ import annotations

import math

import numpy as np

NO_SLOT = -1  # a position that carries no prunable channel (e.g. an input image channel)
LOCK_SLOT = 0  # every locked slot is united with this one
SLOT_DTYPE = np.int32
_MAX_SLOTS = int(np.iinfo(SLOT_DTYPE).max)


class SlotTable:
    """Allocates slots and collects unite pairs; resolves them into classes."""

    def __init__(self) -> None:
        self._count = 1  # slot 0 is the lock
        self._pairs_a: list[np.ndarray] = []
        self._pairs_b: list[np.ndarray] = []
        self._struct_a: list[np.ndarray] = []  # unites that keep heads/groups equal in size
        self._struct_b: list[np.ndarray] = []
        self._locked: list[np.ndarray] = []  # slots united with LOCK_SLOT
        self.lock_reasons: list[str] = []

    @property
    def count(self) -> int:
        return self._count

    def new(self, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)  # 1 for ()
        if self._count + n > _MAX_SLOTS:
            raise ValueError(
                f"the model has more than {_MAX_SLOTS} prunable channel positions; "
                "trace a smaller slice of it"
            )
        ids = np.arange(self._count, self._count + n, dtype=SLOT_DTYPE).reshape(shape)
        self._count += n
        return ids

    def unite(self, a: np.ndarray, b: np.ndarray, structural: bool = False) -> None:
        """Unite slots position by position (broadcasting allowed); NO_SLOT entries are skipped.

        `structural` marks unites that only keep equal-sized blocks equal (the same
        position in every attention head): `resolve(fine=True)` leaves them out, so
        whole heads can still be told apart and removed.
        """
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            a, b = np.broadcast_arrays(a, b)
        a = a.ravel()
        b = b.ravel()
        keep = (a >= 0) & (b >= 0) & (a != b)
        if keep.any():
            (self._struct_a if structural else self._pairs_a).append(
                a[keep].astype(SLOT_DTYPE, copy=False)
            )
            (self._struct_b if structural else self._pairs_b).append(
                b[keep].astype(SLOT_DTYPE, copy=False)
            )

    def lock(self, slots: np.ndarray, reason: str = "") -> None:
        slots = np.asarray(slots).ravel()
        slots = slots[slots > 0]
        if slots.size:
            self._locked.append(slots.astype(SLOT_DTYPE, copy=False))
            if reason and len(self.lock_reasons) < 1000:
                self.lock_reasons.append(reason)

    def resolve(self, fine: bool = False) -> np.ndarray:
        """Return class labels for every slot; label of LOCK_SLOT marks locked classes.

        With `fine=True`, structural unites are ignored: classes then split into
        one class per head (or block) wherever a structural unite joined them.
        """
        roots = self._roots(self._pairs_a, self._pairs_b)
        if not fine:
            roots = self._roots(self._struct_a, self._struct_b, roots)
        return _labels(roots)

    def resolve_both(self) -> tuple[np.ndarray, np.ndarray]:
        """`(resolve(), resolve(fine=True))` in one pass; the recorded pairs are freed.

        The coarse classes are the fine ones joined by the structural unites, so
        the pairs are walked once and never held twice.
        """
        roots = self._roots(self._pairs_a, self._pairs_b, consume=True)
        fine = _labels(roots)
        roots = self._roots(self._struct_a, self._struct_b, roots, consume=True)
        return _labels(roots), fine

    def _roots(
        self,
        list_a: list[np.ndarray],
        list_b: list[np.ndarray],
        roots: np.ndarray | None = None,
        consume: bool = False,
    ) -> np.ndarray:
        """Smallest slot of each slot's component: union by hooking + pointer jumping.

        Starts from `roots` (fully compressed: every entry is a root) or from the locks.
        """
        if roots is None:
            roots = np.arange(self._count, dtype=SLOT_DTYPE)
            for slots in self._locked:
                roots[slots] = LOCK_SLOT  # slot 0 is the smallest: a valid root for all
            if consume:
                self._locked = []
        else:
            roots = roots.copy()
        a = _concat(list_a, consume)
        b = _concat(list_b, consume)
        while a.size:
            # an edge between two slots joins the same classes as one between their roots,
            # so the edges are replaced by (smaller root, larger root): two arrays, not four
            ra = roots[a]
            del a
            rb = roots[b]
            del b
            a = np.minimum(ra, rb)
            b = np.maximum(ra, rb, out=rb)
            del ra, rb
            keep = a != b
            if not keep.all():
                a = a[keep]
                b = b[keep]
            del keep
            if not a.size:
                break
            roots[b] = a  # hook each root to a smaller root of its component
            while True:  # compress until every entry is a root again
                nxt = roots[roots]
                if np.array_equal(nxt, roots):
                    break
                roots = nxt
        return roots


def _concat(chunks: list[np.ndarray], consume: bool) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=SLOT_DTYPE)
    out = np.concatenate(chunks) if len(chunks) > 1 else chunks[0].copy()
    if consume:
        chunks.clear()
    return out


def _labels(roots: np.ndarray) -> np.ndarray:
    """Number components by their smallest slot (what scipy's connected_components gives)."""
    is_root = roots == np.arange(roots.size, dtype=roots.dtype)
    rank = np.cumsum(is_root, dtype=SLOT_DTYPE)
    rank -= 1
    return rank[roots]
