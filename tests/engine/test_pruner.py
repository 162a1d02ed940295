"""BasePruner: published figures, scopes, schedules, plans, oracles and serialization."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torchvision

import engine as tp

X224 = torch.randn(1, 3, 224, 224)
X64 = torch.randn(1, 3, 64, 64)


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def root_widths(pruner: tp.pruner.BasePruner) -> dict[str, int]:
    groups = pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                      root_module_types=pruner.root_module_types)
    return {pruner.DG.module2name[g[0].dep.target.module]: len(g[0].idxs) for g in groups}


def magnitude_pruner(model: nn.Module, x=X224, **kw) -> tp.pruner.BasePruner:
    kw.setdefault("ignored_layers", [model.fc])
    return tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance(p=2), **kw)


def test_resnet18_published_figure():
    model = resnet18()
    macs0, params0 = tp.utils.count_ops_and_params(model, X224)
    magnitude_pruner(model, pruning_ratio=0.5).step()
    macs, params = tp.utils.count_ops_and_params(model, X224)
    assert (params0, params) == (11_689_512, 3_055_880)
    assert round(macs0 / 1e9, 3) == 1.822 and round(macs / 1e9, 3) == 0.487
    assert model(X224).shape == (1, 1000)


def test_five_steps_reach_the_one_shot_structure():
    once, steps = resnet18(), resnet18()
    magnitude_pruner(once, X64, pruning_ratio=0.5).step()
    pruner = magnitude_pruner(steps, X64, pruning_ratio=0.5, iterative_steps=5)
    widths = []
    for _ in range(5):
        pruner.step()
        widths.append(steps.conv1.out_channels)
    assert widths == [58, 51, 45, 38, 32]  # round(64 * (1 - 0.1 k))
    assert shapes(steps) == shapes(once)
    with pytest.warns(UserWarning, match="iterative steps"):
        pruner.step()
    assert shapes(steps) == shapes(once)


def test_interactive_equals_step():
    a, b = resnet18(), resnet18()
    magnitude_pruner(a, X64, pruning_ratio=0.4).step()
    pruner = magnitude_pruner(b, X64, pruning_ratio=0.4)
    n = 0
    for group in pruner.step(interactive=True):
        assert isinstance(group, tp.Group)
        group.prune()
        n += 1
    assert n == 12
    sa, sb = a.state_dict(), b.state_dict()
    assert shapes(a) == shapes(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_plan_is_plain_data_and_step_applies_it():
    model = resnet18()
    before = copy.deepcopy(model.state_dict())
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.5)
    plan = pruner.plan_step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    first = plan[0]
    assert (first.root_name, first.root_handler) == ("conv1", "prune_conv_out_channels")
    assert (first.channels_before, first.channels_after, first.n_removed) == (64, 32, 32)
    assert ("bn1", "prune_batchnorm_out_channels", 32) in [
        (m.name, m.handler, m.n_removed) for m in first.members
    ]
    pruner.step()
    history = pruner.pruning_history()
    assert [(n, list(i)) for n, _, i in history] == [(p.root_name, p.idxs) for p in plan]


def test_round_to_keeps_multiples_of_8():
    model = resnet18()
    magnitude_pruner(model, X64, pruning_ratio=0.3, round_to=8).step()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert model.conv1.out_channels == 40  # round(64 * 0.7) = 45 -> 40
    assert model(X64).shape == (1, 1000)


def test_global_pruning_is_non_uniform_and_hits_the_overall_fraction():
    model = resnet18()
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.5, global_pruning=True)
    before = root_widths(pruner)
    pruner.step()
    after = root_widths(pruner)
    assert sum(after.values()) == round(sum(before.values()) * 0.5)
    ratios = {round(after[k] / before[k], 3) for k in before}
    assert len(ratios) > 3
    assert model(X64).shape == (1, 1000)


def test_isomorphic_scopes_are_per_topology():
    model = resnet18()
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.5, global_pruning=True,
                              isomorphic=True)
    plan = pruner.plan_step()
    scopes: dict[str, list] = {}
    for p in plan:
        scopes.setdefault(p.scope, []).append(p)
    assert len(scopes) > 1 and all(s.startswith("isomorphic") for s in scopes)
    for members in scopes.values():
        sigs = {(p.channels_before, tuple(m.handler for m in p.members)) for p in members}
        assert len(sigs) == 1  # same member handlers and widths
        before = sum(p.channels_before for p in members)
        assert sum(p.channels_after for p in members) == round(before * 0.5)
    # the 64-wide basic-block groups of layer1 share a scope; layer4's 512-wide ones do not
    scope_of = {p.root_name: p.scope for p in plan}
    assert scope_of["layer1.0.conv1"] == scope_of["layer1.1.conv1"]
    assert scope_of["layer1.0.conv1"] != scope_of["layer4.0.conv1"]


def test_isomorphic_requires_global():
    with pytest.raises(ValueError, match="global_pruning"):
        magnitude_pruner(resnet18(), X64, isomorphic=True)


def test_module_key_gives_its_groups_their_own_ratio():
    model = resnet18()
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.5,
                              pruning_ratio_dict={model.layer2: 0.25})
    pruner.step()
    assert model.layer2[0].conv1.out_channels == 96  # 128 * 0.75
    assert model.layer3[0].conv1.out_channels == 128  # 256 * 0.5


def test_tuple_key_shares_one_ranking_and_ratio():
    model = resnet18()
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.5,
                              pruning_ratio_dict={(model.layer3, model.layer4): 0.6})
    before = root_widths(pruner)
    plan = pruner.plan_step()
    shared = [p for p in plan if p.scope == "user0"]
    assert {p.root_name.split(".")[0] for p in shared} == {"layer3", "layer4"}
    total = sum(before[p.root_name] for p in shared)
    assert sum(p.channels_after for p in shared) == round(total * 0.4)
    assert len({p.channels_after / p.channels_before for p in shared}) > 1  # one ranking
    pruner.step()
    assert model.layer1[0].conv1.out_channels == 32  # default ratio elsewhere


def test_max_pruning_ratio_caps_every_layer():
    model = resnet18()
    pruner = magnitude_pruner(model, X64, pruning_ratio=0.8, global_pruning=True,
                              max_pruning_ratio=0.6)
    before = root_widths(pruner)
    pruner.step()
    after = root_widths(pruner)
    assert all(after[k] >= math.ceil(before[k] * 0.4) for k in before)
    assert min(after[k] / before[k] for k in before) == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize("name", ["resnext50_32x4d", "shufflenet_v2_x0_5"])
def test_grouped_and_shuffled_models_still_run(name):
    model = getattr(torchvision.models, name)(weights=None).eval()
    params0 = sum(p.numel() for p in model.parameters())
    magnitude_pruner(model, X64, pruning_ratio=0.5).step()
    assert sum(p.numel() for p in model.parameters()) < 0.6 * params0
    assert model(X64).shape == (1, 1000)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.out_channels > 0 and m.in_channels % m.groups == 0


class DeadChannels(nn.Module):
    """conv1 -> bn -> relu -> conv2 -> relu -> pool -> fc; conv2 ignores some conv1 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def test_zero_importance_oracle():
    torch.manual_seed(1)
    model = DeadChannels().eval()
    dead = [1, 4, 5, 6]
    with torch.no_grad():
        model.conv2.weight[:, dead] = 0.0
        model.bn.running_mean.uniform_(-1, 1)
    x = torch.randn(2, 3, 8, 8)
    ref = model(x)
    imp = tp.importance.MagnitudeImportance(group_reduction="prod")
    # conv2's own out channels stay (ignored), so only conv1's group is ranked
    pruner = tp.pruner.MagnitudePruner(model, x, imp, pruning_ratio=0.5,
                                       ignored_layers=[model.conv2, model.fc])
    plan = pruner.plan_step()
    assert [(p.root_name, p.idxs) for p in plan] == [("conv1", dead)]
    pruner.step()
    assert model.conv1.out_channels == 4
    assert torch.allclose(model(x), ref, atol=1e-5)


