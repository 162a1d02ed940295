"""Tensor files: `.pt` (weights_only), `.npz` and `.npy`, holding `x` and optionally `y`.

Samples are used as stored (no preprocessing: whoever wrote the file already did it), so
their per-sample shape must be the model's. `.npy` files are memory-mapped and `.pt`
files loaded with `mmap=True`, so a large file is paged in as the loader reads it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .batch import Batch
from .errors import DataError

TENSOR_SUFFIXES = (".pt", ".pth", ".npz", ".npy")


class TensorPairs(Dataset):
    """Sample i is (x[i], y[i]) or (x[i], -1) without labels; x/y are tensors or arrays."""

    def __init__(self, x: Any, y: Any | None) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.x[index]
        x = torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x
        label = -1 if self.y is None else int(self.y[index])
        return x, label

    @property
    def targets(self) -> list[int] | None:
        return None if self.y is None else [int(v) for v in self.y]


def collate_tensors(items: list[tuple[torch.Tensor, int]]) -> Batch:
    x = torch.stack([t for t, _ in items])
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return Batch(x, None if bool((labels == -1).all()) else labels)


def read_tensor_file(path: Path) -> tuple[Any, Any | None]:
    """(x, y or None) from a tensor file; DataError names what is wrong with it."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, mmap_mode="r", allow_pickle=False)
            return x, None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.keys())
                if "x" not in keys:
                    raise DataError(f"{path} holds {', '.join(keys) or 'no arrays'}; it needs an "
                                    "array named x (and optionally y)")
                return data["x"], data["y"] if "y" in keys else None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # not a zip checkpoint (legacy format): mmap unsupported
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise DataError(f"{path} is not a readable {suffix} tensor file: {text}") from None
    except Exception as exc:  # noqa: BLE001 - weights_only refusal (UnpicklingError)
        text = " ".join(str(exc).split())[:160]
        raise DataError(f"{path} holds more than tensors (weights_only load refused: {text}); "
                        "save a dict {'x': tensor, 'y': tensor} with torch.save") from None
    if isinstance(obj, torch.Tensor):
        return obj, None
    if isinstance(obj, Mapping):
        if "x" not in obj:
            raise DataError(f"{path} holds keys {', '.join(map(str, obj))[:120]}; it needs "
                            "'x' (and optionally 'y')")
        return obj["x"], obj.get("y")
    if isinstance(obj, (tuple, list)) and len(obj) in (1, 2):
        return obj[0], obj[1] if len(obj) == 2 else None
    raise DataError(f"{path} holds a {type(obj).__name__}; save a dict {{'x': ..., 'y': ...}}")


def open_tensor_file(path: Path, sample_shape: tuple[int, ...] | None) -> TensorPairs:
    """Check shapes (x: N x sample_shape, y: N integer labels) and wrap as a dataset."""
    x, y = read_tensor_file(path)
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise DataError(f"{path}: x is a {type(x).__name__}, not a tensor or array")
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"{path}: x holds no samples (shape {tuple(x.shape)})")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise DataError(f"{path}: x has shape {tuple(x.shape)}, so each sample is "
                        f"{tuple(x.shape[1:])}, but the model takes {tuple(sample_shape)} per "
                        "sample; save x as N x " + " x ".join(map(str, sample_shape)))
    if y is not None:
        if not isinstance(y, (torch.Tensor, np.ndarray)) or y.ndim != 1:
            shape = tuple(getattr(y, "shape", ()))
            raise DataError(f"{path}: y must be one integer label per sample, got shape {shape}")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: x has {x.shape[0]} samples but y has {y.shape[0]} labels")
        floating = y.is_floating_point() if isinstance(y, torch.Tensor) else y.dtype.kind == "f"
        if floating:
            raise DataError(f"{path}: y must hold integer class labels, got {y.dtype}")
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        x = x.astype(np.float32)  # models are float32; numpy defaults to float64
    elif isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        x = x.float()
    return TensorPairs(x, y)
