"""engine.graph.lock_reason: the one sentence for why a layer's channels are not prunable."""

from __future__ import annotations

import torch
from torch import nn

import engine as tp
from engine.graph.lock_reason import lock_reason


class WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
        self.spare = nn.Conv2d(3, 5, 1)  # never run in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_each_reason_comes_from_the_traced_graph() -> None:
    model = WithUnused()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, 8, 8))
    first, last = model.body[0], model.body[2]
    assert lock_reason(dg, first) is None  # prunable: no reason
    assert lock_reason(dg, first, ignored=["body.0"]) == "ignored in the plan (never pruned)"
    assert "model's output" in lock_reason(dg, last)
    unused = lock_reason(dg, model.spare)
    assert unused is not None and "'spare'" in unused and "forward" in unused
