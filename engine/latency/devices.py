"""Which device to time on, and the channel multiple (round_to) it prefers."""

from __future__ import annotations

import torch

from ..utils.hardware import preferred_channel_multiple

DEVICES = ("cpu", "cuda", "ort")


def check_device(device: str) -> str:
    """The device name, or ValueError saying why it cannot be used here."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available on this machine")
    if device == "ort":  # ONNX Runtime's CPU execution provider (engine.latency.runners)
        from .runners import require_onnxruntime

        require_onnxruntime()
    return device


def suggested_round_to(device: str) -> int:
    """CPU: the vector width oneDNN blocks channels by (engine.utils.hardware); CUDA: 8
    (tensor-core tiles for fp16/tf32 GEMMs want multiples of 8; 64 only pays for large
    GEMMs, which a user can still choose)."""
    if device == "cuda":
        return 8
    return preferred_channel_multiple()
