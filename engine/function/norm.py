"""Pruners for normalisation layers: per-channel affine params and running stats.

A norm layer's input and output channels are the same axis, so every pruner
here aliases ``prune_in_channels = prune_out_channels``: the two bound methods
compare equal and the dependency graph can de-duplicate them.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = [
    "BatchnormPruner",
    "InstanceNormPruner",
    "GroupNormPruner",
    "LayernormPruner",
    "RMSNormPruner",
]

_NormWithStats = nn.modules.batchnorm._NormBase  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d


class BatchnormPruner(BasePruningFunc):
    """BatchNorm1d/2d/3d: weight/bias if affine, running stats if tracked."""

    TARGET_MODULES: tuple[type, ...] = (
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
        nn.SyncBatchNorm,
    )

    def prune_out_channels(self, layer: _NormWithStats, idxs: Sequence[int]) -> _NormWithStats:
        removed = normalize_idxs(idxs, layer.num_features, "feature")
        if removed:
            keep = keep_indices(layer.num_features, removed, "features")
            for name in ("weight", "bias", "running_mean", "running_var"):
                prune_tensor_(getattr(layer, name, None), 0, keep)
            layer.num_features = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: _NormWithStats) -> int:
        return layer.num_features

    get_in_channels = get_out_channels


class InstanceNormPruner(BatchnormPruner):
    """InstanceNorm1d/2d/3d; same attributes as BatchNorm (affine/stats optional)."""

    TARGET_MODULES: tuple[type, ...] = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


class GroupNormPruner(BasePruningFunc):
    """GroupNorm keeps ``num_groups``; the remaining channels must still divide evenly.

    Channel groups are reported as 1: forcing identical positions in every
    norm group would make typical GroupNorm layers (2-4 channels per group)
    nearly unprunable.
    """

    TARGET_MODULES: tuple[type, ...] = (nn.GroupNorm,)

    def prune_out_channels(self, layer: nn.GroupNorm, idxs: Sequence[int]) -> nn.GroupNorm:
        removed = normalize_idxs(idxs, layer.num_channels, "channel")
        if removed:
            keep = keep_indices(layer.num_channels, removed, "channels")
            if len(keep) % layer.num_groups:
                raise ValueError(
                    f"GroupNorm with num_groups={layer.num_groups} cannot keep "
                    f"{len(keep)} channels (not divisible)"
                )
            prune_tensor_(layer.weight, 0, keep)
            prune_tensor_(layer.bias, 0, keep)
            layer.num_channels = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.GroupNorm) -> int:
        return layer.num_channels

    get_in_channels = get_out_channels


class LayernormPruner(BasePruningFunc):
    """Prunes the last normalised dim; weight/bias (shape == normalized_shape) optional."""

    TARGET_MODULES: tuple[type, ...] = (nn.LayerNorm,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        shape = tuple(layer.normalized_shape)
        removed = normalize_idxs(idxs, shape[-1], "normalized dim")
        if removed:
            keep = keep_indices(shape[-1], removed, "normalized dims")
            prune_tensor_(getattr(layer, "weight", None), -1, keep)
            prune_tensor_(getattr(layer, "bias", None), -1, keep)
            layer.normalized_shape = (*shape[:-1], len(keep))
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return tuple(layer.normalized_shape)[-1]

    get_in_channels = get_out_channels


class RMSNormPruner(LayernormPruner):
    """torch.nn.RMSNorm: like LayerNorm but weight-only."""

    TARGET_MODULES: tuple[type, ...] = (nn.RMSNorm,)
    channels_last = True  # traced as a leaf (it decomposes): the normalised dim is last
