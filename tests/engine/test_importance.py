"""Importance criteria on hand-built tiny models, where every score can be written down."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import engine as tp
from engine.importance.slices import channel_rows


class ConvBNConv(nn.Module):
    """conv1 (3->4) -> bn1 -> relu -> conv2 (4->2); conv1's group: conv1 out, bn1, conv2 in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.bn1(self.conv1(x))))


def hand_set(model: ConvBNConv) -> None:
    """conv1 row c = [c+1, 0, 0]; bn gammas 1, 2, 3, 4 reversed; conv2 column c = [1, 1]."""
    with torch.no_grad():
        model.conv1.weight.zero_()
        for c in range(4):
            model.conv1.weight[c, 0] = c + 1
        model.bn1.weight.copy_(torch.tensor([4.0, 3.0, 2.0, 1.0]))
        model.conv2.weight.fill_(1.0)


def group_of(model: ConvBNConv) -> tp.Group:
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    return dg.get_pruning_group(model.conv1, tp.prune_conv_out_channels, [0, 1, 2, 3])


@pytest.fixture
def group() -> tp.Group:
    model = ConvBNConv()
    hand_set(model)
    return group_of(model)


CONV1 = torch.tensor([1.0, 4.0, 9.0, 16.0])  # |w|^2 per conv1 row
BN = torch.tensor([16.0, 9.0, 4.0, 1.0])  # gamma^2
CONV2 = torch.tensor([2.0, 2.0, 2.0, 2.0])  # |column|^2


@pytest.mark.parametrize(
    "reduction, expected",
    [
        ("mean", (CONV1 + BN + CONV2) / 3),
        ("sum", CONV1 + BN + CONV2),
        ("max", torch.maximum(torch.maximum(CONV1, BN), CONV2)),
        ("prod", CONV1 * BN * CONV2),
        ("first", CONV1),
    ],
)
def test_magnitude_reductions(group, reduction, expected):
    imp = tp.importance.MagnitudeImportance(p=2, group_reduction=reduction, normalizer=None)
    assert torch.allclose(imp(group), expected)


@pytest.mark.parametrize(
    "normalizer, fn",
    [
        ("mean", lambda x: x / x.mean()),
        ("max", lambda x: x / x.max()),
        ("sum", lambda x: x / x.sum()),
        ("standardization", lambda x: (x - x.min()) / (x.max() - x.min() + 1e-8)),
        ("gaussian", lambda x: (x - x.mean()) / (x.std() + 1e-8)),
    ],
)
def test_magnitude_normalizers(group, normalizer, fn):
    imp = tp.importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=normalizer)
    assert torch.allclose(imp(group), fn(CONV1))


def test_p1_and_bias():
    model = ConvBNConv()
    hand_set(model)
    model.conv1.bias = nn.Parameter(torch.tensor([10.0, 0.0, 0.0, 0.0]))
    imp = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None,
                                            bias=True)
    # "first" keeps the first scored entry: conv1's weight; bias counts only in sums
    assert torch.allclose(imp(group_of(model)), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    imp_sum = tp.importance.MagnitudeImportance(p=1, group_reduction="sum", normalizer=None,
                                                bias=True, target_types=[nn.Conv2d])
    # conv1 |w| + conv1 |b| + conv2 |column|_1
    assert torch.allclose(imp_sum(group_of(model)), torch.tensor([13.0, 4.0, 5.0, 6.0]))


def test_flattened_conv_feeding_linear_sums_its_columns_per_channel():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 1, bias=False)
            self.fc = nn.Linear(12, 2, bias=False)

        def forward(self, x):
            return self.fc(torch.flatten(self.conv(x), 1))

    m = Net()
    with torch.no_grad():
        m.conv.weight.fill_(1.0)
        m.fc.weight.copy_(torch.arange(24.0).reshape(2, 12) / 10)
    dg = tp.DependencyGraph().build_dependency(m, torch.randn(1, 1, 2, 2))
    g = dg.get_pruning_group(m.conv, tp.prune_conv_out_channels, [0, 1, 2])
    scores = tp.importance.MagnitudeImportance(group_reduction="sum", normalizer=None)(g)
    cols = (m.fc.weight.detach() ** 2).sum(0).reshape(3, 4).sum(1)  # 4 columns per channel
    assert scores.shape == (3,)
    assert torch.allclose(scores, 1.0 + cols)


