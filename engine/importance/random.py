"""Random scores: a baseline, reproducible with `seed`."""

from __future__ import annotations

import torch

from ..graph import Group
from .base import Importance


class RandomImportance(Importance):
    def __init__(self, seed: int | None = None) -> None:
        self._gen = torch.Generator()
        if seed is not None:
            self._gen.manual_seed(seed)
        else:
            self._gen.seed()

    @torch.no_grad()
    def __call__(self, group: Group) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self._gen)
