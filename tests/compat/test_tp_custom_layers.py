"""Customised layers the Torch-Pruning way: a `tp.pruner.BasePruningFunc` subclass,
registered through `customized_pruners=` or `DG.register_customized_layer`, including
layers (and models) with parameters their forward never uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import engine as tp


class CustomizedLayer(nn.Module):
    """x / ||x|| * scale + bias over the feature dim (Torch-Pruning's test layer shape)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.scale = nn.Parameter(torch.rand(in_dim) + 0.5)
        self.bias = nn.Parameter(torch.randn(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt()
        return torch.div(x, norm) * self.scale + self.bias


class FullyConnectedNet(nn.Module):
    def __init__(self, input_size: int = 16, num_classes: int = 4, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden)
        self.customized_layer = CustomizedLayer(hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.customized_layer(self.fc1(x)))


class MySlimPruner(tp.pruner.BasePruningFunc):
    """Written as Torch-Pruning users write it: `_prune_parameter_and_grad` and the
    in = out alias that couples the layer's input and output channels."""

    def prune_out_channels(self, layer: CustomizedLayer, idxs: list) -> nn.Module:
        keep_idxs = list(set(range(layer.in_dim)) - set(idxs))
        keep_idxs.sort()
        layer.in_dim = layer.in_dim - len(idxs)
        layer.scale = self._prune_parameter_and_grad(layer.scale, keep_idxs, 0)
        layer.bias = self._prune_parameter_and_grad(layer.bias, keep_idxs, 0)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: CustomizedLayer) -> int:
        return layer.in_dim

    def get_in_channels(self, layer: CustomizedLayer) -> int:
        return layer.in_dim


class NewParameterPruner(MySlimPruner):
    """A pruner that assigns fresh nn.Parameters, as Torch-Pruning's own helper does."""

    def prune_out_channels(self, layer: CustomizedLayer, idxs: list) -> nn.Module:
        keep = sorted(set(range(layer.in_dim)) - set(idxs))
        layer.in_dim = len(keep)
        layer.scale = nn.Parameter(layer.scale.data[keep].clone())
        layer.bias = nn.Parameter(layer.bias.data[keep].clone())
        return layer

    prune_in_channels = prune_out_channels


def _check_pruned(model: FullyConnectedNet, before: dict[str, torch.Tensor],
                  removed: list[int]) -> None:
    keep = [i for i in range(32) if i not in removed]
    assert model.fc1.out_features == 32 - len(removed) == model.customized_layer.in_dim
    assert model.fc2.in_features == 32 - len(removed)
    torch.testing.assert_close(model.customized_layer.scale.data, before["scale"][keep])
    torch.testing.assert_close(model.fc1.weight.data, before["fc1"][keep])
    torch.testing.assert_close(model.fc2.weight.data, before["fc2"][:, keep])
    assert model(torch.randn(3, 16)).shape == (3, 4)


@pytest.mark.parametrize("how", ["customized_pruners", "register_customized_layer"])
@pytest.mark.parametrize("pruner_cls", [MySlimPruner, NewParameterPruner])
def test_customized_layer_is_pruned_with_its_group(how: str, pruner_cls: type) -> None:
    torch.manual_seed(0)
    model = FullyConnectedNet().eval()
    before = {"scale": model.customized_layer.scale.data.clone(),
              "fc1": model.fc1.weight.data.clone(), "fc2": model.fc2.weight.data.clone()}
    x = torch.randn(1, 16)
    my_pruner = pruner_cls()
    DG = tp.DependencyGraph()
    if how == "customized_pruners":
        DG.build_dependency(model, example_inputs=x,
                            customized_pruners={CustomizedLayer: my_pruner})
    else:
        DG.register_customized_layer(CustomizedLayer, my_pruner)
        DG.build_dependency(model, example_inputs=x)
    group = DG.get_pruning_group(model.fc1, tp.prune_linear_out_channels, idxs=[0, 1, 6])
    members = [(dep.target.module, dep.handler) for dep, _ in group]
    assert (model.customized_layer, my_pruner.prune_out_channels) in members
    assert (model.fc2, tp.prune_linear_in_channels) in members
    assert DG.check_pruning_group(group)
    group.prune()
    _check_pruned(model, before, [0, 1, 6])


def test_customized_pruner_through_the_high_level_pruner() -> None:
    torch.manual_seed(0)
    model = FullyConnectedNet().eval()
    pruner = tp.pruner.MagnitudePruner(
        model, torch.randn(1, 16), tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.25, ignored_layers=[model.fc2],
        customized_pruners={CustomizedLayer: MySlimPruner()},
        root_module_types=[nn.Linear],
    )
    pruner.step()
    assert model.fc1.out_features == 24 == model.customized_layer.in_dim
    assert model(torch.randn(2, 16)).shape == (2, 4)


class LayerWithUnused(nn.Module):
    """A custom layer holding a parameter its forward never reads."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.gain = nn.Parameter(torch.rand(dim) + 0.5)
        self.unused = nn.Parameter(torch.arange(dim, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class UnusedAwarePruner(tp.pruner.BasePruningFunc):
    def prune_out_channels(self, layer: LayerWithUnused, idxs: list) -> nn.Module:
        keep = sorted(set(range(layer.dim)) - set(idxs))
        layer.dim = len(keep)
        layer.gain = self._prune_parameter_and_grad(layer.gain, keep, 0)
        layer.unused = self._prune_parameter_and_grad(layer.unused, keep, 0)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: LayerWithUnused) -> int:
        return layer.dim

    get_in_channels = get_out_channels


class UnusedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.mid = LayerWithUnused(16)
        self.fc2 = nn.Linear(16, 3)
        self.spare = nn.Linear(16, 16)  # a whole layer forward never calls
        self.extra = nn.Parameter(torch.randn(16))  # a model-level parameter never used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.mid(self.fc1(x))))


def test_unused_parameters_with_their_own_pruner() -> None:
    torch.manual_seed(0)
    model = UnusedNet().eval()
    x = torch.randn(2, 8)
    pruner = tp.pruner.MagnitudePruner(
        model, x, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
        ignored_layers=[model.fc2], customized_pruners={LayerWithUnused: UnusedAwarePruner()},
    )
    groups = pruner.plan_step()
    assert [g.root_name for g in groups] == ["fc1"]  # the unused layer is no root
    pruner.step()
    assert model.fc1.out_features == 8 and model.mid.dim == 8
    assert model.mid.unused.shape == (8,)  # pruned by the layer's own pruner
    kept = model.mid.unused.data.long().tolist()
    assert kept == sorted(kept) and len(set(kept)) == 8  # the same channels as `gain`
    assert model.spare.weight.shape == (16, 16) and model.extra.shape == (16,)  # untouched
    assert model(x).shape == (2, 3)


def test_base_pruning_func_helpers_keep_identity_and_grad() -> None:
    p = nn.Parameter(torch.arange(6.0))
    p.grad = torch.arange(6.0) * 10
    pruner = MySlimPruner()
    out = pruner._prune_parameter_and_grad(p, [0, 2, 5], 0)
    assert out is p and p.tolist() == [0.0, 2.0, 5.0] and p.grad.tolist() == [0.0, 20.0, 50.0]
    layer = CustomizedLayer(5)
    copy = pruner(layer, [4, 1], to_output=True, inplace=False)
    assert copy is not layer and copy.in_dim == 3 and layer.in_dim == 5
    with pytest.raises(ValueError, match="out of range"):
        pruner(layer, [7])
    assert pruner.pruning_dim == 1  # Torch-Pruning's attribute
