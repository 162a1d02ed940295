"""A pruned yolov8n (from its yaml, no downloads) fine-tunes with ultralytics' own trainer on
a tiny synthetic YOLO-format dataset, and the trained checkpoint loads back with YOLO(path)
keeping the pruned widths. The stock `YOLO(path).train()` rebuilds the model from its yaml
(and would restore the full widths), so the trainer is given the pruned module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ultralytics")


def _dataset(root, n: int = 4) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            img = np.zeros((64, 64, 3), np.uint8)
            x0, y0 = (int(v) for v in rng.integers(5, 30, 2))
            img[y0:y0 + 24, x0:x0 + 24] = 255  # one white square per image: class 0
            Image.fromarray(img).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text(
                f"0 {(x0 + 12) / 64} {(y0 + 12) / 64} 0.375 0.375\n")
    names = [f"c{i}" for i in range(80)]  # the yaml's 80-class head, kept as pruned
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                                    f"names: {names}\n")
    return str(root / "data.yaml")


@pytest.mark.slow
def test_pruned_yolov8n_fine_tunes_and_reloads_with_pruned_widths(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer

    from engine.families.yolo import build_yolo, save_ultralytics
    from engine.plan import PruningPlan, apply_plan

    model = build_yolo("yolov8n.yaml")
    full = sum(p.numel() for p in model.parameters())
    apply_plan(model, torch.zeros(1, 3, 64, 64), PruningPlan(pruning_ratio=0.5))
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert sum(p.numel() for p in model.parameters()) < 0.5 * full
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    save_ultralytics(model, str(tmp_path / "pruned.pt"))

    class PrunedTrainer(DetectionTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):  # noqa: ARG002
            return model

    YOLO(str(tmp_path / "pruned.pt")).train(
        trainer=PrunedTrainer, data=_dataset(tmp_path / "data"), imgsz=64, epochs=1, workers=0,
        batch=4, device="cpu", plots=False, amp=False, project=str(tmp_path / "runs"),
        name="ft", exist_ok=True, verbose=False)
    back = YOLO(str(tmp_path / "runs" / "ft" / "weights" / "last.pt")).model
    params = dict(back.named_parameters())
    assert {n: params[n].shape for n in shapes} == shapes
    assert any(not torch.equal(params[n].float(), before[n].float()) for n in shapes)
