"""engine.latency: the lookup table's predictions follow the exact pruned widths."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.latency import (
    GRID,
    LatencyTable,
    LeafEntry,
    check_device,
    measure_table,
    predict_model,
    predict_plan,
    suggested_round_to,
)
from engine.models.digits_net import load_demo
from engine.plan import PruningPlan, apply_plan
from engine.plan.scan import ScanPreviewer


@pytest.fixture(scope="module")
def demo_table():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model, ex = load_demo()
    yield model, ex, measure_table(model, ex, passes=1), ScanPreviewer(model, ex)
    torch.set_num_threads(before)


def test_plan_prediction_equals_the_pruned_models_and_falls_with_the_ratio(demo_table, tmp_path):
    model, ex, table, pv = demo_table
    assert {"stem.0", "stem.1", "block.conv1", "fc"} <= set(table.entries)
    assert predict_plan(table, pv, PruningPlan(pruning_ratio=0.0)) == pytest.approx(
        table.full_model_ms)
    last = table.full_model_ms
    for r in (0.3, 0.6, 0.9):
        plan = PruningPlan(pruning_ratio=r)
        from_plan = predict_plan(table, pv, plan)
        pruned = copy.deepcopy(model)
        apply_plan(pruned, ex, plan)
        assert from_plan == pytest.approx(predict_model(table, pruned, ex), rel=1e-9)
        assert from_plan <= last + 1e-12  # a monotone table: narrower never costs more
        last = from_plan
    path = table.save(tmp_path / "t.json")
    assert LatencyTable.load(path).to_dict() == table.to_dict()


def test_leaf_interpolation_hits_the_grid_and_devices_are_checked():
    ms = [[float(i * 10 + j + 1) for j in range(4)] for i in range(4)]
    e = LeafEntry("conv", "Conv2d", 64, 32, True, ms)
    for i, a in enumerate(GRID):
        for j, b in enumerate(GRID):
            assert e.at(a, b) == ms[i][j]
    assert e.at(0.625, 1.0) == pytest.approx((ms[1][3] + ms[2][3]) / 2)
    assert 0 < e.at(0.1, 0.1) <= ms[0][0]
    assert suggested_round_to("cpu") in (8, 16) and suggested_round_to("cuda") == 8
    assert check_device("ort") == "ort"  # onnxruntime is a dependency (runners.py)
    with pytest.raises(ValueError, match="unknown device"):
        check_device("tpu")
