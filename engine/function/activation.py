"""Pruner for nn.PReLU, whose slope is either shared (1 param) or per channel."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["PReLUPruner"]


class PReLUPruner(BasePruningFunc):
    """A shared slope (``num_parameters == 1``) is channel-agnostic: nothing to slice."""

    TARGET_MODULES: tuple[type, ...] = (nn.PReLU,)

    def prune_out_channels(self, layer: nn.PReLU, idxs: Sequence[int]) -> nn.PReLU:
        if layer.num_parameters == 1:
            return layer
        removed = normalize_idxs(idxs, layer.num_parameters, "channel")
        if removed:
            keep = keep_indices(layer.num_parameters, removed, "channels")
            prune_tensor_(layer.weight, 0, keep)
            layer.num_parameters = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.PReLU) -> int | None:
        """None for a shared slope: the layer imposes no channel count."""
        return None if layer.num_parameters == 1 else layer.num_parameters

    get_in_channels = get_out_channels
