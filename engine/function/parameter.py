"""Pruner for standalone ``nn.Parameter`` tensors (e.g. cls tokens, pos embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["ParameterPruner"]


class ParameterPruner(BasePruningFunc):
    """Slices a tensor in place along ``dim`` (default ``pruning_dim``).

    In and out are the same axis, so ``prune_in_channels`` aliases
    ``prune_out_channels``.
    """

    TARGET_MODULES: tuple[type, ...] = (torch.nn.Parameter,)

    def __init__(self, pruning_dim: int = -1) -> None:
        self.pruning_dim = pruning_dim

    def prune_out_channels(
        self, tensor: torch.Tensor, idxs: Sequence[int], dim: int | None = None
    ) -> torch.Tensor:
        dim = self.pruning_dim if dim is None else dim
        size = tensor.shape[dim]
        removed = normalize_idxs(idxs, size, f"dim-{dim} index")
        if removed:
            prune_tensor_(tensor, dim, keep_indices(size, removed, f"entries along dim {dim}"))
        return tensor

    prune_in_channels = prune_out_channels

    def get_out_channels(self, tensor: torch.Tensor, dim: int | None = None) -> int:
        return tensor.shape[self.pruning_dim if dim is None else dim]

    get_in_channels = get_out_channels

    def __repr__(self) -> str:
        return f"ParameterPruner(pruning_dim={self.pruning_dim})"
