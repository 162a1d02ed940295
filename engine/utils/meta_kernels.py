"""Fast answers for meta kernels that PyTorch runs as slow Python decompositions.

Tracing, the probe, and counting a weightless (meta) copy all run whole forwards on
meta tensors; norms dominate those runs unless answered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def fast_meta_call(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run `func`, answering meta kernels that are slow Python decompositions directly.

    `native_batch_norm`, `native_layer_norm` and `native_group_norm` on meta go through
    Python decompositions (5-100x a conv's meta kernel); their outputs only need the input's
    shape, so a normalised network's meta forward (tracing and every probe run) is several
    times faster this way. Shapes, dtypes and strides match the real meta kernels (tested).
    """
    if func in _FAST_NORMS and args and args[0].device.type == "meta":
        fast = _FAST_NORMS[func](args)
        if fast is not None:
            return fast
    return func(*args, **kwargs)


def _stat_dtype(x: torch.Tensor) -> torch.dtype:
    """Norm statistics of half inputs are kept in float32 (as the real kernels do)."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _fast_batch_norm(args: tuple) -> tuple | None:
    x, training, running_mean = args[0], args[5], args[3]
    if not (training or running_mean is not None):
        return None
    n, stat = x.shape[1], _stat_dtype(x)
    return torch.empty_like(x), x.new_empty((n,), dtype=stat), x.new_empty((n,), dtype=stat)


def _fast_layer_norm(args: tuple) -> tuple:
    x, normalized_shape = args[0], args[1]
    axis = x.dim() - len(normalized_shape)
    stat_shape = tuple(x.shape[:axis]) + (1,) * len(normalized_shape)
    mean, rstd = (x.new_empty(stat_shape, dtype=_stat_dtype(x)) for _ in range(2))
    return x.new_empty(x.shape), mean, rstd


def _fast_group_norm(args: tuple) -> tuple:
    x, n, group = args[0], args[3], args[6]
    return x.new_empty(x.shape), x.new_empty((n, group)), x.new_empty((n, group))


_FAST_NORMS: dict[Any, Callable[[tuple], tuple | None]] = {
    torch.ops.aten.native_batch_norm.default: _fast_batch_norm,
    torch.ops.aten.native_layer_norm.default: _fast_layer_norm,
    torch.ops.aten.native_group_norm.default: _fast_group_norm,
}


class FastMeta(TorchDispatchMode):
    """No tracing, only `fast_meta_call`: for the probe's plain meta forwards."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        return fast_meta_call(func, args, kwargs or {})
