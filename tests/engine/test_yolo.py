"""Ultralytics YOLO (v8 and v11: detect, segment, classify) prunes with no hand-written code.

Built from ultralytics' own yaml configs, random weights, no downloads. After ratio 0.5
the model keeps under half of its parameters, returns outputs of the same shapes,
`model.predict` still runs on an image, and a checkpoint saved in ultralytics' format
reloads through `YOLO(path)` with the same outputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import engine as tp
from engine.families.yolo import build_yolo, save_ultralytics

ultralytics = pytest.importorskip("ultralytics")

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
IMG = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")


def shapes(out) -> list[tuple[int, ...]]:
    flat, _ = torch.utils._pytree.tree_flatten(out)
    return [tuple(t.shape) for t in flat if isinstance(t, torch.Tensor)]


def prune_half(model: torch.nn.Module) -> float:
    before = sum(p.numel() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tp.pruner.BasePruner(model, X, tp.importance.MagnitudeImportance(),
                             pruning_ratio=0.5).step()
    return sum(p.numel() for p in model.parameters()) / before


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml",
                                 "yolov8n-cls.yaml"])
def test_yolo_prunes_and_keeps_output_shapes(cfg):
    torch.manual_seed(0)
    model = build_yolo(cfg)
    with torch.no_grad():
        ref = shapes(model(X))
    kept = prune_half(model)
    assert kept <= 0.5
    with torch.no_grad():
        assert shapes(model(X)) == ref
    head = model.model[-1]
    if hasattr(head, "nc") and hasattr(head, "cv3"):  # Detect / Segment: classes stay
        assert all(seq[-1].out_channels == head.nc for seq in head.cv3)


def test_pruned_yolo_predicts_and_reloads_in_ultralytics_format(tmp_path):
    torch.manual_seed(0)
    model = build_yolo("yolov8n.yaml")
    prune_half(model)
    path = tmp_path / "pruned.pt"
    save_ultralytics(model, str(path))
    yolo = ultralytics.YOLO(str(path))
    params = sum(p.numel() for p in yolo.model.parameters())
    assert params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(yolo.model.eval()(X)[0], model(X)[0], atol=1e-5, rtol=0)
    results = yolo.predict(IMG, imgsz=64, verbose=False)
    assert len(results) == 1 and results[0].boxes is not None


def test_build_refuses_weight_names():
    with pytest.raises(ValueError, match="yaml"):
        build_yolo("yolov8n.pt")


def test_zoo_spec_builds_without_weights():
    from engine.io.errors import ModelLoadError
    from engine.io.zoo import build_zoo_model, is_zoo_spec

    assert is_zoo_spec("ultralytics:yolov8n.yaml")
    got = build_zoo_model("ultralytics:yolov8n.yaml")
    assert type(got.model).__name__ == "DetectionModel" and "random weights" in got.description
    with pytest.raises(ModelLoadError, match="yaml"):
        build_zoo_model("ultralytics:yolov8n.pt")
