"""Engine fixes found by the torchvision prunability sweep (benchmarks/prunability.py)."""

from __future__ import annotations

import torch
import torch.nn as nn

import engine as tp


class CachesOnDevice(nn.Module):
    """Rebinds a plain tensor attribute to the input's device, like AnchorGenerator."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.scale = [torch.tensor(2.0)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.scale = [s.to(x.device) for s in self.scale]
        self.seen = x.device.type
        return self.conv2(self.conv(x)) * self.scale[0]


def test_meta_trace_leaves_no_meta_tensors_in_plain_attributes():
    model = CachesOnDevice().eval()
    x = torch.randn(1, 3, 8, 8)
    dg = tp.DependencyGraph().build_dependency(model, x)
    assert model.scale[0].device.type == "cpu"
    assert model.scale[0].item() == 2.0
    assert not hasattr(model, "seen")  # attributes created during the meta run are dropped
    group = dg.get_pruning_group(model.conv, tp.prune_conv_out_channels, [0, 1, 2])
    group.prune()
    assert model.conv.out_channels == 5 and model.conv2.in_channels == 5
    assert model(x).shape == (1, 4, 8, 8)


def test_detection_model_prunes_after_meta_trace_fallback():
    """The RPN's anchors used to stay on meta after the meta trace failed on NMS."""
    from benchmarks.prunability import check_model

    r = check_model("fasterrcnn_mobilenet_v3_large_320_fpn")
    assert r.ok, r.reason
    assert r.device == "cpu" and r.groups == 33
    assert r.params_after < r.params_before
