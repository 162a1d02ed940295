"""Base class and in-place tensor helpers shared by every layer pruner.

The dependency graph identifies parameters and buffers by object identity, so
pruning must never replace them: the helpers here swap ``.data`` (and
``.grad``) instead of assigning new ``nn.Parameter`` objects.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "BasePruningFunc", "Keep", "normalize_idxs", "keep_indices", "prune_tensor_", "set_leaf_data",
]


def normalize_idxs(
    idxs: Iterable[int] | torch.Tensor, size: int, what: str = "channel"
) -> list[int]:
    """Sorted, de-duplicated indices; rejects anything outside ``[0, size)``.

    Negative indices are refused rather than wrapped: in a pruning plan they
    almost always signal a bug upstream.
    """
    if isinstance(idxs, torch.Tensor):
        arr = idxs.detach().reshape(-1).cpu().numpy().astype(np.int64, copy=False)
    elif isinstance(idxs, (list, tuple, np.ndarray)):
        arr = np.asarray(idxs, dtype=np.int64).reshape(-1)
    else:  # sets, ranges, generators
        arr = np.fromiter((int(i) for i in idxs), dtype=np.int64)
    if arr.size > 1 and not (arr[1:] > arr[:-1]).all():  # graph groups come sorted already
        arr = np.unique(arr)
    if arr.size and (arr[0] < 0 or arr[-1] >= size):
        bad = arr[(arr < 0) | (arr >= size)].tolist()
        raise ValueError(f"{what} indices {bad} out of range for size {size}")
    return arr.tolist()


class Keep(list):
    """Indices kept along an axis: a plain list for callers, plus its index tensor made
    once (a BatchNorm prunes four tensors with the same indices)."""

    def __init__(self, kept: np.ndarray) -> None:
        super().__init__(kept.tolist())
        self._index = torch.from_numpy(np.ascontiguousarray(kept, dtype=np.int64))

    def index_on(self, device: torch.device) -> torch.Tensor:
        if self._index.device != device:
            self._index = self._index.to(device)
        return self._index


def keep_indices(size: int, removed: Sequence[int], what: str = "channels") -> Keep:
    """Complement of ``removed`` in ``range(size)``; refuses to keep nothing."""
    mask = np.ones(size, dtype=bool)
    if len(removed):
        mask[np.asarray(removed, dtype=np.int64)] = False
    kept = np.flatnonzero(mask)
    if not kept.size:
        raise ValueError(f"refusing to prune all {size} {what}: at least one must remain")
    return Keep(kept)


def prune_tensor_(tensor: torch.Tensor | None, dim: int, keep: Sequence[int]) -> None:
    """Keep only ``keep`` along ``dim`` of ``tensor`` in place (object identity kept).

    Works for Parameters and buffers. The tensor stays a valid autograd leaf: a present
    ``.grad`` is sliced the same way (so criteria and an optimizer step right after
    pruning see matching shapes), and its gradient accumulator is renewed (see
    `set_leaf_data`).
    """
    if tensor is None:
        return
    if isinstance(keep, Keep):
        index = keep.index_on(tensor.device)
    else:
        index = torch.as_tensor(list(keep), dtype=torch.long, device=tensor.device)
    grad = tensor.grad
    set_leaf_data(tensor, torch.index_select(tensor.data, dim, index))
    if grad is not None:
        tensor.grad = torch.index_select(grad, dim, index.to(grad.device))


def set_leaf_data(tensor: torch.Tensor, data: torch.Tensor) -> None:
    """``tensor.data = data`` for a leaf whose shape may change, without a stale autograd node.

    A leaf that requires grad caches its gradient accumulator (the AccumulateGrad node,
    which records the leaf's shape) for as long as any autograd graph holds it, e.g. a
    ``loss`` variable kept from the last backward. ``.data = ...`` renews that node only
    when the dtype or device changes, not the shape, so the next forward would reuse it
    and backward would fail with "invalid gradient ... got [8, 58, 3, 3] but expected
    shape compatible with [8, 64, 3, 3]". Passing through an empty tensor of another
    dtype makes PyTorch drop the cached node; the next forward creates a fresh one.
    Weightless meta copies (previews, the probe) never run backward and skip this.
    """
    if tensor.requires_grad and data.shape != tensor.shape and not tensor.is_meta:
        other = torch.float64 if tensor.dtype != torch.float64 else torch.float32
        tensor.data = torch.empty(0, dtype=other, device=tensor.device)
    tensor.data = data


class BasePruningFunc(abc.ABC):
    """Prunes one layer type along its output or input channel axis.

    ``idxs`` are always the indices to REMOVE; they may be any iterable of ints
    (unsorted, with duplicates). Implementations mutate ``layer`` in place and
    return it. A layer whose input and output are the same channels (norm-like,
    elementwise) says so with ``prune_in_channels = prune_out_channels``, as in
    Torch-Pruning; the graph then couples its in and out channels.

    Subclassing it is how Torch-Pruning users add custom layers (``customized_pruners=``
    or ``DG.register_customized_layer``); `_prune_parameter_and_grad` is their helper.
    """

    TARGET_MODULES: tuple[type, ...] = ()

    def __init__(self, pruning_dim: int = 1) -> None:
        self.pruning_dim = pruning_dim  # Torch-Pruning's attribute (used by parameter pruners)

    @abc.abstractmethod
    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        """Remove output channels ``idxs`` from ``layer``."""

    @abc.abstractmethod
    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        """Remove input channels ``idxs`` from ``layer``."""

    @abc.abstractmethod
    def get_out_channels(self, layer: nn.Module) -> int | None:
        """Number of output channels, or None if the layer has no such axis."""

    @abc.abstractmethod
    def get_in_channels(self, layer: nn.Module) -> int | None:
        """Number of input channels, or None if the layer has no such axis."""

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        """How many equal groups the out channels form (same positions pruned in each)."""
        return 1

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        """How many equal groups the in channels form (same positions pruned in each)."""
        return 1

    def check(self, layer: nn.Module, idxs: Sequence[int], to_output: bool) -> None:
        """Refuse a layer of the wrong type or indices outside its channels."""
        if self.TARGET_MODULES and not isinstance(layer, self.TARGET_MODULES):
            raise TypeError(f"{type(self).__name__} cannot prune {type(layer).__name__}")
        size = self.get_out_channels(layer) if to_output else self.get_in_channels(layer)
        if size is not None:
            normalize_idxs(idxs, size, "out-channel" if to_output else "in-channel")

    def __call__(self, layer: nn.Module, idxs: Sequence[int], to_output: bool = True,
                 inplace: bool = True, dry_run: bool = False) -> nn.Module:
        """Torch-Pruning's dispatch: prune out (``to_output``) or in channels of ``layer``,
        or of a deep copy of it with ``inplace=False``; returns the pruned layer."""
        idxs = sorted(int(i) for i in idxs)
        self.check(layer, idxs, to_output)
        if not inplace:
            layer = copy.deepcopy(layer)
        fn = self.prune_out_channels if to_output else self.prune_in_channels
        return fn(layer, idxs)

    def _prune_parameter_and_grad(
        self, weight: torch.Tensor, keep_idxs: Sequence[int], pruning_dim: int
    ) -> torch.Tensor:
        """Keep ``keep_idxs`` of ``weight`` along ``pruning_dim``, its ``.grad`` alike.

        Torch-Pruning's helper returns a NEW Parameter for the caller to assign; this one
        prunes ``weight`` in place and returns it, so ``layer.w = self._prune_parameter_
        and_grad(layer.w, keep, 0)`` works unchanged while the Parameter keeps its
        identity (the graph and optimizers hold it).
        """
        prune_tensor_(weight, pruning_dim, list(keep_idxs))
        return weight

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
