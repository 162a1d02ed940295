"""One read per layer for both channel axes (BothAxes) gives the per-axis sums, and a
pruner's plan is the same with and without it."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import engine as tp
from engine.importance.slices import BothAxes, _axis_power_sums


def _layers() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        nn.Linear(7, 5),
        nn.Conv2d(4, 6, 3),
        nn.Conv2d(4, 6, 1),
        nn.Conv1d(3, 2, 5),
        nn.ConvTranspose2d(4, 6, 3),
    ]


@pytest.mark.parametrize("p", [1, 2, 3])
def test_both_axes_equal_the_per_axis_sums(p: float):
    for layer in _layers():
        shared = BothAxes()
        w = layer.weight
        for is_out in (True, False):
            got = shared.sums(layer, w, is_out, p)
            want = _axis_power_sums(layer, w.detach(), is_out, p)
            torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-6)
            # and against the definition: |w|^p summed over everything but the channel
            dim = 0 if is_out != bool(getattr(layer, "transposed", False)) else 1
            other = [d for d in range(w.dim()) if d != dim]
            torch.testing.assert_close(got, w.detach().abs().pow(p).sum(other), rtol=1e-5,
                                       atol=1e-6)


def test_an_in_place_change_is_seen_and_grouped_layers_are_not_taken():
    layer = nn.Linear(4, 3)
    shared = BothAxes()
    before = shared.sums(layer, layer.weight, True, 2).clone()
    with torch.no_grad():
        layer.weight.mul_(2)
    after = shared.sums(layer, layer.weight, True, 2)
    torch.testing.assert_close(after, before * 4)
    with torch.no_grad():
        layer.weight.data = layer.weight.data[:2].clone()  # what pruning does
    assert shared.sums(layer, layer.weight, True, 2).shape == (2,)
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    assert shared.sums(grouped, grouped.weight, True, 2) is None  # per-axis path handles it


def test_the_plan_is_the_same_with_shared_reads():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    imp = tp.importance.MagnitudeImportance(p=2)
    pruner = tp.pruner.BasePruner(model, x, imp, pruning_ratio=0.5, ignored_layers=[model.fc])
    groups = list(pruner.DG.get_all_groups(ignored_layers=[model.fc]))
    plain = [imp(g) for g in groups]
    with imp.sharing_layer_reads():
        shared = [imp(g) for g in groups]
    assert imp._both_axes is None  # the session ends with the context
    for a, b in zip(plain, shared, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=0)
    class PerAxis(tp.importance.MagnitudeImportance):
        sharing_layer_reads = None  # the pruner then scores every axis on its own

    per_axis = tp.pruner.BasePruner(model, x, PerAxis(p=2), pruning_ratio=0.5,
                                    ignored_layers=[model.fc]).plan_step()
    shared_plan = pruner.plan_step()
    assert len(shared_plan) == 12
    assert [p.idxs for p in shared_plan] == [p.idxs for p in per_axis]
    assert all(p.n_removed for p in shared_plan)
