"""Torch-Pruning 1.6.1's README programs, as its users copy them, against `import engine as tp`.

Where the README prints numbers that do not depend on the weights (ResNet-18 halved with
round_to=8), ours must print the same ones.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18

import engine as tp

X224 = torch.randn(1, 3, 224, 224)


def fresh_resnet18() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(weights=None).eval()


def test_depgraph_quickstart_prune_save_and_load(tmp_path, capsys) -> None:
    model = fresh_resnet18()
    # 1. Build dependency graph for a resnet18. This requires a dummy input for forwarding
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 224, 224))
    # 2. To prune the output channels of model.conv1, we need to find the corresponding group
    group = DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[2, 6, 9])
    # 3. Do the pruning
    if DG.check_pruning_group(group):  # avoid over-pruning, i.e., channels=0.
        group.prune()
    # 4. Save & Load
    model.zero_grad()  # clear gradients to avoid a large file size
    torch.save(model, tmp_path / "model.pth")
    loaded = torch.load(tmp_path / "model.pth", weights_only=False)
    print(group.details())

    assert model.conv1.out_channels == 61 and model.bn1.num_features == 61
    assert loaded.conv1.out_channels == 61
    for block in (model.layer1[0], model.layer1[1]):
        assert block.conv1.in_channels == 61 and block.bn2.num_features == 61
    assert model.layer2[0].downsample[0].in_channels == 61
    torch.testing.assert_close(loaded(X224), model(X224))
    out = capsys.readouterr().out
    assert "Pruning Group" in out and "(Pruning Root)" in out and "[2, 6, 9]" in out
    members = {dep.target.name for dep, _ in group}
    assert {"conv1", "bn1", "layer1.0.conv1", "layer1.1.bn2", "layer2.0.downsample.0"} <= members


def test_scan_all_groups_and_prune_by_idxs() -> None:
    model = fresh_resnet18()
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=X224)
    n = 0
    for group in DG.get_all_groups(ignored_layers=[model.conv1],
                                   root_module_types=[nn.Conv2d, nn.Linear]):
        idxs = [2, 4, 6]  # your pruning indices, feel free to change them
        group.prune(idxs=idxs)
        n += 1
    assert n == 11  # 12 groups of resnet18 minus the stem's (conv1 ignored)
    assert model.conv1.out_channels == 64  # ignored
    assert model.layer1[0].conv1.out_channels == 61 and model.layer4[1].conv1.out_channels == 509
    assert model.layer2[0].conv2.out_channels == 125  # the stage's residual stream
    assert model(X224).shape == (1, 1000)


def test_high_level_pruner_prints_the_readme_numbers(capsys) -> None:
    model = fresh_resnet18()
    example_inputs = torch.randn(1, 3, 224, 224)
    # 1. Importance criterion
    imp = tp.importance.GroupMagnitudeImportance(p=2)
    # 2. Initialize a pruner with the model and the importance criterion
    ignored_layers = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and m.out_features == 1000:
            ignored_layers.append(m)  # DO NOT prune the final classifier!
    pruner = tp.pruner.BasePruner(
        model, example_inputs, importance=imp, pruning_ratio=0.5,
        ignored_layers=ignored_layers, round_to=8,
    )
    # 3. Prune the model
    base_macs, base_nparams = tp.utils.count_ops_and_params(model, example_inputs)
    tp.utils.print_tool.before_pruning(model)
    pruner.step()
    tp.utils.print_tool.after_pruning(model)
    macs, nparams = tp.utils.count_ops_and_params(model, example_inputs)
    print(f"MACs: {base_macs/1e9} G -> {macs/1e9} G, #Params: {base_nparams/1e6} M -> "
          f"{nparams/1e6} M")
    out = capsys.readouterr().out
    # the README's output, to the last digit
    assert out.splitlines()[-1] == (
        "MACs: 1.822177768 G -> 0.487202536 G, #Params: 11.689512 M -> 3.05588 M")
    assert "conv1: Conv2d(3, 64, kernel_size=(7, 7)" in out
    assert re.search(r"=> Conv2d\(3, 32, kernel_size=\(7, 7\)", out)
    assert "fc: Linear(in_features=512, out_features=1000, bias=True) => " \
           "Linear(in_features=256, out_features=1000, bias=True)" in out


def test_global_isomorphic_and_scoped_ratios() -> None:
    model = fresh_resnet18()
    pruner = tp.pruner.BasePruner(
        model, X224, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
        ignored_layers=[model.fc], isomorphic=True, global_pruning=True,
    )
    pruner.step()
    assert model(X224).shape == (1, 1000)
    halves = [model.layer1[0].conv1.out_channels, model.layer1[1].conv1.out_channels]
    assert all(0 < h < 64 for h in halves)

    model = fresh_resnet18()
    pruner = tp.pruner.BasePruner(
        model, X224, tp.importance.MagnitudeImportance(), global_pruning=True,
        pruning_ratio=0.5, ignored_layers=[model.fc],
        # layer1 & layer2 share a total ratio of 0.4; layer 3 has 0.2
        pruning_ratio_dict={(model.layer1, model.layer2): 0.4, model.layer3: 0.2},
    )
    pruner.step()
    # a scope pools its groups: block-internal widths plus the stage's residual stream
    kept3 = sum(b.conv1.out_channels for b in model.layer3) + model.layer3[0].conv2.out_channels
    assert kept3 == pytest.approx(0.8 * 3 * 256, abs=2)
    inner12 = sum(b.conv1.out_channels for b in (*model.layer1, *model.layer2))
    stream12 = model.layer1[0].conv2.out_channels + model.layer2[0].conv2.out_channels
    assert inner12 + stream12 == pytest.approx(0.6 * (2 * 64 + 2 * 128 + 64 + 128), abs=3)
    assert model(X224).shape == (1, 1000)


@pytest.mark.parametrize("pruner_cls", ["BNScalePruner", "GroupNormPruner", "GrowingRegPruner"])
def test_sparse_training_loop(pruner_cls: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    data = [(torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))) for _ in range(3)]
    imp = (tp.importance.BNScaleImportance() if pruner_cls == "BNScalePruner"
           else tp.importance.GroupMagnitudeImportance(p=2))
    pruner = getattr(tp.pruner, pruner_cls)(model, data[0][0][:1], imp, pruning_ratio=0.5,
                                            ignored_layers=[model[-1]])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [m.weight.detach().clone() for m in (model[1], model[4])]
    for _epoch in range(2):
        model.train()
        pruner.update_regularizer()  # <== initialize regularizer
        for data_, target in data:
            optimizer.zero_grad()
            out = model(data_)
            loss = F.cross_entropy(out, target)
            loss.backward()  # after loss.backward()
            if pruner_cls == "GrowingRegPruner":
                pruner.update_reg()
            pruner.regularize(model)  # <== for sparse training
            optimizer.step()  # before optimizer.step()
    assert any(not torch.equal(b, m.weight) for b, m in zip(before, (model[1], model[4]),
                                                            strict=True))
    pruner.step()
    assert model[0].out_channels == 8 and model[3].out_channels == 8
    assert model(data[0][0]).shape == (8, 4)


def test_regularize_adds_the_sparsity_pull_to_gradients() -> None:
    """BNScalePruner.regularize adds reg * sign(gamma) to every BN gamma's gradient."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(2, 3, 4, 4)
    pruner = tp.pruner.BNScalePruner(model, x[:1], tp.importance.BNScaleImportance(), reg=0.1)
    model(x).sum().backward()
    grad = model[1].weight.grad.clone()
    pruner.regularize(model)
    torch.testing.assert_close(model[1].weight.grad, grad + 0.1 * model[1].weight.sign())


