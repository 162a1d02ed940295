"""Regression: the groups table, the preview and the pruned model agree on every ratio.

Issue #15: with layer_ratios={"layer1": 0.25} on ResNet-50 the engine pruned
layer1.0.conv1 64 -> 48 while the GUI's table showed "0.50" (default), because the
table had its own copy of the precedence rules. Now all of them use engine.plan.ratios.
"""

from __future__ import annotations

import copy

import pytest
import torch

from app.panels.groups import RATIO_COL, GroupTableModel
from app.plan_edits import group_ratios_shown
from engine import DependencyGraph
from engine.graph import summarize
from engine.io.zoo import build_zoo_model
from engine.plan import Previewer, PruningPlan, UserScope, apply_plan


@pytest.fixture(scope="module")
def resnet50():
    z = build_zoo_model("torchvision:resnet50")
    inputs = torch.randn(1, 3, 64, 64)
    dg = DependencyGraph().build_dependency(z.model, inputs)
    return z.model, inputs, summarize(dg), Previewer(z.model, inputs, dependency_graph=dg)


def _table_text(qtbot, summary, plan) -> dict[str, str]:
    model = GroupTableModel()
    model.set_groups(summary.groups)
    model.set_plan_info(group_ratios_shown(plan, summary.groups), {})
    return {
        g.root: model.data(model.index(row, RATIO_COL)) for row, g in enumerate(summary.groups)
    }


def _out_width(model, name: str) -> int:
    return dict(model.named_modules())[name].out_channels


CASES = [
    # (plan changes, layer checked, (ratio, origin) the table shows, out width (of 64))
    (dict(layer_ratios={"layer1": 0.25}), "layer1.0.conv1", (0.25, "layer layer1"), 48),
    (dict(group_ratios={"layer1.0.conv1": 0.75}), "layer1.0.conv1", (0.75, "group"), 16),
    (
        dict(
            layer_ratios={"layer1": 0.25},
            scopes=[UserScope(["layer1.1.conv1"], 0.125, "#1")],
        ),
        "layer1.1.conv1",
        (0.125, "#1"),
        56,
    ),
    (  # a two-layer scope shares one ranking: 0.25 of their 128 channels in all
        dict(scopes=[UserScope(["layer1.1.conv1", "layer1.2.conv1"], 0.25, "#1")]),
        "layer1.2.conv1",
        (0.25, "#1"),
        None,
    ),
    (  # the group ratio wins over the container's layer ratio
        dict(layer_ratios={"layer1": 0.25}, group_ratios={"layer1.0.conv2": 0.5}),
        "layer1.0.conv2",
        (0.5, "group"),
        32,
    ),
]


@pytest.mark.parametrize(("changes", "layer", "shown", "width"), CASES)
def test_table_preview_and_pruned_model_agree(qtbot, resnet50, changes, layer, shown, width):
    model, inputs, summary, previewer = resnet50
    plan = PruningPlan(pruning_ratio=0.5, **changes)
    text = _table_text(qtbot, summary, plan)[layer]  # e.g. "0.25 (layer layer1)"
    ratio, tag = shown
    assert float(text.split(" ")[0]) == pytest.approx(ratio, abs=6e-3), text  # 2 or 3 decimals
    assert text.endswith(f"({tag})"), text
    planned = {lp.name: lp.out_after for lp in previewer.preview(plan).layers}
    pruned = copy.deepcopy(model)
    apply_plan(pruned, inputs, plan)
    if width is not None:
        assert planned[layer] == width
        assert _out_width(pruned, layer) == width
    # every group root: the table's ratio is what the pruner removed (pooled for a scope)
    shown_ratios = group_ratios_shown(plan, summary.groups)
    pools: dict[str, list[str]] = {}
    for g in summary.groups:
        if g.root.startswith("layer1."):
            pools.setdefault(shown_ratios[g.root].origin, []).append(g.root)
    for origin, roots in pools.items():
        ratio = shown_ratios[roots[0]].ratio
        each = [_out_width(model, r) for r in roots]
        after = [_out_width(pruned, r) for r in roots]
        assert [planned[r] for r in roots] == after, origin
        if origin.startswith("scope"):
            assert sum(each) - sum(after) == int(sum(each) * ratio), origin
        else:
            assert after == [w - int(w * ratio) for w in each], origin