def test_grouped_conv_in_channels_use_only_their_group():
    conv = nn.Conv2d(4, 6, 1, groups=2, bias=False)  # weight (6, 2, 1, 1)
    w = torch.arange(12.0).reshape(6, 2, 1, 1)
    rows = channel_rows(conv, w, is_out=False, idxs=[0, 3])
    # in channel 0: group 0 (out rows 0-2), column 0; in channel 3: group 1 (rows 3-5), column 1
    assert rows.tolist() == [[0.0, 2.0, 4.0], [7.0, 9.0, 11.0]]


def test_taylor_uses_hand_set_gradients(group):
    model_layers = [it.dep.target.module for it in group]
    conv1, bn1, conv2 = model_layers
    for layer in (conv1, bn1, conv2):
        layer.weight.grad = torch.zeros_like(layer.weight)
    conv1.weight.grad[:, 0] = torch.tensor([1.0, -1.0, 0.5, 0.0]).view(4, 1, 1)
    imp = tp.importance.TaylorImportance(group_reduction="sum", normalizer=None)
    # |w * g| = [1*1, 2*1, 3*0.5, 4*0] from conv1 only
    assert torch.allclose(imp(group), torch.tensor([1.0, 2.0, 1.5, 0.0]))


def test_taylor_without_gradients_says_so(group):
    with pytest.raises(ValueError, match="backward"):
        tp.importance.TaylorImportance()(group)


def test_hessian_averages_squared_gradients(group):
    conv1 = group[0].dep.target.module
    model = nn.ModuleList([it.dep.target.module for it in group])
    imp = tp.importance.HessianImportance(group_reduction="first", normalizer=None)
    for g in (1.0, 3.0):  # two "samples": H ~ (1 + 9) / 2 = 5 on conv1's first column
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        conv1.weight.grad[:, 0] = g
        imp.accumulate_grad(model)
    assert torch.allclose(imp(group), CONV1 * 5.0)
    imp.zero_grad()
    assert imp._accu == {}


def test_bn_scale_is_abs_gamma(group):
    scores = tp.importance.BNScaleImportance(normalizer=None)(group)
    assert torch.allclose(scores, torch.tensor([4.0, 3.0, 2.0, 1.0]))
    assert scores.argmin().item() == 3


def test_bn_scale_skips_groups_without_bn():
    conv = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1))
    dg = tp.DependencyGraph().build_dependency(conv, torch.randn(1, 3, 2, 2))
    g = dg.get_pruning_group(conv[0], tp.prune_conv_out_channels, [0])
    assert tp.importance.BNScaleImportance()(g) is None


def test_lamp_values_and_ranking(group):
    scores = tp.importance.LAMPImportance(group_reduction="first")(group)
    # ascending 1, 4, 9, 16: each over the sum of itself and all larger ones
    assert torch.allclose(scores, torch.tensor([1 / 30, 4 / 29, 9 / 25, 16 / 16]))


def test_random_is_seeded(group):
    a = tp.importance.RandomImportance(seed=7)(group)
    b = tp.importance.RandomImportance(seed=7)(group)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(a, expected)


def test_smallest_norm_channel_is_pruned_first():
    model = ConvBNConv()
    hand_set(model)
    with torch.no_grad():
        model.bn1.weight.fill_(1.0)
    pruner = tp.pruner.MagnitudePruner(model, torch.randn(1, 3, 4, 4),
                                       tp.importance.MagnitudeImportance(), pruning_ratio=0.25)
    plan = pruner.plan_step()
    assert [p.idxs for p in plan] == [[0]]  # conv1 row 0 has the smallest norm


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="group_reduction"):
        tp.importance.MagnitudeImportance(group_reduction="median")
    with pytest.raises(ValueError, match="normalizer"):
        tp.importance.MagnitudeImportance(normalizer="zscore")
    with pytest.raises(ValueError, match="lamp"):
        tp.importance.LAMPImportance(normalizer="mean")
