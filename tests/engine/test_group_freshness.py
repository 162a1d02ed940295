"""Groups keep their indices across prunes that do not touch their ports, and are
re-derived when a prune shifted positions on one of them; ChannelSets arithmetic."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

import engine as tp
from engine.graph.channel_sets import ChannelSets


class CatNet(nn.Module):
    """a and b feed one concat: c's input port holds channels of both groups."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 1)
        self.c = nn.Conv2d(8, 5, 1)
        self.d = nn.Conv2d(5, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(self.c(torch.cat([self.a(x), self.b(x)], 1)))


def _net() -> tuple[CatNet, tp.DependencyGraph]:
    torch.manual_seed(0)
    model = CatNet().eval()
    return model, tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))


def test_a_prune_on_a_shared_port_makes_the_other_group_stale_and_it_is_re_derived():
    model, dg = _net()
    c_weight = model.c.weight.detach().clone()
    ga = dg.get_pruning_group(model.a, tp.prune_conv_out_channels, [0])
    gb = dg.get_pruning_group(model.b, tp.prune_conv_out_channels, [1, 3])
    assert dg.is_current(ga) and dg.is_current(gb)
    ga.prune()
    assert not dg.is_current(gb)  # c's input channels 4..7 moved to 3..6
    gb.prune()
    kept = [1, 2, 3, 4, 6]  # concat channels left: a's 1..3 and b's 0, 2
    torch.testing.assert_close(model.c.weight, c_weight[:, kept])
    assert model.c.in_channels == 5 and model.a.out_channels == 3 and model.b.out_channels == 2
    assert model(torch.randn(2, 3, 4, 4)).shape == (2, 2, 4, 4)


def test_a_prune_elsewhere_leaves_a_group_current_and_its_indices_exact():
    model, dg = _net()
    d_weight = model.d.weight.detach().clone()
    gc = dg.get_pruning_group(model.c, tp.prune_conv_out_channels, [0, 4])
    ga = dg.get_pruning_group(model.a, tp.prune_conv_out_channels, [2])
    ga.prune()
    assert dg.is_current(gc)  # a's prune shifted c's INPUT port, not c's output / d's input
    gc.prune()
    torch.testing.assert_close(model.d.weight, d_weight[:, [1, 2, 3]])
    assert model.c.out_channels == 3 and model.c.in_channels == 7


def test_a_hand_edited_group_is_not_current():
    model, dg = _net()
    group = dg.get_pruning_group(model.a, tp.prune_conv_out_channels, [0])
    group.add_dep(group[0].dep, [1])
    assert not dg.is_current(group)


def test_step_applies_a_group_after_another_shifted_their_shared_port():
    # step() plans both concat groups first; applying a's shifts c's input under b's
    model, _ = _net()
    with torch.no_grad():
        model.a.weight[1].zero_()
        model.a.bias[1] = 0
        model.b.weight[2].zero_()
        model.b.bias[2] = 0
    x = torch.randn(2, 3, 4, 4)
    ref = model(x)
    pruner = tp.pruner.BasePruner(
        model, x[:1], tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.25,
        ignored_layers=[model.c, model.d],
    )
    pruner.step()
    assert model.a.out_channels == 3 and model.b.out_channels == 3
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=0)  # zero channels went


def test_channel_sets_reorder_and_leading():
    sets = ChannelSets.from_lists([[0, 4], [1], [2, 5, 7]])
    assert len(sets) == 3
    assert sets.sizes.tolist() == [2, 1, 3]
    assert sets.firsts.tolist() == [0, 1, 2]
    moved = sets.reordered(np.array([2, 0, 1]))
    assert moved.as_lists() == [[2, 5, 7], [0, 4], [1]]
    assert moved.leading(2) == [0, 2, 4, 5, 7]
    assert moved.leading(0) == []
    single = ChannelSets.singletons(np.array([3, 1]))
    assert single.as_lists() == [[3], [1]] and single.leading(1) == [3]
    assert ChannelSets.from_lists([]).as_lists() == []


def _items(group) -> list[tuple[str, str, list[int], list[int] | None]]:  # noqa: ANN001
    return [(it.dep.target.name, it.dep.handler.__name__, list(it.idxs),
             list(it.root_idxs) if it.root_idxs is not None else None) for it in group]


def test_sub_group_equals_get_pruning_group():
    import random

    import torchvision

    random.seed(0)
    conv = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Conv2d(8, 4, 1)
    ).eval()
    cases = [(conv, torch.randn(1, 3, 8, 8)), (CatNet().eval(), torch.randn(1, 3, 4, 4)),
             (torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 32, 32))]
    checked = 0
    for model, x in cases:
        dg = tp.DependencyGraph().build_dependency(model, x)
        for group in dg.get_all_groups():
            sets = group.channel_sets()
            pick = sorted(i for s in random.sample(sets, max(1, len(sets) // 3)) for i in s)
            root = group[0].dep
            want = dg.get_pruning_group(root.target.module, root.handler, pick)
            got = dg.sub_group(group, pick)
            assert _items(got) == _items(want)
            assert got.classes.tolist() == want.classes.tolist() and got.locked == want.locked
            assert got.derivation.port_ids == want.derivation.port_ids and dg.is_current(got)
            assert dg.check_pruning_group(got) == dg.check_pruning_group(want)
            checked += 1
    assert checked >= 15
