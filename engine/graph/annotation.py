"""Which dimensions of a tensor carry channel slots, and how.

An `Axis` ties one or more tensor dims to an array of slots. Most axes cover one
dim (the channels of a feature map). Joint axes appear when a reshape splits a
channel dim, e.g. (B, N, 3*H*D) -> (B, N, 3, H, D): the array keeps the exact
slot of every element, so later permutes, selects and merges stay exact. In a
joint axis only the innermost dim may shrink (`free`); the others are
structural and must keep their size, which the tracer enforces by uniting
slots across them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Axis:
    dims: tuple[int, ...]  # tensor dims covered, in the order of the slot array's axes
    slots: np.ndarray  # shape == tuple(tensor.shape[d] for d in dims)
    free: int  # the tensor dim that may shrink (one of dims)

    @staticmethod
    def single(dim: int, slots: np.ndarray) -> Axis:
        return Axis((dim,), np.asarray(slots), dim)

    def remap(self, mapping: dict[int, int]) -> Axis:
        return Axis(tuple(mapping[d] for d in self.dims), self.slots, mapping[self.free])

    def in_tensor_order(self) -> tuple[tuple[int, ...], np.ndarray]:
        """Dims sorted ascending and the slot array transposed to match."""
        order = sorted(range(len(self.dims)), key=lambda i: self.dims[i])
        return tuple(self.dims[i] for i in order), np.transpose(self.slots, order)


Annotation = tuple[Axis, ...]
EMPTY: Annotation = ()


def axis_at(ann: Annotation, dim: int) -> Axis | None:
    for ax in ann:
        if dim in ax.dims:
            return ax
    return None


def shift(ann: Annotation, offset: int) -> Annotation:
    if offset == 0:
        return ann
    return tuple(Axis(tuple(d + offset for d in a.dims), a.slots, a.free + offset) for a in ann)