def test_dead_channels_go_first_with_default_importance():
    torch.manual_seed(2)
    model = DeadChannels().eval()
    dead = [0, 3, 7]
    with torch.no_grad():  # fully dead: nothing produces or consumes them
        model.conv1.weight[dead] = 0.0
        model.conv1.bias[dead] = 0.0
        model.bn.weight[dead] = 0.0
        model.bn.bias[dead] = 0.0
        model.conv2.weight[:, dead] = 0.0
    x = torch.randn(2, 3, 8, 8)
    ref = model(x)
    pruner = tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance(),
                                       pruning_ratio=3 / 8, ignored_layers=[model.conv2, model.fc])
    assert [p.idxs for p in pruner.plan_step()] == [dead]
    pruner.step()
    assert torch.allclose(model(x), ref, atol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pruning_ratio=1.0), "pruning_ratio"),
        (dict(pruning_ratio=-0.1), "pruning_ratio"),
        (dict(round_to=0), "round_to"),
        (dict(iterative_steps=0), "iterative_steps"),
        (dict(max_pruning_ratio=0.0), "max_pruning_ratio"),
        (dict(pruning_ratio_dict={"conv1": 0.5}), "pruning_ratio_dict"),
        (dict(ignored_layers=["fc"]), "ignored_layers"),
        (dict(head_pruning_ratio=1.5), "head_pruning_ratio"),
        (dict(num_heads={nn.Linear(2, 2): 0}), "num_heads"),
    ],
)
def test_invalid_arguments(kw, match):
    model = DeadChannels()
    with pytest.raises(ValueError, match=match):
        tp.pruner.BasePruner(model, torch.randn(1, 3, 8, 8), tp.importance.MagnitudeImportance(),
                             **kw)


