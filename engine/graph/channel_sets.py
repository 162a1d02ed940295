"""Indivisible units of a group's root channels, stored flat (values + offsets).

A 3072-wide MLP group has 3072 one-channel units; as a list of lists that is 3072 small
Python lists per group, per plan, which made garbage collection a visible part of step().
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ChannelSets:
    """Set `i` is `values[starts[i]:starts[i + 1]]` (root channel indices)."""

    values: np.ndarray  # int64
    starts: np.ndarray  # int64, len(sets) + 1, starts[0] == 0

    @classmethod
    def singletons(cls, channels: np.ndarray) -> ChannelSets:
        channels = np.asarray(channels, dtype=np.int64)
        return cls(channels, np.arange(channels.size + 1, dtype=np.int64))

    @classmethod
    def from_lists(cls, sets: list[list[int]]) -> ChannelSets:
        sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
        values = np.fromiter((i for s in sets for i in s), dtype=np.int64, count=int(sizes.sum()))
        return cls(values, np.concatenate(([0], np.cumsum(sizes))).astype(np.int64))

    def __len__(self) -> int:
        return self.starts.size - 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)

    @property
    def firsts(self) -> np.ndarray:
        """Each set's first channel (sets list their channels in unit order)."""
        return self.values[self.starts[:-1]]

    def reordered(self, order: np.ndarray) -> ChannelSets:
        """The same sets in the order `order` (indices into the current order)."""
        sizes = self.sizes[order]
        starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        idx = np.repeat(self.starts[:-1][order] - starts[:-1], sizes) + np.arange(starts[-1])
        return ChannelSets(self.values[idx], starts)

    def leading(self, k: int) -> list[int]:
        """Channels of the first `k` sets, ascending."""
        return np.sort(self.values[: self.starts[k]]).tolist()

    def as_lists(self) -> list[list[int]]:
        vals = self.values.tolist()
        edges = self.starts.tolist()
        return [vals[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
