"""Guess example inputs for a model that came without any (e.g. a pickled module).

Candidates come first from the class name, for torchvision families whose
input is not a plain 224x224 image, then from the first weighted layer (its
input channels / features), which covers most hand-written CNNs and MLPs.
With ``verify`` the first candidate that survives a forward pass wins, so a
28x28 digits CNN is not handed a 224x224 image its classifier cannot take.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .input_spec import InputSpec, call_with

_DETECTION = {
    "FasterRCNN",
    "MaskRCNN",
    "KeypointRCNN",
    "RetinaNet",
    "FCOS",
    "SSD",
    "GeneralizedRCNN",
}
_VIDEO = {"VideoResNet", "S3D", "MViT", "SwinTransformer3d"}
_SEGMENTATION = {"FCN", "DeepLabV3", "LRASPP"}
_IMAGE_SIDES = (224, 32, 28, 64, 96, 128, 299)


def guess_input_spec(model: nn.Module, *, verify: bool = True) -> InputSpec | None:
    """Best-effort input spec for ``model``; None if nothing sensible is known."""
    candidates = _candidates(model)
    if not verify:
        return candidates[0] if candidates else None
    for spec in candidates:
        if _runs(model, spec):
            return spec
    return None


def guess_example_inputs(model: nn.Module, seed: int = 0) -> Any | None:
    """Example inputs (tensor / tuple / dict) for ``model``, or None if unknown."""
    spec = guess_input_spec(model)
    return None if spec is None else spec.make(seed=seed)


def _runs(model: nn.Module, spec: InputSpec) -> bool:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            call_with(model, spec.make())
        return True
    except Exception:
        return False
    finally:
        model.train(was_training)


def _candidates(model: nn.Module) -> list[InputSpec]:
    cls = type(model).__name__
    if cls in {"Inception3", "QuantizableInception3"}:
        return [InputSpec.parse("1,3,299,299")]
    if cls == "RAFT":
        return [InputSpec.parse("1,3,224,224;1,3,224,224")]
    if cls in _DETECTION:
        return [InputSpec.parse("1,3,320,320")]
    if cls in _SEGMENTATION:
        return [InputSpec.parse("1,3,224,224")]
    if cls in _VIDEO:
        side = 112 if cls == "VideoResNet" else 224
        return [InputSpec.parse(f"1,3,16,{side},{side}")]
    image_size = getattr(model, "image_size", None)  # torchvision ViT
    if cls == "VisionTransformer" and isinstance(image_size, int):
        return [InputSpec.parse(f"1,3,{image_size},{image_size}")]
    return _from_first_layer(model)


def _from_first_layer(model: nn.Module) -> list[InputSpec]:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return [InputSpec.parse(f"1,{module.in_channels},{s},{s}") for s in _IMAGE_SIDES]
        if isinstance(module, nn.Conv1d):
            return [InputSpec.parse(f"1,{module.in_channels},{n}") for n in (128, 32, 1024)]
        if isinstance(module, nn.Conv3d):
            return [InputSpec.parse(f"1,{module.in_channels},16,{s},{s}") for s in (112, 224, 32)]
        if isinstance(module, nn.Linear):
            return [InputSpec.parse(f"1,{module.in_features}")]
        if isinstance(module, nn.Embedding):
            return [InputSpec.parse("1,16:int64")]
        if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            lead = "1,16" if module.batch_first else "16,1"
            return [InputSpec.parse(f"{lead},{module.input_size}")]
    return []
