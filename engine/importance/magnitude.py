"""Weight-magnitude criteria: group norm, BN scale (Network Slimming), LAMP."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .base import DEFAULT_TARGET_TYPES, GroupScorer
from .slices import bias_rows, channel_power_sums


class GroupMagnitudeImportance(GroupScorer):
    """Sum of |w|^p over the entries each channel removes, per member, then reduced.

    Summing |w|^p (not taking the p-th root) is Torch-Pruning's definition and
    makes members' contributions additive.
    """

    def __init__(
        self,
        p: float = 2,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        bias: bool = False,
        target_types: Sequence[type] = DEFAULT_TARGET_TYPES,
    ) -> None:
        super().__init__(group_reduction, normalizer, bias, target_types)
        if p <= 0:
            raise ValueError(f"p must be positive, got {p}")
        self.p = p

    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            return []  # e.g. a norm without affine parameters
        sums = channel_power_sums(layer, weight, is_out, idxs, self.p,
                                  getattr(self, "_both_axes", None))
        if sums is None:
            return []
        out = [sums]
        if self.bias:
            b = bias_rows(layer, idxs, is_out)
            if b is not None:
                out.append(b.abs().pow(self.p).sum(1))
        return out


class MagnitudeImportance(GroupMagnitudeImportance):
    """Torch-Pruning's name for the group magnitude criterion."""


class BNScaleImportance(GroupMagnitudeImportance):
    """|gamma| of the group's BatchNorm layers (Network Slimming, arXiv 1708.06519)."""

    def __init__(
        self, group_reduction: str | None = "mean", normalizer: str | None = "mean"
    ) -> None:
        super().__init__(1, group_reduction, normalizer, False, (nn.modules.batchnorm._BatchNorm,))


class LAMPImportance(GroupMagnitudeImportance):
    """Magnitude rescaled by LAMP (arXiv 2010.07611): comparable across layers."""

    def __init__(self, p: float = 2, group_reduction: str | None = "mean", normalizer: str = "lamp",
                 bias: bool = False) -> None:
        if normalizer != "lamp":
            raise ValueError("LAMPImportance only supports normalizer='lamp'")
        super().__init__(p, group_reduction, normalizer, bias)
