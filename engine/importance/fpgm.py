"""FPGM: filters close to the others (near the geometric median) are the redundant ones.

He et al., "Filter Pruning via Geometric Median", CVPR 2019. A channel's score is the
sum of its distances to the other channels of the same layer; small sums mean the
channel is well represented by the rest. Computed, as Torch-Pruning 1.6.1 does, on the
rows |w|^p of each conv/Linear member (out rows, or in columns), Euclidean distances
among the group's channels, then reduced over members and normalized like every
criterion. Norm layers carry no filters and are not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .base import GroupScorer
from .slices import channel_rows

FILTER_TYPES: tuple[type, ...] = (nn.modules.conv._ConvNd, nn.Linear)
_CHUNK = 1 << 22  # distance entries per chunk (16 MB in float32)


def distance_sums(rows: torch.Tensor) -> torch.Tensor:
    """Sum over j of ||rows[i] - rows[j]||_2 for every i, in row chunks (a 28672-wide MLP
    would need a 3 GB distance matrix at once)."""
    rows = rows.to(torch.float32)
    n = rows.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=rows.device)
    step = max(1, _CHUNK // max(n, 1))
    for i in range(0, n, step):
        out[i:i + step] = torch.cdist(rows[i:i + step], rows).sum(1)
    return out


class FPGMImportance(GroupScorer):
    """Torch-Pruning's `FPGMImportance(p=2, group_reduction="mean", normalizer="mean")`."""

    def __init__(
        self,
        p: float = 2,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        bias: bool = False,
        target_types: Sequence[type] = FILTER_TYPES,
    ) -> None:
        super().__init__(group_reduction, normalizer, bias, target_types)
        if p <= 0:
            raise ValueError(f"p must be positive, got {p}")
        self.p = p

    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        weight = getattr(layer, "weight", None)
        if not isinstance(layer, FILTER_TYPES) or not isinstance(weight, torch.Tensor):
            return []
        rows = channel_rows(layer, weight.detach(), is_out, idxs)
        if rows is None or rows.shape[0] == 0:
            return []
        return [distance_sums(rows.abs().pow(self.p))]