def test_no_layer_reaches_zero_channels():
    model = DeadChannels()
    x = torch.randn(1, 3, 8, 8)
    pruner = tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance(),
                                       pruning_ratio=0.99, ignored_layers=[model.fc])
    pruner.step()
    assert model.conv1.out_channels == 1 and model.conv2.out_channels == 1
    assert model(x).shape == (1, 4)


def test_state_dict_round_trip():
    model = resnet18()
    magnitude_pruner(model, X64, pruning_ratio=0.5, iterative_steps=2).step()
    sd = tp.state_dict(model)
    assert len(sd["pruning_history"]) == 12
    fresh = resnet18()
    tp.load_state_dict(fresh, state_dict=sd, example_inputs=X64)
    assert shapes(fresh) == shapes(model)
    assert torch.allclose(fresh(X64), model(X64))
    # Torch-Pruning's way: no example inputs, the saved shapes and attributes suffice
    plain = tp.load_state_dict(resnet18(), state_dict=sd)
    assert shapes(plain) == shapes(model) and plain.conv1.out_channels == 48  # step 1 of 2
    assert torch.allclose(plain(X64), model(X64))


def test_print_tool_reports_changed_layers(capsys):
    model = resnet18()
    tp.utils.print_tool.before_pruning(model)
    magnitude_pruner(model, X64, pruning_ratio=0.5).step()
    text = tp.utils.print_tool.after_pruning(model)
    assert "conv1: Conv2d(3, 64, kernel_size=(7, 7)" in text
    assert "=> Conv2d(3, 32, kernel_size=(7, 7)" in text
    assert "fc: Linear(in_features=512, out_features=1000, bias=True) => " \
           "Linear(in_features=256, out_features=1000, bias=True)" in text
    assert text in capsys.readouterr().out


