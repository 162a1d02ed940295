"""Sensitivity scan by isomorphic class: fewer units, class curves stand for their members."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.plan import PruningPlan
from engine.plan.planner import Target, plan_for_target
from engine.plan.scan import (
    ScanPreviewer,
    ScanSettings,
    scan_units,
    sensitivity_scan,
    take_batches,
)
from engine.pruner.scopes import signature

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Block(nn.Module):
    """A ResNet basic block: conv-bn-relu-conv-bn plus the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8), Block(8), Block(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = TinyResNet().eval()
    ex = torch.zeros(1, 1, 8, 8)
    return model, ex, ScanPreviewer(model, ex)


@pytest.fixture(scope="module")
def digits(digit_folders):
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    tf = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    ds = ImageFolder(str(digit_folders.train), transform=tf,
                     loader=lambda p: Image.open(p).convert("L"))
    return take_batches(torch.utils.data.DataLoader(ds, batch_size=64), 128)


def test_isomorphic_units_are_the_pruners_signature_classes(net):
    _, _, pv = net
    groups = scan_units(pv, PruningPlan(), "groups")
    classes = scan_units(pv, PruningPlan(), "isomorphic")
    assert len(classes) < len(groups)
    roots = dict(pv.group_roots(PruningPlan()))
    members = [u.layers for u in classes]
    # a partition of the groups, each class one signature, different classes different ones
    assert sorted(r for m in members for r in m) == sorted(u.name for u in groups)
    sigs = [{signature(roots[r]) for r in m} for m in members]
    assert all(len(s) == 1 for s in sigs)
    assert len({next(iter(s)) for s in sigs}) == len(classes)
    # the three blocks' inner convs share one class
    assert any({"blocks.0.conv1", "blocks.1.conv1", "blocks.2.conv1"} <= set(m)
               for m in members)
    with pytest.raises(ValueError, match="choose one of"):
        scan_units(pv, PruningPlan(), "layers")


def test_class_points_are_exact_and_members_get_the_curve(net, digits, tmp_path):
    model, ex, pv = net
    settings = ScanSettings(ratios=(0.25, 0.5), max_samples=128, units="isomorphic")
    scan = sensitivity_scan(model, ex, digits, PruningPlan(), previewer=pv,
                            settings=settings, cache_dir=tmp_path)
    assert scan.units == "isomorphic"
    units = {u.name: u for u in scan_units(pv, PruningPlan(), "isomorphic")}
    shared = [c for c in scan.curves if len(c.layers) > 1]
    assert shared and all(c.kind == "class" for c in scan.curves)
    for curve in scan.curves:
        for point in curve.points:
            plan = units[curve.name].plan_at(PruningPlan(), point.ratio)
            assert set(plan.group_ratios) == set(curve.layers)
            prev = pv.preview(plan)
            assert point.macs == prev.macs_after and point.params == prev.params_after
    per_group = scan.group_curves()
    groups = {u.name for u in scan_units(pv, PruningPlan(), "groups")}
    assert set(per_group) == groups
    for c in shared:
        for root in c.layers:
            assert per_group[root] is c and scan.curve(root) is c
    # the key (and so the cache file) differs from a scan by groups
    by_group = sensitivity_scan(model, ex, digits, PruningPlan(), previewer=pv,
                                settings=ScanSettings(ratios=(0.25, 0.5), max_samples=128),
                                cache_dir=tmp_path)
    assert by_group.key != scan.key and by_group.units == "groups"
    assert len(by_group.curves) > len(scan.curves)
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_planner_prunes_a_class_as_one_ratio(net, digits):
    model, ex, pv = net
    scan = sensitivity_scan(model, ex, digits, PruningPlan(), previewer=pv, cache_dir="",
                            settings=ScanSettings(ratios=(0.25, 0.5, 0.75), max_samples=128,
                                                  units="isomorphic"))
    result = plan_for_target(scan, pv, Target("macs", 0.6), max_unit_ratio=0.75)
    assert result.preview.macs_ratio <= 0.6
    assert result.preview.macs_ratio == pv.preview(result.plan).macs_ratio
    for c in scan.curves:
        ratios = {result.plan.group_ratios.get(root, 0.0) for root in c.layers}
        assert len(ratios) == 1  # members move together


def test_stop_at_chance_skips_only_after_chance(net, digits):
    model, ex, pv = net
    # a huge factor makes every unit "at chance" after its first point
    import engine.plan.scan as scan_mod

    ratios = (0.25, 0.5, 0.75)
    full = sensitivity_scan(model, ex, digits, PruningPlan(), previewer=pv, cache_dir="",
                            settings=ScanSettings(ratios=ratios, max_samples=128))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_mod, "CHANCE_FACTOR", 10.0)  # 10 / 10 classes: agreement <= 1
        cut = sensitivity_scan(model, ex, digits, PruningPlan(), previewer=pv, cache_dir="",
                               settings=ScanSettings(ratios=ratios, max_samples=128,
                                                     stop_at_chance=True))
    assert cut.key != full.key
    assert all(len(c.points) == 1 for c in cut.curves)
    assert cut.skipped_points == full.points_evaluated - cut.points_evaluated > 0
    for c in cut.curves:
        assert c.points[0] == full.curve(c.name).points[0]
