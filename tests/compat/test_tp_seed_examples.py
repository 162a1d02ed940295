"""The three usage examples of ../shared/seed/BasePruner.txt, run as written with
`import engine as tp` (only `pretrained=True` became `weights=None`: no downloads), each
with its printed output checked. All three at 224 x 224, as written (ResNet-50 ~4 s)."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet18, resnet50

import engine as tp


def test_example_1_basic_cnn_pruning(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    # ---- the seed's program ------------------------------------------------
    model = resnet18(weights=None).eval()
    example_inputs = torch.randn(1, 3, 224, 224)

    # Ignore the final classifier layer
    ignored_layers = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == 1000:
            ignored_layers.append(m)

    # Build the pruner
    imp = tp.importance.MagnitudeImportance(p=2)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example_inputs=example_inputs,
        importance=imp,
        pruning_ratio=0.5,
        ignored_layers=ignored_layers,
    )

    # One-shot pruning
    pruner.step()

    # Verify the pruned model
    out = model(example_inputs)
    print(out.shape)  # torch.Size([1, 1000])
    # ---- checks --------------------------------------------------------------
    assert capsys.readouterr().out == "torch.Size([1, 1000])\n"
    assert model.conv1.out_channels == 32 and model.fc.in_features == 256
    assert [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels,
            model.layer3[0].conv1.out_channels, model.layer4[0].conv1.out_channels] == [
                32, 64, 128, 256]


def test_example_2_interactive_iterative(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    # ---- the seed's program ------------------------------------------------
    model = resnet18(weights=None).eval()
    example_inputs = torch.randn(1, 3, 224, 224)

    ignored_layers = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == 1000:
            ignored_layers.append(m)

    imp = tp.importance.MagnitudeImportance(p=2)
    iterative_steps = 5
    pruner = tp.pruner.MagnitudePruner(
        model,
        example_inputs=example_inputs,
        importance=imp,
        iterative_steps=iterative_steps,
        pruning_ratio=0.5,
        ignored_layers=ignored_layers,
    )

    base_macs, base_nparams = tp.utils.count_ops_and_params(model, example_inputs)
    for i in range(iterative_steps):
        # Interactive mode: iterate over groups, inspect, then prune
        for group in pruner.step(interactive=True):
            print(group)
            group.prune()
        macs, nparams = tp.utils.count_ops_and_params(model, example_inputs)
        print(
            " Iter %d/%d, Params: %.2f M => %.2f M"  # noqa: UP031  (the seed's code)
            % (i + 1, iterative_steps, base_nparams / 1e6, nparams / 1e6)
        )
        # Fine-tune the model here between steps
        # finetune(model)
    # ---- checks --------------------------------------------------------------
    out = capsys.readouterr().out
    iters = re.findall(r" Iter (\d)/5, Params: (\d+\.\d\d) M => (\d+\.\d\d) M", out)
    assert [int(i) for i, _, _ in iters] == [1, 2, 3, 4, 5]
    assert {b for _, b, _ in iters} == {"11.69"}  # resnet18's 11,689,512 parameters
    after = [float(a) for _, _, a in iters]
    assert after == sorted(after, reverse=True) and after[0] < 11.69
    assert after[-1] == pytest.approx(nparams / 1e6, abs=0.005)
    # one step of 5 removes 10% of every group's original width; groups print as tables
    assert out.count("Pruning Group") == out.count("(Pruning Root)") >= 5 * 12
    assert "prune_conv_out_channels on conv1 => prune_batchnorm_out_channels on bn1" in out
    assert model.conv1.out_channels == 32 and model(example_inputs).shape == (1, 1000)
    assert nparams == sum(p.numel() for p in model.parameters())
    assert macs < base_macs / 3  # both channel axes of most convs halved


def _example_3(size: int) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    # ---- the seed's program ------------------------------------------------
    model = resnet50(weights=None).eval()
    example_inputs = torch.randn(1, 3, size, size)

    ignored_layers = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == 1000:
            ignored_layers.append(m)

    imp = tp.importance.MagnitudeImportance(p=1)
    pruner = tp.pruner.MagnitudePruner(
        model,
        example_inputs=example_inputs,
        importance=imp,
        pruning_ratio=0.5,
        global_pruning=True,  # rank all channels network-wide
        ignored_layers=ignored_layers,
    )
    pruner.step()
    out = model(example_inputs)
    print(out.shape)  # torch.Size([1, 1000])
    return model, str(out.shape)


def _check_example_3(model: nn.Module, printed: str) -> None:
    assert printed == "torch.Size([1, 1000])"
    groups = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 64, 64))
    widths = [g[0].dep.target.module.out_channels for g in groups.get_all_groups(
        ignored_layers=[model.fc])]
    original = [g[0].dep.target.module.out_channels for g in tp.DependencyGraph(
    ).build_dependency(resnet50(weights=None).eval(), torch.randn(1, 3, 64, 64)).get_all_groups()]
    assert sum(widths) == pytest.approx(sum(original) / 2, abs=len(original))  # global: half
    assert len(set(w / o for w, o in zip(widths, original, strict=True))) > 3  # not uniform


def test_example_3_global_pruning(capsys: pytest.CaptureFixture[str]) -> None:
    model, printed = _example_3(224)
    assert capsys.readouterr().out == "torch.Size([1, 1000])\n"
    _check_example_3(model, printed)