# ---------------------------------------------------------------- regularizers
def _with_grads(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    return model


def test_bn_scale_pruner_adds_l1_on_gammas():
    model = _with_grads(DeadChannels())
    with torch.no_grad():
        model.bn.weight.copy_(torch.tensor([1.0, -2, 3, -4, 5, -6, 7, -8]))
    pruner = tp.pruner.BNScalePruner(model, torch.randn(1, 3, 8, 8),
                                     tp.importance.BNScaleImportance(), reg=0.1)
    pruner.regularize(model)
    assert torch.allclose(model.bn.weight.grad, 0.1 * torch.sign(model.bn.weight))
    assert torch.count_nonzero(model.conv1.weight.grad) == 0


def test_group_norm_pruner_pulls_weak_channels_hardest():
    model = _with_grads(DeadChannels())
    x = torch.randn(1, 3, 8, 8)
    imp = tp.importance.MagnitudeImportance(group_reduction="first", normalizer=None)
    pruner = tp.pruner.GroupNormPruner(model, x, imp, reg=0.01, ignored_layers=[model.fc],
                                       root_module_types=[nn.Conv2d])
    scores = imp(pruner.DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels,
                                             list(range(8)))).sqrt()
    pruner.regularize(model, alpha=16)
    rel = (scores.max() - scores) / (scores.max() - scores.min())
    expect = 0.01 * 16**rel
    got = model.conv1.weight.grad.flatten(1) / model.conv1.weight.detach().flatten(1)
    assert torch.allclose(got[:, 0], expect.float(), rtol=1e-4)
    bn = model.bn.weight.grad / model.bn.weight.detach()
    assert torch.allclose(bn, expect.float(), rtol=1e-4)


def test_growing_reg_grows_faster_for_weak_channels():
    model = _with_grads(DeadChannels())
    x = torch.randn(1, 3, 8, 8)
    imp = tp.importance.MagnitudeImportance(group_reduction="first", normalizer=None)
    pruner = tp.pruner.GrowingRegPruner(model, x, imp, reg=1e-3, delta_reg=1e-2,
                                        ignored_layers=[model.fc])
    weak = int(imp(pruner.DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels,
                                               list(range(8)))).argmin())
    pruner.update_reg()
    key = (id(model.conv1), "out")
    reg = pruner.group_reg[key]
    assert reg[weak] == pytest.approx(1e-3 + 1e-2) and reg.min() == pytest.approx(1e-3)
    pruner.regularize(model)
    w = model.conv1.weight.detach()
    assert torch.allclose(model.conv1.weight.grad[weak], (reg[weak] * w[weak]).float())
    pruner.step()
    assert pruner.group_reg[key].numel() == 4  # refreshed for the pruned structure


class SharedAdd(nn.Module):
    """e (8 wide) + cat(a, b): traced a, e, b, so e roots the group of b's channels and
    pruning a's group first shifts e's indices."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.e, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 8, 1), nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        ya, ye, yb = self.a(x), self.e(x), self.b(x)
        return self.head(torch.cat([ya, yb], 1) + ye)


@pytest.mark.parametrize("interactive", [False, True])
def test_plans_survive_index_shifts_between_groups(interactive):
    torch.manual_seed(0)
    model, x = SharedAdd(), torch.randn(1, 3, 4, 4)
    pruner = tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance())
    plan = pruner.plan_step()
    assert [p.root_name for p in plan] == ["a", "e"] and plan[1].channels_before == 4
    if interactive:
        for group in pruner.step(interactive=True):
            group.prune()
    else:
        pruner.step()
    assert (model.a.out_channels, model.e.out_channels, model.b.out_channels) == (2, 4, 2)
    # e's planned indices (4..7 before the step) were shifted by a's two removals
    assert pruner.pruning_history()[1][2] == [i - 2 for i in plan[1].idxs]
    fresh = SharedAdd()
    tp.load_state_dict(fresh, tp.state_dict(model), example_inputs=x)
    assert torch.allclose(fresh(x), model(x))
