"""Which device to time on, and the channel multiple (round_to) it prefers."""

from __future__ import annotations

import platform
from collections.abc import Callable

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


def cuda_round_to(capability: tuple[int, int] | None, dtype: str = "fp16") -> int:
    """Channel multiple for tensor-core GEMMs/convs on a GPU of this compute capability.

    Tensor cores (sm_70 and later) take fp16/bf16 (and, from sm_80, tf32, which PyTorch
    uses for float32 convolutions by default) in tiles whose K and N are multiples of 8
    elements (16 bytes); int8 tiles want multiples of 16. Below sm_70 there are no tensor
    cores and no width is preferred (1). Multiples of 64 help only large GEMMs, so they are
    left to the user. `capability` None (not known): the tensor-core choice.
    """
    if capability is not None and tuple(capability) < (7, 0):
        return 1
    return 16 if dtype == "int8" else 8


def ort_cpu_round_to(capability: Callable[[], str] = torch.backends.cpu.get_cpu_capability,
                     machine: str | None = None) -> int:
    """Channel multiple ONNX Runtime's CPU provider prefers: its MLAS kernels run convs in
    the NCHWc layout with blocks of 16 channels on AVX-512 (and on ARM64 NEON) and 8 on
    AVX2, and ORT only moves a conv to that layout when its channels are whole blocks, so
    other widths fall back to slower kernels (Torch-Pruning users saw MobileNetV2 run 3x
    slower on ORT CPU until widths were rounded to 16; benchmarks/ort_channel_multiple.py
    measures it here)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        return 16
    try:
        level = str(capability()).upper()
    except Exception:  # an unusual build: the AVX2 block
        return 8
    return 16 if level.startswith("AVX512") else 8


def suggested_round_to(device: str, *, dtype: str = "fp16") -> int:
    """The `round_to` that fits the device's kernels: CPU, the vector width oneDNN blocks
    channels by (engine.utils.hardware); ORT, MLAS's NCHWc block; CUDA, tensor-core tiles
    for the GPU's compute capability (`cuda_round_to`; `dtype` "int8" asks for 16)."""
    if device.startswith("cuda"):
        cap = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
        return cuda_round_to(cap, dtype)
    if device == "ort":
        return ort_cpu_round_to()
    return preferred_channel_multiple()