def test_interactive_loop_reads_and_retargets_groups() -> None:
    model = fresh_resnet18()
    example_inputs = torch.randn(1, 3, 64, 64)
    pruner = tp.pruner.BasePruner(model, example_inputs, tp.importance.MagnitudeImportance(),
                                  pruning_ratio=0.5, ignored_layers=[model.fc], iterative_steps=2)
    seen = []
    for _i in range(2):
        for group in pruner.step(interactive=True):
            dep, idxs = group[0]  # get the idxs
            target_module = dep.target.module  # get the root module
            pruning_fn = dep.handler  # get the pruning function
            seen.append((type(target_module).__name__, pruning_fn, len(idxs)))
            if target_module is model.conv1:
                group.prune(idxs=[0, 2, 6])  # change the pruning behaviour with idxs
            else:
                group.prune()
        macs, nparams = tp.utils.count_ops_and_params(model, example_inputs)
    assert {name for name, _, _ in seen} == {"Conv2d"}
    assert all(fn == tp.prune_conv_out_channels for _, fn, _ in seen)
    assert model.conv1.out_channels == 64 - 3 - 3  # retargeted in both steps
    assert model.layer1[0].conv1.out_channels == 32
    assert nparams == sum(p.numel() for p in model.parameters())


def test_soft_pruning_by_masking_through_interactive_groups() -> None:
    """The README's 'pruning by masking': zero the group's weights instead of removing them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, padding=1)).eval()
    x = torch.randn(1, 3, 8, 8)
    pruner = tp.pruner.BasePruner(model, x, tp.importance.MagnitudeImportance(),
                                  pruning_ratio=0.5)
    masked = 0
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            layer = dep.target.module
            if isinstance(layer, nn.Conv2d) and dep.handler == tp.prune_conv_out_channels:
                layer.weight.data[idxs] = 0
                layer.bias.data[idxs] = 0
                masked += len(idxs)
    assert masked == 4 and model[0].out_channels == 8  # nothing removed
    assert (model[0].weight.flatten(1).abs().sum(1) == 0).sum() == 4


def test_low_level_pruning_functions() -> None:
    model = fresh_resnet18()
    tp.prune_conv_out_channels(model.conv1, idxs=[2, 6, 9])
    # fix the broken dependencies manually
    tp.prune_batchnorm_out_channels(model.bn1, idxs=[2, 6, 9])
    for block in model.layer1:
        tp.prune_conv_in_channels(block.conv1, idxs=[2, 6, 9])
        tp.prune_conv_out_channels(block.conv2, idxs=[2, 6, 9])
        tp.prune_batchnorm_out_channels(block.bn2, idxs=[2, 6, 9])
    tp.prune_conv_in_channels(model.layer2[0].conv1, idxs=[2, 6, 9])
    tp.prune_conv_in_channels(model.layer2[0].downsample[0], idxs=[2, 6, 9])
    assert model(X224).shape == (1, 1000)
    names = [n for n in dir(tp) if n.startswith("prune_") and n.endswith("_channels")]
    readme = ["conv", "depthwise_conv", "batchnorm", "linear", "prelu", "layernorm",
              "embedding", "parameter", "multihead_attention", "groupnorm", "instancenorm"]
    for kind in readme:
        assert f"prune_{kind}_out_channels" in names and f"prune_{kind}_in_channels" in names


def test_static_attribute_forward_as_readme_advises() -> None:
    """README: a forward reading `self.shape` must use view(-1, 1, 1) to survive pruning;
    written that way, the scale parameter is found and pruned with its channels."""

    class Scale(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale.view(-1, 1, 1)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), Scale(8), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    DG = tp.DependencyGraph().build_dependency(model, x)
    DG.get_pruning_group(model[0], tp.prune_conv_out_channels, [1, 5]).prune()
    assert model[1].scale.shape == (6,) and model[3].in_channels == 6
    assert model(x).shape == (1, 2, 4, 4)
