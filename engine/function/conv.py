"""Pruners for (transposed) convolutions, including grouped and depthwise ones.

Weight layouts: Conv is ``(out, in/groups, *k)`` and ConvTranspose is
``(in, out/groups, *k)``. So one channel axis is stored in its full index
space (dim 0) and the other per group (dim 1). Three rules follow:

* full-space axis: rows are removed directly; each group must lose the same
  number so the groups stay equal-sized and keep their own channels;
* per-group axis: the same within-group positions must be removed from every
  group (``idxs`` are given in the full index space);
* depthwise (``1 < groups == in_channels``): every in channel is a group, so
  pruning removes whole groups, which changes in_channels, out_channels and
  groups together. Out channels (channel multiplier ``m = out/groups``) must
  then be removed in whole blocks of ``m``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["ConvPruner", "ConvTransposePruner", "is_depthwise_conv"]

_Conv = nn.modules.conv._ConvNd


def is_depthwise_conv(layer: nn.Module) -> bool:
    """True when each input channel is its own group (``1 < groups == in_channels``)."""
    return layer.groups > 1 and layer.groups == layer.in_channels


class ConvPruner(BasePruningFunc):
    """Conv1d/2d/3d pruner; also handles transposed convs via ``layer.transposed``."""

    TARGET_MODULES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

    def prune_out_channels(self, layer: _Conv, idxs: Sequence[int]) -> _Conv:
        """Remove output channels (for depthwise convs: whole groups, in channels too)."""
        return self._prune(layer, idxs, "out")

    def prune_in_channels(self, layer: _Conv, idxs: Sequence[int]) -> _Conv:
        """Remove input channels (for depthwise convs: whole groups, out channels too)."""
        return self._prune(layer, idxs, "in")

    def get_out_channels(self, layer: _Conv) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: _Conv) -> int:
        return layer.in_channels

    def get_out_channel_groups(self, layer: _Conv) -> int:
        """``groups`` for grouped convs; 1 for depthwise, which prunes whole groups."""
        return 1 if is_depthwise_conv(layer) else layer.groups

    def get_in_channel_groups(self, layer: _Conv) -> int:
        return 1 if is_depthwise_conv(layer) else layer.groups

    # -- implementation -------------------------------------------------

    def _prune(self, layer: _Conv, idxs: Sequence[int], axis: str) -> _Conv:
        size = layer.out_channels if axis == "out" else layer.in_channels
        removed = normalize_idxs(idxs, size, f"{axis} channel")
        if not removed:
            return layer
        if is_depthwise_conv(layer) and not self._same_position_per_group(layer, removed, axis):
            self._remove_groups(layer, self._groups_of(layer, removed, axis))
            return layer
        full_axis = "in" if layer.transposed else "out"
        if axis == full_axis:
            self._remove_rows(layer, removed, axis, size)
        else:
            self._remove_positions(layer, removed, axis, size)
        return layer

    @staticmethod
    def _set_channels(layer: _Conv, axis: str, value: int) -> None:
        setattr(layer, f"{axis}_channels", value)

    def _remove_rows(self, layer: _Conv, removed: list[int], axis: str, size: int) -> None:
        """Full-index-space axis (weight dim 0): equal removal per group required."""
        groups = layer.groups
        per = size // groups
        counts = np.bincount(np.asarray(removed, dtype=np.int64) // per, minlength=groups).tolist()
        if len(set(counts)) != 1:
            raise ValueError(
                f"grouped conv (groups={groups}) must lose the same number of {axis} channels "
                f"in every group; got per-group removals {counts}"
            )
        keep = keep_indices(size, removed, f"{axis} channels")
        prune_tensor_(layer.weight, 0, keep)
        if axis == "out":
            prune_tensor_(layer.bias, 0, keep)
        self._set_channels(layer, axis, len(keep))

    def _remove_positions(self, layer: _Conv, removed: list[int], axis: str, size: int) -> None:
        """Per-group axis (weight dim 1): identical positions removed from each group."""
        groups = layer.groups
        if groups == 1:  # one group: every position is its own channel, nothing to check
            keep_pos = keep_indices(size, removed, f"{axis} channels")
            prune_tensor_(layer.weight, 1, keep_pos)
            if axis == "out":
                prune_tensor_(layer.bias, 0, keep_pos)
            self._set_channels(layer, axis, len(keep_pos))
            return
        per = size // groups
        positions = sorted({i % per for i in removed})
        expected = [g * per + p for g in range(groups) for p in positions]
        if removed != sorted(expected):
            raise ValueError(
                f"grouped conv (groups={groups}): {axis} channel indices must remove the same "
                f"within-group positions {positions} from every group"
            )
        keep_pos = keep_indices(per, positions, f"{axis} channels per group")
        prune_tensor_(layer.weight, 1, keep_pos)
        if axis == "out":  # only transposed convs store out channels per group
            prune_tensor_(layer.bias, 0, keep_indices(size, removed))
        self._set_channels(layer, axis, groups * len(keep_pos))

    @staticmethod
    def _same_position_per_group(layer: _Conv, removed: list[int], axis: str) -> bool:
        """Depthwise out channels removed as a grouped conv's are: the same positions
        from every group (the multiplier shrinks, groups stay). A grouped conv whose in
        channels were pruned down to `groups` looks depthwise but keeps that coupling."""
        mult = layer.out_channels // layer.groups
        if axis != "out" or mult < 2 or len(removed) % layer.groups:
            return False
        positions = sorted({i % mult for i in removed})
        return len(positions) < mult and removed == sorted(
            g * mult + p for g in range(layer.groups) for p in positions)

    @staticmethod
    def _groups_of(layer: _Conv, removed: list[int], axis: str) -> list[int]:
        """Depthwise: map removed channels to removed groups (whole blocks only)."""
        if axis == "in":
            return removed
        mult = layer.out_channels // layer.groups
        groups = sorted({i // mult for i in removed})
        if len(removed) != len(groups) * mult:
            raise ValueError(
                f"depthwise conv with channel multiplier {mult}: out channels must be pruned "
                f"in whole blocks of {mult}"
            )
        return groups

    def _remove_groups(self, layer: _Conv, removed_groups: list[int]) -> None:
        keep_groups = keep_indices(layer.groups, removed_groups, "groups of the depthwise conv")
        mult = layer.out_channels // layer.groups
        keep_out = [g * mult + r for g in keep_groups for r in range(mult)]
        # dim 0 holds out channels for Conv, in channels (one per group) for ConvTranspose
        prune_tensor_(layer.weight, 0, keep_groups if layer.transposed else keep_out)
        prune_tensor_(layer.bias, 0, keep_out)
        layer.groups = len(keep_groups)
        layer.in_channels = len(keep_groups)
        layer.out_channels = len(keep_out)


class ConvTransposePruner(ConvPruner):
    """ConvTranspose1d/2d/3d pruner (weight layout ``(in, out/groups, *k)``)."""

    TARGET_MODULES: tuple[type, ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
