"""Torch-Pruning's small `tp.utils` helpers: parameter count, flattening nested outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["count_params", "flatten_as_list"]


def count_params(module: nn.Module) -> int:
    """Elements of `module.parameters()` (shared parameters once, as PyTorch lists them)."""
    return sum(p.numel() for p in module.parameters())


def flatten_as_list(obj: Any) -> Any:
    """Tensors of nested lists/tuples/dicts as one flat list; any other object as is."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for sub in obj for t in _as_list(flatten_as_list(sub))]
    if isinstance(obj, dict):
        return [t for sub in obj.values() for t in _as_list(flatten_as_list(sub))]
    return obj


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]
