"""A pruned YOLO exports to ONNX and ONNX Runtime computes what PyTorch computes.

ultralytics' random init lets activations fade through the network (the neck's features
end near 1e-6 to 1e-11 and the boxes are the same for every image), so a parity check on it
could not see a wrong channel order. The weights are re-drawn at unit gain first, so the
outputs depend on the image, and ONNX Runtime is run on a fresh batch of two images, not
only on the example input the export traced.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from engine.io.onnx_export import flatten_outputs, run_onnxruntime
from engine.plan import PruningPlan
from engine.workflow import Session

pytest.importorskip("ultralytics")
pytest.importorskip("onnxruntime")


def lively(model: nn.Module) -> nn.Module:
    """Unit-gain conv weights and non-trivial BN statistics (DFL's fixed conv untouched)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d) and mod.weight.requires_grad:
                mod.weight.normal_(0, (2.0 / mod.weight[0].numel()) ** 0.5, generator=g)
            elif isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
    return model.eval()


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml"])
def test_pruned_yolo_onnx_matches_pytorch_in_onnx_runtime(tmp_path, cfg):
    from engine.families.yolo import build_yolo

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = Session(lively(build_yolo(cfg)), torch.randn(1, 3, 64, 64),
                          source=f"ultralytics:{cfg}")
        result = session.prune(PruningPlan(pruning_ratio=0.5), latency=False)
        assert result.report.params_after <= 0.5 * result.report.params_before
        path = tmp_path / "pruned.onnx"
        export = result.session.export(str(path))
    assert export.ok, export.problem
    assert export.onnx.onnx_checker_ok and export.format == "onnx"

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    got = run_onnxruntime(path, images)  # a new batch size and new images
    with torch.no_grad():
        ref = [t for _, t in flatten_outputs(result.session.model(images))]
    assert len(got) == len(ref) >= 4
    for name_ref, out in zip(ref, got, strict=True):
        want = name_ref.numpy()
        assert out.shape == want.shape
        diff = float(np.abs(want - out).max())
        assert diff <= 1e-4 * max(1.0, float(np.abs(want).max()))
    features = [t for t in ref if t.dim() == 4 and t.shape[1] >= 64]  # the neck's P3-P5
    assert features
    for t in features:  # the check can see a wrong computation: images differ far above it
        assert float((t[0] - t[1]).abs().max()) > 1e-4
