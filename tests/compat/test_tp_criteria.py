"""Every criterion Torch-Pruning 1.6.1 exports, with its interface, checked against hand
computations on small models."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import engine as tp

TP_CRITERIA = ["Importance", "GroupMagnitudeImportance", "GroupTaylorImportance",
               "GroupHessianImportance", "MagnitudeImportance", "TaylorImportance",
               "HessianImportance", "BNScaleImportance", "LAMPImportance", "RandomImportance",
               "FPGMImportance", "OBDCImportance", "ActivationImportance"]


def conv_bn_conv() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 4, 3, padding=1)).eval()


def stem_group(model: nn.Module, x: torch.Tensor) -> tp.Group:
    dg = tp.DependencyGraph().build_dependency(model, x)
    return dg.get_pruning_group(model[0], tp.prune_conv_out_channels,
                                list(range(model[0].out_channels)))


def test_every_criterion_is_exported_with_torch_pruning_arguments() -> None:
    for name in TP_CRITERIA:
        assert hasattr(tp.importance, name), name
        assert getattr(tp.pruner.importance, name) is getattr(tp.importance, name)
    kwargs = {  # Torch-Pruning 1.6.1's constructor arguments
        "GroupMagnitudeImportance": dict(p=2, group_reduction="mean", normalizer="mean",
                                         bias=False, target_types=[nn.Conv2d, nn.Linear]),
        "GroupTaylorImportance": dict(group_reduction="mean", normalizer="mean",
                                      multivariable=False, bias=False),
        "GroupHessianImportance": dict(group_reduction="mean", normalizer="mean", bias=False),
        "BNScaleImportance": dict(group_reduction="mean", normalizer="mean"),
        "LAMPImportance": dict(p=2, group_reduction="mean", normalizer="lamp", bias=False),
        "FPGMImportance": dict(p=2, group_reduction="mean", normalizer="mean", bias=False),
        "OBDCImportance": dict(group_reduction="mean", normalizer="mean", bias=False,
                               target_types=[nn.Conv2d, nn.Linear], num_classes=100),
        "ActivationImportance": dict(p=2, group_reduction="mean", normalizer="mean"),
    }
    for name, kw in kwargs.items():
        getattr(tp.importance, name)(**kw)
    assert inspect.isabstract(tp.importance.Importance)


def _members(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    conv1, bn, conv2 = model[0], model[1], model[3]
    return (conv1.weight.detach().pow(2).flatten(1).sum(1), bn.weight.detach().pow(2),
            conv2.weight.detach().pow(2).transpose(0, 1).flatten(1).sum(1))


@pytest.mark.parametrize("reduction", ["sum", "mean", "max", "prod", "first", "gate", None])
def test_magnitude_reductions(reduction: str | None) -> None:
    model = conv_bn_conv()
    group = stem_group(model, torch.randn(1, 3, 8, 8))
    imp = tp.importance.MagnitudeImportance(p=2, group_reduction=reduction, normalizer=None)
    got = imp(group)
    rows = torch.stack(_members(model))  # conv1 out, bn, conv2 in: the group's order
    want = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0),
            "prod": rows.prod(0), "first": rows[0], "gate": rows[-1], None: rows}[reduction]
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)


def test_group_reduction_none_is_refused_by_a_pruner_with_a_clear_message() -> None:
    model = conv_bn_conv()
    imp = tp.importance.MagnitudeImportance(group_reduction=None)
    pruner = tp.pruner.BasePruner(model, torch.randn(1, 3, 8, 8), imp, pruning_ratio=0.5)
    with pytest.raises(ValueError, match="group_reduction=None keeps one row per member"):
        pruner.step()


@pytest.mark.parametrize("normalizer", ["mean", "max", "sum", "standarization",
                                        "standardization", "gaussian", "sentinel_0.5",
                                        "sentinel_0", "lamp", "callable", None])
def test_magnitude_normalizers(normalizer: str | None) -> None:
    model = conv_bn_conv()
    group = stem_group(model, torch.randn(1, 3, 8, 8))
    raw = torch.stack(_members(model)).mean(0)
    how = (lambda v: v / 7.0) if normalizer == "callable" else normalizer
    got = tp.importance.MagnitudeImportance(normalizer=how)(group)
    s = raw.sort().values
    want = {
        "mean": raw / raw.mean(), "max": raw / raw.max(), "sum": raw / raw.sum(),
        "standarization": (raw - raw.min()) / (raw.max() - raw.min() + 1e-8),
        "standardization": (raw - raw.min()) / (raw.max() - raw.min() + 1e-8),
        "gaussian": (raw - raw.mean()) / (raw.std() + 1e-8),
        "sentinel_0.5": raw / (s[3] + 1e-8), "sentinel_0": raw / (s[0] + 1e-8),
        "lamp": torch.stack([r / raw[raw >= r].sum() for r in raw]),
        "callable": raw / 7.0, None: raw,
    }[normalizer]
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)


def test_unknown_reduction_and_normalizer_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="group_reduction"):
        tp.importance.MagnitudeImportance(group_reduction="median")
    with pytest.raises(ValueError, match="normalizer"):
        tp.importance.MagnitudeImportance(normalizer="sentinel_2")


def test_bn_scale_lamp_random() -> None:
    model = conv_bn_conv()
    group = stem_group(model, torch.randn(1, 3, 8, 8))
    torch.testing.assert_close(tp.importance.BNScaleImportance(normalizer=None)(group),
                               model[1].weight.detach().abs())
    lamp = tp.importance.LAMPImportance()(group)
    assert lamp.max() == pytest.approx(1.0) and (lamp > 0).all()
    with pytest.raises(ValueError):
        tp.importance.LAMPImportance(normalizer="mean")
    r = tp.importance.RandomImportance()(group)
    assert r.shape == (6,) and ((r >= 0) & (r < 1)).all()


def test_fpgm_is_the_sum_of_distances_between_powered_filters() -> None:
    model = conv_bn_conv()
    group = stem_group(model, torch.randn(1, 3, 8, 8))
    got = tp.importance.FPGMImportance(p=2, group_reduction="first", normalizer=None)(group)
    rows = model[0].weight.detach().flatten(1).abs().pow(2)
    want = torch.cdist(rows[None], rows[None])[0].sum(0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    both = tp.importance.FPGMImportance(normalizer=None)(group)  # conv1 out + conv2 in
    cols = model[3].weight.detach().transpose(0, 1).flatten(1).abs().pow(2)
    torch.testing.assert_close(both, (want + torch.cdist(cols[None], cols[None])[0].sum(0)) / 2,
                               rtol=1e-5, atol=1e-6)


def test_fpgm_prunes_the_filter_the_others_represent() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 5, 1, bias=False), nn.ReLU(), nn.Conv2d(5, 2, 1)).eval()
    with torch.no_grad():  # [0.5, 0.5] is the geometric median of the five filters
        w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0], [0.9, 0.1]])
        model[0].weight.copy_(w[:, :, None, None])
    pruner = tp.pruner.BasePruner(model, torch.randn(1, 2, 3, 3),
                                  tp.importance.FPGMImportance(p=1, group_reduction="first"),
                                  pruning_ratio=0.2)
    assert pruner.plan_step()[0].idxs == [2]
    pruner.step()
    kept = model[0].weight.detach()[:, :, 0, 0]
    assert not any(torch.allclose(row, torch.tensor([0.5, 0.5])) for row in kept)


def test_taylor_follows_torch_pruning_docstring() -> None:
    model = conv_bn_conv()
    inputs = torch.randn(4, 3, 8, 8)
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs[:1])
    loss = model(inputs).pow(2).mean()
    loss.backward()  # compute gradients
    group = DG.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=[2, 5])
    scorer = tp.importance.GroupTaylorImportance(group_reduction="first", normalizer=None)
    imp_score = scorer(group)
    w, g = model[0].weight, model[0].weight.grad
    torch.testing.assert_close(imp_score, (w * g).abs().flatten(1).sum(1)[[2, 5]].detach())
    multi = tp.importance.TaylorImportance(group_reduction="first", normalizer=None,
                                           multivariable=True)(group)
    torch.testing.assert_close(multi, (w * g).flatten(1).sum(1).abs()[[2, 5]].detach())


def test_hessian_follows_torch_pruning_docstring() -> None:
    model = conv_bn_conv()
    inputs = torch.randn(3, 3, 8, 8)
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs[:1])
    scorer = tp.importance.GroupHessianImportance(group_reduction="first", normalizer=None)
    scorer.zero_grad()
    loss = model(inputs).pow(2).flatten(1).mean(1)  # per-sample loss
    squares = torch.zeros_like(model[0].weight)
    for sample in loss:
        model.zero_grad()
        sample.backward(retain_graph=True)
        scorer.accumulate_grad(model)
        squares += model[0].weight.grad.pow(2)
    group = DG.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=[0, 1, 2])
    got = scorer(group)
    want = (model[0].weight.detach().pow(2) * squares / 3).flatten(1).sum(1)[:3]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_activation_importance_context_and_scores() -> None:
    model = conv_bn_conv()
    with torch.no_grad():  # channel 3 of the stem is dead after the ReLU
        model[1].weight[3] = 0.0
        model[1].bias[3] = -1.0
    data = [torch.randn(2, 3, 8, 8) for _ in range(3)]
    imp = tp.importance.ActivationImportance(group_reduction="first", normalizer=None)
    hooks_before = sum(len(m._forward_pre_hooks) for m in model.modules())
    with imp.compute_importance(model):
        for xb in data:
            model(xb)
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == hooks_before
    group = stem_group(model, data[0][:1])
    acts = torch.cat([model[:3](xb) for xb in data]).detach()
    want = acts.abs().mean((0, 2, 3))  # mean |input of conv2| per channel
    torch.testing.assert_close(imp(group), want.to(torch.float32), rtol=1e-5, atol=1e-7)
    assert imp(group)[3] == 0

    pruner = tp.pruner.BasePruner(model, data[0][:1], imp, pruning_ratio=0.2)
    planned = pruner.plan_step()
    assert planned[0].idxs == [3]  # the dead channel goes first
    pruner.step()
    assert model[0].out_channels == 5
    with pytest.raises(ValueError, match="collect them again"):
        imp(stem_group(model, data[0][:1]))
    with pytest.raises(ValueError, match="compute_importance"):
        tp.importance.ActivationImportance()(stem_group(model, data[0][:1]))


def _per_sample_fisher(model: nn.Module, layer: nn.Module, xb: torch.Tensor,
                       yb: torch.Tensor) -> torch.Tensor:
    """sum over samples of (B * dLoss_mean / dW from that sample alone)^2, by autograd."""
    total = torch.zeros_like(layer.weight)
    for i in range(xb.shape[0]):
        model.zero_grad()
        (F.cross_entropy(model(xb[i:i + 1]), yb[i:i + 1]) / xb.shape[0]).backward()
        total += (layer.weight.grad * xb.shape[0]).pow(2)
    return total


@pytest.mark.parametrize("kind", ["linear", "conv", "grouped_conv"])
def test_obdc_fisher_equals_per_sample_autograd(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "linear":
        model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
        xb = torch.randn(4, 5)
    else:
        groups = 2 if kind == "grouped_conv" else 1
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.ReLU(),
                              nn.Conv2d(4, 6, 3, padding=1, groups=groups), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
        xb = torch.randn(4, 2, 6, 6)
    yb = torch.randint(0, 3, (4,))
    imp = tp.importance.OBDCImportance(group_reduction="first", normalizer=None, num_classes=3)
    pruner = tp.pruner.BasePruner(model, xb[:1], imp, pruning_ratio=0.5,
                                  ignored_layers=[model[-1]])
    imp._prepare_model(model, pruner)
    model.zero_grad()
    F.cross_entropy(model(xb), yb).backward()
    imp.step()
    layer = model[0] if kind == "linear" else model[2]
    want = _per_sample_fisher(model, layer, xb, yb).reshape(layer.weight.shape[0], -1)
    torch.testing.assert_close(imp.Fisher[layer], want, rtol=1e-4, atol=1e-7)
    dg = pruner.DG
    group = dg.get_pruning_group(layer, dg.get_pruner_of_module(layer).prune_out_channels,
                                 list(range(layer.weight.shape[0])))
    score = (layer.weight.detach().reshape(len(want), -1).pow(2) * (want + 1e-10)).sum(1)
    if kind == "grouped_conv":  # out channels c and c + 3 are one unit, scored at c
        score = torch.cat([score[:3] + score[3:], torch.zeros(3)])
    torch.testing.assert_close(imp(group), score, rtol=1e-4, atol=1e-7)
    # the pruner cuts the Fisher with the weights; scores stay aligned after pruning
    pruner.step()
    assert imp.Fisher[layer].shape == layer.weight.reshape(layer.weight.shape[0], -1).shape
    if kind == "linear":
        assert imp.Fisher[model[0]].shape == (3, 5)
    imp(dg.get_pruning_group(layer, dg.get_pruner_of_module(layer).prune_out_channels, [0]))
    imp._rm_hooks(model)
    imp._clear_buffer()
    assert imp.steps == 0 and not imp.Fisher
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_custom_importance_subclass_drives_a_pruner() -> None:
    """Torch-Pruning users write their own Importance: one score per root channel."""

    class LastChannelsFirst(tp.importance.Importance):
        def __call__(self, group: tp.Group) -> torch.Tensor:
            _, idxs = group[0]
            return -torch.arange(len(idxs), dtype=torch.float32)

    model = conv_bn_conv()
    pruner = tp.pruner.BasePruner(model, torch.randn(1, 3, 8, 8), LastChannelsFirst(),
                                  pruning_ratio=0.5)
    assert pruner.plan_step()[0].idxs == [3, 4, 5]
