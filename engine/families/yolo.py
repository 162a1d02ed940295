"""Ultralytics YOLO: build from the package's own yaml (no weights, no download), save back.

A YOLO model is a plain nn.Module tree (`DetectionModel`, `SegmentationModel`,
`ClassificationModel`) whose Detect/Segment heads concatenate their box, class and mask
channels into the model output: the dependency graph's output lock keeps those widths,
and C2f / C3k2 / SPPF (split, cat, maxpool) are traced like any other ops, so they prune
with no hand-written code. `save_ultralytics` writes the checkpoint layout that
`ultralytics.YOLO(path)` reads, so the pruned model goes back to ultralytics' own
predictor, exporter and trainer (the natural way to fine-tune it:
`YOLO(path).train(data=..., epochs=...)`). ultralytics is imported lazily: it is the
optional `yolo` extra.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from torch import nn

__all__ = ["build_yolo", "is_yolo_model", "save_ultralytics"]


def build_yolo(cfg: str) -> nn.Module:
    """The nn.Module of `ultralytics.YOLO(cfg)` for a yaml config name (e.g. 'yolov8n.yaml',
    'yolo11n-seg.yaml'): random weights, eval mode. Refuses anything but a .yaml name, so
    nothing is ever downloaded."""
    if not cfg.endswith((".yaml", ".yml")) or "/" in cfg or "\\" in cfg:
        raise ValueError(f"ultralytics:{cfg}: give a yaml config name such as yolov8n.yaml "
                         "(weights files are opened as files, never downloaded)")
    try:
        from ultralytics import YOLO
    except ImportError as exc:  # the optional `yolo` extra
        raise ImportError("ultralytics is not installed; pip install ultralytics") from exc
    model = YOLO(cfg, verbose=False).model
    return model.eval()


def is_yolo_model(model: nn.Module) -> bool:
    return type(model).__module__.startswith("ultralytics.") and hasattr(model, "yaml")


def save_ultralytics(model: nn.Module, path: str, extra: dict[str, Any] | None = None) -> None:
    """Write `model` as an ultralytics checkpoint (`{"model": ..., "train_args": ...}`),
    atomically, so that `ultralytics.YOLO(path)` loads the pruned model."""
    ckpt = {"model": model, "ema": None, "updates": None, "optimizer": None, "epoch": -1,
            "train_args": dict(getattr(model, "args", None) or {}), "date": None,
            **(extra or {})}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
