"""Depth moves in the planner: a block removed whole is priced by its fidelity cost
(the scan's measure with the block skipped alone) per MAC its removal saves."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.data.digits import load_split
from engine.models.digits_net import ResidualBlock
from engine.plan import PlanError, PruningPlan, apply_plan
from engine.plan.depth_cost import block_costs
from engine.plan.planner import Target, plan_for_target
from engine.plan.scan import ScanPreviewer, ScanSettings, sensitivity_scan
from engine.utils import count_ops_and_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")


X = torch.zeros(1, 1, 8, 8)


class ThreeBlocks(nn.Module):
    """stem -> three residual blocks of the demo's own class -> pool -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.b1, self.b2, self.b3 = ResidualBlock(16), ResidualBlock(16), ResidualBlock(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b3(self.b2(self.b1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    m = ThreeBlocks().eval()
    for bn in m.modules():  # non-trivial BN statistics, so no block is an identity by chance
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)
    with torch.no_grad():  # b2's residual branch ends in a zero BN: relu(0 + x) == x (x >= 0)
        m.b2.bn2.weight.zero_()
        m.b2.bn2.bias.zero_()
    return m


@pytest.fixture(scope="module")
def digits() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = load_split("train")
    x, y = torch.from_numpy(x[:256]), torch.from_numpy(y[:256])
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]


def test_block_costs_zero_for_the_identity_block_only(model, digits):
    costs = block_costs(model, digits)
    assert list(costs) == ["b1", "b2", "b3"]
    assert costs["b2"].kl < 1e-10 and costs["b2"].agreement == 1.0
    assert costs["b1"].kl > 1e-6 and costs["b3"].kl > 1e-6  # a random net: small but real
    # the model is untouched: no hook left behind
    assert not model.b2._forward_hooks
    with pytest.raises(ValueError, match="'stem' is not a removable block; removable: b1, b2, b3"):
        block_costs(model, digits, ["stem"])


def test_planner_drops_the_identity_block_first_and_macs_are_exact(model, digits, tmp_path):
    base = PruningPlan(pruning_ratio=0.0)
    pv = ScanPreviewer(model, X)
    scan = sensitivity_scan(model, X, digits, base, previewer=pv,
                            settings=ScanSettings(ratios=(0.25, 0.5), max_samples=256),
                            cache_dir=str(tmp_path))
    costs = block_costs(model, digits)
    result = plan_for_target(scan, pv, Target("macs", 0.7), base=base, block_costs=costs)
    first = result.candidates[1]
    assert first.dropped == ["b2"] and first.ratios == {}  # the first move removes b2
    assert "b2" in result.plan.drop_blocks
    assert result.preview.macs_ratio <= 0.7
    pruned = copy.deepcopy(model)
    apply_plan(pruned, X, result.plan)
    assert isinstance(pruned.b2, nn.Identity)
    macs, params = count_ops_and_params(pruned, X)
    assert (result.preview.macs_after, result.preview.params_after) == (int(macs), int(params))
    # removing an identity block changes nothing the data can see
    assert result.prediction.kl == pytest.approx(
        sum(scan.curve(n).points[[p.ratio for p in scan.curve(n).points].index(r)].kl
            for n, r in result.plan.group_ratios.items()), abs=1e-9)
    # without depth moves the same target is met by width alone, and no block goes
    width_only = plan_for_target(scan, pv, Target("macs", 0.7), base=base)
    assert width_only.plan.drop_blocks == [] and width_only.preview.macs_ratio <= 0.7
    assert result.prediction.kl < width_only.prediction.kl


def test_depth_moves_alone_and_an_unreachable_target(model, digits, tmp_path):
    base = PruningPlan(pruning_ratio=0.0)
    pv = ScanPreviewer(model, X)
    scan = sensitivity_scan(model, X, digits, base, previewer=pv,
                            settings=ScanSettings(ratios=(0.25,), max_samples=128),
                            cache_dir=str(tmp_path))
    costs = block_costs(model, digits)
    # every group ignored: only blocks can move; one block's MACs is enough for 0.9
    groups_off = base.replace(ignored_layers=["stem.0", "b1", "b2", "b3", "fc"])
    with pytest.raises(PlanError):
        plan_for_target(scan, pv, Target("macs", 0.9), base=groups_off)
    only = plan_for_target(scan, pv, Target("macs", 0.9), base=base.replace(
        ignored_layers=["stem.0"]), block_costs=costs, max_unit_ratio=0.0)
    assert only.plan.drop_blocks == ["b2"] and only.plan.group_ratios == {}
    full, _ = count_ops_and_params(model, X)
    block_macs, _ = count_ops_and_params(model.b2, torch.zeros(1, 16, 8, 8))
    assert only.preview.macs_after == int(full) - int(block_macs)


def test_skipping_hook_acts_only_on_the_measuring_thread(model, digits):
    """A GUI preview thread running the same model meanwhile must see the full model."""
    import threading

    from engine.plan import depth_cost

    x = digits[0][0][:8]
    with torch.no_grad():
        full = model(x)
    seen = {}
    handle = model.b1.register_forward_hook(depth_cost._skipper(-1), with_kwargs=True)
    try:
        with torch.no_grad():
            on_other = model(x)  # this thread is not the owner: nothing skipped
        handle.remove()
        handle = model.b1.register_forward_hook(
            depth_cost._skipper(threading.get_ident()), with_kwargs=True)
        with torch.no_grad():
            seen["skipped"] = model(x)
    finally:
        handle.remove()
    assert torch.equal(on_other, full)
    assert not torch.allclose(seen["skipped"], full)
