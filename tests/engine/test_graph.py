"""DependencyGraph: Torch-Pruning's API, exact index mappings, and zero-contribution oracles."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import engine as tp


def _group_map(group: tp.Group) -> dict[tuple[str, str], list[int]]:
    return {(dep.target.name, dep.handler.__name__): list(idxs) for dep, idxs in group}


# --------------------------------------------------------------- Torch-Pruning's API
def test_resnet18_api_names_and_group_contents():
    model = torchvision.models.resnet18(weights=None).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 224, 224))
    group = dg.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[2, 6, 9])
    handlers = {(dep.target.module, dep.handler) for dep, _ in group}
    assert (model.conv1, tp.prune_conv_out_channels) in handlers
    assert (model.bn1, tp.prune_batchnorm_out_channels) in handlers
    assert (model.layer1[0].conv1, tp.prune_conv_in_channels) in handlers
    assert (model.layer1[1].bn2, tp.prune_batchnorm_out_channels) in handlers  # residual stream
    for _dep, idxs in group:
        assert idxs == [2, 6, 9]
    assert group[0].dep.target.module is model.conv1
    assert group[0].root_idxs == [2, 6, 9]
    text = str(group)
    assert "prune_conv_out_channels on conv1" in text and "(Pruning Root)" in text
    assert "idxs" in group.details()
    assert dg.get_out_channels(model.conv1) == 64
    assert dg.get_in_channels(model.layer1[0].conv1) == 64
    group.prune()
    assert model.conv1.out_channels == 61 and model.bn1.num_features == 61
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_resnet18_groups_and_final_classifier_output_is_locked():
    model = torchvision.models.resnet18(weights=None).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 224, 224))
    groups = list(dg.get_all_groups(ignored_layers=[model.fc]))
    # 8 block-internal groups + one residual stream per stage
    assert len(groups) == 12
    roots = [g[0].dep.target.module for g in groups]
    assert model.fc not in roots
    fc_group = dg.get_pruning_group(model.fc, tp.prune_linear_out_channels, [0])
    # logits are the model's output: kept by pruners, prunable only when asked explicitly
    assert fc_group.locked and fc_group.reaches_outputs and not fc_group.fixed
    assert all(g[0].dep.target.module is not model.fc for g in dg.get_all_groups())
    assert dg.check_pruning_group(fc_group)
    with pytest.warns(UserWarning, match="changes the width of model output"):
        fc_group.prune()
    assert model.fc.out_features == 999
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 999)


def test_fixed_channels_are_refused_even_when_asked_for():
    """The input of a reshape to a fixed size cannot shrink: the group is fixed."""

    class Fixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.fc = nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).reshape(1, 4, 4).sum(0).reshape(1, 16))

    model = Fixed().eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 2, 2))
    group = dg.get_pruning_group(model.conv, tp.prune_conv_out_channels, [0])
    assert group.fixed and not dg.check_pruning_group(group)
    with pytest.raises(ValueError, match="must keep their size"):
        group.prune()
    assert model.conv.out_channels == 4


def test_check_pruning_group_refuses_to_empty_a_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 8, 8))
    all_four = dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [0, 1, 2, 3])
    assert not dg.check_pruning_group(all_four)
    three = dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [0, 1, 2])
    assert dg.check_pruning_group(three)


# ------------------------------------------------------------------- index mappings
class ConcatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 5, 1)
        self.c = nn.Conv2d(9, 6, 1)
        self.d = nn.Conv2d(6 + 9, 2, 1)

    def forward(self, x):
        ab = torch.cat([self.a(x), self.b(x)], dim=1)
        return self.d(torch.cat([self.c(ab), ab], dim=1))  # cascaded concat


def test_concat_offsets_including_cascaded_concat():
    model = ConcatNet().eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    g = _group_map(dg.get_pruning_group(model.b, tp.prune_conv_out_channels, [0, 2]))
    assert g[("b", "prune_out_channels")] == [0, 2]
    assert g[("c", "prune_in_channels")] == [4, 6]
    assert g[("d", "prune_in_channels")] == [6 + 4, 6 + 6]
    g = _group_map(dg.get_pruning_group(model.c, tp.prune_conv_out_channels, [5]))
    assert g[("d", "prune_in_channels")] == [5]


def test_concat_on_non_channel_dim_keeps_channels_coupled():
    class TokenCat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 6)
            self.b = nn.Linear(4, 6)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(torch.cat([self.a(x), self.b(x)], dim=1))  # concat tokens

    model = TokenCat().eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(2, 3, 4))
    g = _group_map(dg.get_pruning_group(model.a, tp.prune_linear_out_channels, [1]))
    assert g[("b", "prune_out_channels")] == [1]  # same channels in both halves
    assert g[("head", "prune_in_channels")] == [1]


class SplitNet(nn.Module):
    def __init__(self, sizes) -> None:
        super().__init__()
        self.sizes = sizes
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(sizes[0], 2, 1)
        self.c = nn.Conv2d(sizes[1], 2, 1)

    def forward(self, x):
        y = self.a(x)
        if self.sizes[0] == self.sizes[1]:
            x1, x2 = y.chunk(2, dim=1)  # sizes follow the input's width
        else:
            x1, x2 = torch.split(y, self.sizes, dim=1)  # fixed sizes
        return self.b(x1) + self.c(x2)


def test_equal_chunks_prune_the_same_position_in_every_piece():
    model = SplitNet([4, 4]).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    group = dg.get_pruning_group(model.a, tp.prune_conv_out_channels, [1])
    g = _group_map(group)
    assert g[("a", "prune_out_channels")] == [1, 5]
    assert g[("b", "prune_in_channels")] == [1]
    assert g[("c", "prune_in_channels")] == [1]
    assert [1, 5] in group.channel_sets()
    group.prune()
    assert model(torch.randn(1, 3, 4, 4)).shape == (1, 2, 4, 4)


def test_split_with_fixed_sizes_is_not_prunable():
    model = SplitNet([3, 5]).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    roots = [g[0].dep.target.module for g in dg.get_all_groups(ignored_layers=[model.b, model.c])]
    assert model.a not in roots


def test_flatten_into_linear_maps_each_channel_to_its_spatial_block():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    g = _group_map(dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [1, 3]))
    assert g[("2", "prune_in_channels")] == [4, 5, 6, 7, 12, 13, 14, 15]
    dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [1, 3]).prune()
    assert model[2].in_features == 8
    assert model(torch.randn(1, 3, 4, 4)).shape == (1, 5)


def test_grouped_conv_prunes_the_same_position_in_every_group():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1, groups=2), nn.Conv2d(8, 2, 1)
    ).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    g = _group_map(dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [1]))
    assert g[("0", "prune_out_channels")] == [1, 5]
    assert g[("1", "prune_in_channels")] == [1, 5]
    g2 = dg.get_pruning_group(model[1], tp.prune_conv_out_channels, [0])
    assert _group_map(g2)[("1", "prune_out_channels")] == [0, 4]
    g2.prune()
    dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [1]).prune()
    assert (model[1].in_channels, model[1].out_channels, model[1].groups) == (6, 6, 2)
    assert model(torch.randn(1, 3, 4, 4)).shape == (1, 2, 4, 4)


def test_depthwise_conv_is_coupled_channel_by_channel():
    model = nn.Sequential(
        nn.Conv2d(3, 6, 1), nn.Conv2d(6, 6, 3, groups=6), nn.Conv2d(6, 2, 1)
    ).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 8, 8))
    group = dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [2, 4])
    g = _group_map(group)
    assert g[("1", "prune_out_channels")] == [2, 4]
    assert g[("2", "prune_in_channels")] == [2, 4]
    group.prune()
    assert model[1].groups == 4 and model(torch.randn(1, 3, 8, 8)).shape == (1, 2, 6, 6)


class ShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        y = self.a(x)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.b(y)


def test_channel_shuffle_maps_channels_to_their_shuffled_positions():
    model = ShuffleNet().eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    group = dg.get_pruning_group(model.a, tp.prune_conv_out_channels, [0])
    g = _group_map(group)
    # shuffle order is [0, 2, 1, 3]; the shuffle's 2 groups must keep equal sizes
    assert g[("a", "prune_out_channels")] == [0, 2]
    assert g[("b", "prune_in_channels")] == [0, 1]


def test_unwrapped_parameter_and_dict_inputs_and_dataclass_outputs():
    @dataclasses.dataclass
    class Out:
        logits: torch.Tensor
        hidden: torch.Tensor

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.scale = nn.Parameter(torch.ones(8))
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x, bias):
            h = self.fc1(x) * self.scale
            return Out(self.fc2(h) + bias, x)

    model = Scaled().eval()
    inputs = {"x": torch.randn(2, 4), "bias": torch.zeros(3)}
    dg = tp.DependencyGraph().build_dependency(model, inputs)
    group = dg.get_pruning_group(model.fc1, tp.prune_linear_out_channels, [0, 7])
    g = {(dep.target.name, idxs[0]) for dep, idxs in group}
    assert ("scale", 0) in g
    assert any(dep.handler == tp.prune_parameter_out_channels for dep, _ in group)
    group.prune()
    assert model.scale.shape == (6,)
    assert model(**inputs).logits.shape == (2, 3)


def test_customized_pruner_for_a_custom_layer_is_per_graph():
    class ChannelScale(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))

        def forward(self, x):
            return x * self.weight.view(1, -1, 1, 1)

    class ScalePruner(tp.BasePruningFunc):
        def prune_out_channels(self, layer, idxs):
            keep = [i for i in range(layer.weight.shape[0]) if i not in set(idxs)]
            layer.weight.data = layer.weight.data[keep]
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return layer.weight.shape[0]

        get_in_channels = get_out_channels

    model = nn.Sequential(nn.Conv2d(3, 4, 1), ChannelScale(4), nn.Conv2d(4, 2, 1)).eval()
    pruner = ScalePruner()
    dg = tp.DependencyGraph().build_dependency(
        model, torch.randn(1, 3, 4, 4), customized_pruners={ChannelScale: pruner}
    )
    group = dg.get_pruning_group(model[0], tp.prune_conv_out_channels, [1])
    assert (model[1], pruner.prune_out_channels) in {(d.target.module, d.handler) for d, _ in group}
    group.prune()
    assert model[1].weight.shape == (3,) and model(torch.randn(1, 3, 4, 4)).shape == (1, 2, 4, 4)
    # a second graph without the custom pruner does not know the layer
    other = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    assert other.get_pruner_of_module(model[1]) is None
    # register_customized_layer is the other, Torch-Pruning way to say the same
    dg3 = tp.DependencyGraph()
    dg3.register_customized_layer(ChannelScale, pruner)
    dg3.build_dependency(model, torch.randn(1, 3, 4, 4))
    g3 = dg3.get_pruning_group(model[0], tp.prune_conv_out_channels, [0])
    assert (model[1], pruner.prune_out_channels) in {(d.target.module, d.handler) for d, _ in g3}


def test_summary_is_plain_data_matching_the_graph():
    from engine.graph import summarize

    model = torchvision.models.resnet18(weights=None).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 224, 224))
    summary = summarize(dg, ignored_layers=[model.fc])
    assert len(summary.nodes) == len(dg.nodes)
    assert len(summary.groups) == 12
    conv1 = next(n for n in summary.nodes if n.name == "conv1")
    assert (conv1.kind, conv1.in_channels, conv1.out_channels, conv1.params) == (
        "Conv2d",
        3,
        64,
        64 * 3 * 7 * 7,
    )
    names = {m.node for m in summary.groups[0].members}
    assert {"conv1", "bn1", "layer1.0.conv1"} <= names
    import json

    assert json.loads(json.dumps(summary.to_dict()))["groups"][0]["root"] == "conv1"


def test_pruning_history_replays_on_a_fresh_model():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    dg = tp.DependencyGraph().build_dependency(model, x)
    for i, g in enumerate(dg.get_all_groups(ignored_layers=[model.fc])):
        if i % 3 == 0:
            g.prune(idxs=list(range(0, len(g[0].idxs), 4)))
    history = dg.pruning_history()
    assert history and all(isinstance(name, str) for name, _, _ in history)
    fresh = torchvision.models.resnet18(weights=None).eval()
    tp.DependencyGraph().build_dependency(fresh, x).load_pruning_history(history)
    fresh.load_state_dict(model.state_dict())
    assert torch.allclose(fresh(x), model(x), atol=1e-6)


# ------------------------------------------------------- zero-contribution oracle
def _zero_consumers_and_prune(model: nn.Module, x: torch.Tensor, per_group: int = 2) -> int:
    """Zero every consumer's input weights for some channels, prune them, count groups."""
    dg = tp.DependencyGraph().build_dependency(model, x)
    plans = []
    for g in dg.get_all_groups():
        sets = g.channel_sets()
        if len(sets) <= per_group:
            continue
        chosen = [i for s in sets[1 : 1 + per_group] for i in s]
        plans.append((g, chosen))
    with torch.no_grad():
        for g, chosen in plans:
            sub = dg.get_pruning_group(g[0].dep.target.module, g[0].dep.handler, chosen)
            for dep, idxs in sub:
                layer = dep.target.module
                if dep.handler in (tp.prune_conv_in_channels, tp.prune_linear_in_channels):
                    if isinstance(layer, nn.modules.conv._ConvNd) and layer.groups > 1:
                        continue  # grouped consumers: zeroed through their own root below
                    layer.weight[:, idxs] = 0
    before = model(x)
    for g, chosen in plans:
        g.prune(idxs=chosen)
    after = model(x)
    assert after.shape == before.shape
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    return len(plans)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "mobilenet_v2"])
def test_zero_contribution_oracle_on_torchvision(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    assert _zero_consumers_and_prune(model, torch.randn(1, 3, 64, 64)) > 5


def test_zero_contribution_oracle_on_concat_split_net():
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.a = nn.Conv2d(8, 6, 1)
            self.b = nn.Conv2d(8, 6, 1)
            self.mix = nn.Conv2d(12, 8, 1)
            self.head = nn.Linear(8 * 4 * 4, 3)

        def forward(self, x):
            s = F.relu(self.stem(x))
            y = torch.cat([self.a(s), self.b(s)], 1)
            p, q = y.chunk(2, dim=1)
            y = torch.cat([q, p], 1)
            return self.head(torch.flatten(F.relu(self.mix(y)) + s, 1))

    assert _zero_consumers_and_prune(Net().eval(), torch.randn(2, 3, 4, 4), per_group=1) >= 2


# ------------------------------------------------------------------- model sweep
FAST_MODELS = [
    "resnet18",
    "resnext50_32x4d",
    "densenet121",
    "mobilenet_v3_small",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "googlenet",
    "efficientnet_b0",
    "regnet_x_400mf",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
]


@pytest.mark.parametrize("name", FAST_MODELS)
def test_every_group_of_torchvision_model_prunes_by_half_and_runs(name):
    from benchmarks.prunability import check_model

    result = check_model(name, device="meta")
    assert result.ok, result.reason
    assert result.groups > 0 and result.params_after < result.params_before


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2_x0_5", "mobilenet_v3_small"])
def test_pruned_model_runs_for_real_on_cpu(name):
    from benchmarks.prunability import check_model

    result = check_model(name, device="cpu")
    assert result.ok, result.reason


@pytest.mark.slow
def test_every_torchvision_classification_model_prunes():
    from benchmarks.prunability import check_model, classification_models

    failures = [r for r in map(check_model, classification_models()) if not r.ok]
    assert not failures, [(r.model, r.reason) for r in failures]


def test_dispatch_tensors_finds_what_tree_flatten_finds():
    from torch.utils._pytree import tree_flatten

    from engine.graph.flatten import dispatch_tensors

    a, b, c = torch.zeros(1), torch.ones(2), torch.zeros(3)
    ret = torch.max(torch.randn(2, 3), dim=1)  # a return struct (tuple subclass)
    for obj in [((a, [b, None, 3]), {"out": c, "alpha": 2}), ret, [], a, (torch.Size([2]), b)]:
        want = [x for x in tree_flatten(obj)[0] if isinstance(x, torch.Tensor)]
        got = dispatch_tensors(obj)
        assert len(got) == len(want) and all(g is w for g, w in zip(got, want, strict=True))
