"""ChannelIndex: which channel class every prunable position belongs to, and what is left.

The dependency graph's bookkeeping in one place. A *port* is one side of a layer (its
out or in channels) or one dim of an unwrapped parameter; every ORIGINAL position of a
port has a slot class (channels that must go together share one). The index keeps:

* the ports, in execution order, with each position's class and fine class (the class
  without the unites that only keep attention heads equal) and whether it is still alive;
* a class -> positions table (CSR), so a group is read in O(its size);
* per-class masks: *fixed* (must keep its size: fixed inputs, ops the tracer does not
  understand, code the probe saw break) and *outputs* (reaches a model output);
* a prune serial: every removal bumps it and stamps the ports it touched, so a group
  derived earlier knows whether its indices are still valid.

Like torch.fx's graph tables, the index is changed only by its own methods (`remove`,
`remove_positions`, `fix`); everything else reads it. Ports' `alive` arrays are
read-only outside those methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

OUT = "out"
IN = "in"


@dataclasses.dataclass(eq=False)  # identity: ports of equal-shaped Parameters differ
class PortState:
    """One port as the index sees it. `id` is its position in `ChannelIndex.ports`."""

    id: int
    target: Any  # nn.Module, or nn.Parameter for an unwrapped parameter
    kind: str  # OUT or IN
    dim: int | None  # pruning dim of an unwrapped parameter
    node: Any  # the graph Node of `target`
    handler: Callable  # the pruning function for this side of `target`
    labels: np.ndarray  # class per ORIGINAL position
    fine: np.ndarray  # fine class per original position (whole attention heads)
    alive: np.ndarray  # bool per original position, read-only; pruned ones are False
    pruned_at: int = 0  # the index's serial when this port last lost channels
    _rank: np.ndarray | None = None
    _width: int | None = None

    def width(self) -> int:
        """Channels left on this port."""
        if self._width is None:
            self._width = int(self.alive.sum())
        return self._width

    def current_rank(self) -> np.ndarray:
        """Current index of every original position (valid where alive)."""
        if self._rank is None:
            self._rank = np.cumsum(self.alive, dtype=np.int32) - 1  # int32: 14 M slots at 70 B
        return self._rank

    def alive_positions(self) -> np.ndarray:
        """Original positions still present, ascending."""
        return np.flatnonzero(self.alive)


class ChannelIndex:
    """Ports, class masks and the prune serial of one dependency graph (see module doc)."""

    def __init__(
        self,
        ports: Sequence[PortState],
        n_classes: int,
        fixed_classes: np.ndarray,
        output_classes: np.ndarray,
        fixed_fine: np.ndarray,
        output_fine: np.ndarray,
    ) -> None:
        self._ports = tuple(ports)
        for k, state in enumerate(self._ports):
            if state.id != k:
                raise ValueError(f"port {k} carries id {state.id}")
            state.alive.setflags(write=False)
        self._lookup: dict[tuple[int, str], int] = {}
        for state in self._ports:
            self._lookup.setdefault((id(state.target), state.kind), state.id)
        n_classes = max(int(n_classes), 1)
        self._fixed = np.zeros(n_classes, dtype=bool)
        self._fixed[np.asarray(fixed_classes, dtype=np.int64)] = True
        self._outputs = np.zeros(n_classes, dtype=bool)
        self._outputs[np.asarray(output_classes, dtype=np.int64)] = True
        self._fixed_fine = np.unique(np.asarray(fixed_fine, dtype=np.int64))
        self._output_fine = np.unique(np.asarray(output_fine, dtype=np.int64))
        self._serial = 0
        self._build_table(n_classes)

    def _build_table(self, n_classes: int) -> None:
        """Class -> flat positions (ports laid end to end), sorted by class, as int32."""
        sizes = [p.labels.size for p in self._ports]
        self._offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        width = max(sizes, default=0)
        self._int_pool = np.empty(width, dtype=object)  # shared int objects for index lists
        self._int_pool[:] = range(width)
        if not self._ports:
            self._starts = np.zeros(n_classes + 1, dtype=np.int64)
            self._order = np.zeros(0, dtype=np.int32)
            return
        lab = np.concatenate([p.labels for p in self._ports])
        counts = np.bincount(lab, minlength=n_classes)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        del counts
        dtype = np.int32 if lab.size <= np.iinfo(np.int32).max else np.int64
        self._order = np.argsort(lab, kind="stable").astype(dtype)

    # ------------------------------------------------------------------ ports
    @property
    def ports(self) -> tuple[PortState, ...]:
        return self._ports

    def __len__(self) -> int:
        return len(self._ports)

    def __iter__(self) -> Iterator[PortState]:
        return iter(self._ports)

    def __getitem__(self, port_id: int) -> PortState:
        return self._ports[port_id]

    def port(self, target: Any, kind: str = OUT) -> PortState | None:
        """The port of `target` on side `kind`; an "in" side that has none falls back to
        "out" (norms, elementwise layers: one set of channels)."""
        k = self._lookup.get((id(target), kind))
        if k is None and kind == IN:
            k = self._lookup.get((id(target), OUT))
        return self._ports[k] if k is not None else None

    # ---------------------------------------------------------------- classes
    @property
    def serial(self) -> int:
        """Counts removals; groups remember the serial they were derived at."""
        return self._serial

    @property
    def n_classes(self) -> int:
        return self._fixed.size

    def must_keep(self) -> np.ndarray:
        """Per class: fixed or reaching a model output (a copy: what pruners never offer)."""
        return self._fixed | self._outputs

    def is_fixed(self, classes: np.ndarray) -> bool:
        return bool(self._fixed[classes].any())

    def reaches_outputs(self, classes: np.ndarray) -> bool:
        return bool(self._outputs[classes].any())

    def fine_must_keep(self, fine: np.ndarray) -> bool:
        """Whether any of these fine classes is fixed or reaches a model output."""
        fine = np.asarray(fine, dtype=np.int64)
        return bool(np.isin(fine, self._fixed_fine).any() or np.isin(fine, self._output_fine).any())

    def positions_by_port(self, classes: np.ndarray) -> dict[int, np.ndarray]:
        """Original positions (ascending) of every channel in `classes`, per port id.

        The class table holds flat positions (ports end to end): sorted, they fall into
        port order, so one sort replaces a (port, position) table and a sort by port.
        """
        classes = np.asarray(classes, dtype=np.int64)
        starts = self._starts[classes]
        lens = self._starts[classes + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return {}
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        idx += np.arange(total)
        flat = self._order[idx]
        del idx
        flat.sort()
        offsets = self._offsets
        lo = int(np.searchsorted(offsets, flat[0], side="right")) - 1
        hi = int(np.searchsorted(offsets, flat[-1], side="right"))
        cuts = np.searchsorted(flat, offsets[lo : hi + 1]).tolist()
        out: dict[int, np.ndarray] = {}
        for k in range(lo, hi):
            a, b = cuts[k - lo], cuts[k - lo + 1]
            if b > a:
                out[k] = flat[a:b] - offsets[k]
        return out

    def fine_positions(self, fine: np.ndarray) -> list[tuple[PortState, np.ndarray]]:
        """(port, mask of alive positions) for every port holding any of the fine classes."""
        out = []
        for state in self._ports:
            mask = state.alive & np.isin(state.fine, fine)
            if mask.any():
                out.append((state, mask))
        return out

    def int_list(self, values: np.ndarray) -> list[int]:
        """`values.tolist()` made of shared int objects: index lists of every group of a
        70 B model (28672-wide MLP groups) otherwise hold ~0.5 GB of separate ints."""
        return self._int_pool[values].tolist()

    def is_current(self, port_ids: Sequence[int], made_at: int) -> bool:
        """No port in `port_ids` lost channels after serial `made_at` (ports partition the
        channels, so removals elsewhere leave their positions where they were)."""
        ports = self._ports
        return all(ports[k].pruned_at <= made_at for k in port_ids)

    # ---------------------------------------------------------------- changes
    def fix(self, classes: np.ndarray) -> None:
        """Mark classes as fixed (the probe found code that depends on their width)."""
        self._fixed[np.asarray(classes, dtype=np.int64)] = True

    def remove(self, classes: np.ndarray) -> int:
        """Record that every alive position of `classes` was pruned; returns the new serial."""
        by_port = self.positions_by_port(np.asarray(classes, dtype=np.int64))
        return self.remove_positions(by_port.items())

    def remove_positions(self, positions: Any) -> int:
        """Record pruned positions given as (port id or PortState, positions or bool mask)."""
        self._serial += 1
        ports = self._ports
        for key, where in positions:
            state = ports[key] if type(key) is int else key
            state.alive.setflags(write=True)
            try:
                state.alive[where] = False
            finally:
                state.alive.setflags(write=False)
            state._rank = None
            state._width = None
            state.pruned_at = self._serial
        return self._serial
