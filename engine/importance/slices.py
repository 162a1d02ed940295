"""Which entries of a layer's parameter belong to each pruned channel.

Every criterion (magnitude, Taylor, Hessian) and every regularizer needs the
same thing: for a group member `(layer, in/out, idxs)`, the weight entries that
disappear with each index. Keeping that layout knowledge here, once, means the
criteria are one-liners over an `(n_idxs, n_entries)` matrix, and grouped or
transposed convolutions are handled identically everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_CONV = nn.modules.conv._ConvNd


def channel_rows(
    layer: nn.Module, tensor: torch.Tensor, is_out: bool, idxs: Sequence[int]
) -> torch.Tensor | None:
    """`tensor` (the layer's weight, or its grad) as one row per index in `idxs`.

    None when the layer type carries no weight for that axis.
    """
    index = index_tensor(idxs, tensor.device)
    if isinstance(layer, _CONV):
        return _conv_rows(layer, tensor, is_out, index)
    if isinstance(layer, nn.Linear):
        return tensor[index] if is_out else tensor[:, index].t()
    if hasattr(layer, "nf") and hasattr(layer, "nx") and tensor.dim() == 2:  # HF Conv1D (in, out)
        return tensor[:, index].t() if is_out else tensor[index]
    if isinstance(layer, nn.Embedding):  # (vocab, dim): a channel is a column
        return tensor[:, index].t()
    if isinstance(layer, _NORMS):
        return tensor.reshape(-1, tensor.shape[-1]).t()[index] if tensor.dim() > 1 else (
            tensor[index].unsqueeze(1)
        )
    return None


def _conv_rows(
    layer: nn.Module, w: torch.Tensor, is_out: bool, index: torch.Tensor
) -> torch.Tensor:
    """Conv: (out, in/g, *k); transposed: (in, out/g, *k). Grouped axes use only their group."""
    g = layer.groups
    full_is_out = not layer.transposed  # the axis stored in full (dim 0)
    if is_out == full_is_out:
        return w[index].flatten(1)
    # per-group axis: channel c lives at column c % per_group, rows of group c // per_group
    per_group = w.shape[1]
    rows_per_group = w.shape[0] // g
    blocks = w.reshape(g, rows_per_group, per_group, *w.shape[2:])
    picked = blocks[index // per_group, :, index % per_group]  # (n, rows_per_group, *k)
    return picked.flatten(1)


def channel_power_sums(
    layer: nn.Module,
    tensor: torch.Tensor,
    is_out: bool,
    idxs: Sequence[int],
    p: float,
    both_axes: BothAxes | None = None,
) -> torch.Tensor | None:
    """Sum of |entry|^p per index in `idxs`: `channel_rows(...).abs().pow(p).sum(1)`, faster.

    One fused reduction over the whole axis, then a pick: no gathered copy and no
    weight-sized |w|^p temporary (a 1B model's embedding alone is 260 MB). With
    `both_axes`, a plain conv or Linear is read once for its out AND in channels.
    """
    sums = both_axes.sums(layer, tensor, is_out, p) if both_axes is not None else None
    if sums is None:
        sums = _axis_power_sums(layer, tensor, is_out, p)
    if sums is None:
        return None
    return sums[index_tensor(idxs, sums.device)]


def index_tensor(idxs: Sequence[int] | np.ndarray, device: torch.device) -> torch.Tensor:
    """A long index tensor (numpy converts Python int lists ~3x faster than torch)."""
    arr = np.ascontiguousarray(np.asarray(idxs, dtype=np.int64).reshape(-1))
    return torch.from_numpy(arr).to(device)


_CHUNK = 1 << 18  # entries per chunk (1 MB in float32: stays in cache between passes)


def _powered(t: torch.Tensor, p: float, buf: torch.Tensor | None = None) -> torch.Tensor:
    """|t|^p, written into `buf` (flat, at least t.numel()) when given: one chunk buffer
    reused across a layer instead of a fresh multi-MB temporary (and its page faults)
    per chunk."""
    if buf is None:
        return t.abs() if p == 1 else t.square() if p == 2 else t.abs().pow(p)
    out = buf[: t.numel()].view(t.shape)
    if p == 2:
        return torch.mul(t, t, out=out)
    torch.abs(t, out=out)
    return out if p == 1 else out.pow_(p)


def _chunk_buffer(t: torch.Tensor, step_numel: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(min(step_numel, t.numel()), dtype=dtype, device=t.device)


def _row_power_sums(t: torch.Tensor, p: float) -> torch.Tensor:
    """(..., M) -> (...): sum of |t|^p over the contiguous last axis, no temporary."""
    return torch.linalg.vector_norm(t, ord=p, dim=-1).pow(p)


def _col_power_sums(t: torch.Tensor, p: float) -> torch.Tensor:
    """(G, R, C) -> (G, C): sum of |t|^p over the middle axis.

    A norm over a strided axis is ~25x slower than over a contiguous one, so the
    rows are taken in chunks of ~1 M entries: bounded temporaries, one pass.
    """
    g, r, c = t.shape
    step = max(1, _CHUNK // max(1, g * c))
    buf = _chunk_buffer(t, g * step * c, t.dtype)
    out = _powered(t[:, :step], p, buf).sum(1)
    for i in range(step, r, step):
        out += _powered(t[:, i:i + step], p, buf).sum(1)
    return out


def _axis_power_sums(
    layer: nn.Module, t: torch.Tensor, is_out: bool, p: float
) -> torch.Tensor | None:
    """Sum of |t|^p for every channel of the axis (same layout rules as `channel_rows`)."""
    t = t.detach()
    if isinstance(layer, _CONV):
        if is_out == (not layer.transposed):  # the axis stored in full (dim 0)
            return _row_power_sums(t.reshape(t.shape[0], -1), p)
        # per-group axis: channel c is column c % per_group of group c // per_group,
        # i.e. flat position c of the (g, per_group) sums
        g = layer.groups
        blocks = t.reshape(g, t.shape[0] // g, t.shape[1], -1)  # (g, rows, per_group, k)
        if blocks.shape[-1] > 1:  # reduce the contiguous kernel first: 1/k the size
            return _row_power_sums(blocks, p).sum(1).reshape(-1)
        return _col_power_sums(blocks[..., 0], p).reshape(-1)
    if isinstance(layer, nn.Linear):
        return _row_power_sums(t, p) if is_out else _col_power_sums(t[None], p)[0]
    if hasattr(layer, "nf") and hasattr(layer, "nx") and t.dim() == 2:  # HF Conv1D (in, out)
        return _col_power_sums(t[None], p)[0] if is_out else _row_power_sums(t, p)
    if isinstance(layer, nn.Embedding):  # (vocab, dim): a channel is a column
        return _col_power_sums(t[None], p)[0]
    if isinstance(layer, _NORMS):
        if t.dim() > 1:
            return _col_power_sums(t.reshape(1, -1, t.shape[-1]), p)[0]
        return _powered(t, p)
    return None


class BothAxes:
    """Per-channel |w|^p sums of both axes of a layer from ONE pass over its weight.

    A layer is scored twice per plan: by the group of its outputs and by the group of
    its inputs. Weights dominate a step's memory traffic, so reading each once matters
    (scoring is memory-bound). Valid while the tensors are unchanged: the pruner holds
    one only while planning (tensors are kept referenced, so ids cannot be reused).
    """

    def __init__(self) -> None:
        # (id, p) -> (tensor, (version, data pointer, shape), dim-0 sums, dim-1 sums)
        self._memo: dict[tuple[int, float], tuple[torch.Tensor, tuple, torch.Tensor, torch.Tensor]]
        self._memo = {}
        self._buffers: dict[torch.device, torch.Tensor] = {}  # one chunk buffer per device

    def _buffer(self, t: torch.Tensor, numel: int) -> torch.Tensor:
        """A float32 scratch buffer shared by every layer of the session: a fresh multi-MB
        buffer per layer is a fresh mmap, page-faulted again each time (~half the cost)."""
        buf = self._buffers.get(t.device)
        if buf is None or buf.numel() < numel:
            buf = self._buffers[t.device] = torch.empty(numel, dtype=torch.float32, device=t.device)
        return buf

    def sums(
        self, layer: nn.Module, t: torch.Tensor, is_out: bool, p: float
    ) -> torch.Tensor | None:
        """Sums over `layer`'s out (is_out) or in channels; None: not a layer read this way."""
        if not _plain_two_axes(layer, t):
            return None
        key = (id(t), p)
        hit = self._memo.get(key)
        state = (t._version, t.data_ptr(), tuple(t.shape))  # `.data = ...` keeps the object
        if hit is None or hit[0] is not t or hit[1] != state:
            hit = (t, state, *_dim0_dim1_power_sums(t, p, self._buffer))
            self._memo[key] = hit
        dim0_is_out = not getattr(layer, "transposed", False)
        return hit[2] if is_out == dim0_is_out else hit[3]


def _plain_two_axes(layer: nn.Module, t: torch.Tensor) -> bool:
    """Linear, or a conv whose two channel axes are dims 0 and 1 in full (groups == 1)."""
    if isinstance(layer, nn.Linear):
        return t.dim() == 2
    return isinstance(layer, _CONV) and layer.groups == 1 and t.dim() >= 3


def _dim0_dim1_power_sums(
    t: torch.Tensor, p: float, scratch: Callable[[torch.Tensor, int], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of |t|^p per index of dim 0 and per index of dim 1, in float32, row chunks of
    ~`_CHUNK` entries in one reused buffer. Both reductions run over contiguous memory:
    dim 1's sums come from the (dim 1 x kernel) column sums, folded over the kernel last
    (summing a 3x3 kernel axis per chunk is several times slower)."""
    t2 = t.detach().reshape(t.shape[0], -1)
    rows, width = t2.shape
    dim0 = torch.empty(rows, dtype=torch.float32, device=t.device)
    columns = torch.zeros(width, dtype=torch.float32, device=t.device)
    step = max(1, _CHUNK // max(1, width))
    numel = min(step * width, t2.numel())
    buf = scratch(t2, numel) if scratch is not None else _chunk_buffer(t2, numel, torch.float32)
    for i in range(0, rows, step):
        sq = _powered(t2[i:i + step].float(), p, buf)
        dim0[i:i + step] = sq.sum(1)
        columns += sq.sum(0)
    return dim0, columns.view(t.shape[1], -1).sum(1)


def bias_rows(layer: nn.Module, idxs: Sequence[int], is_out: bool) -> torch.Tensor | None:
    """Bias entries of out channels (a bias has no input axis)."""
    bias = getattr(layer, "bias", None)
    if not is_out or not isinstance(bias, torch.Tensor):
        return None
    index = index_tensor(idxs, bias.device)
    return bias.detach()[index].unsqueeze(1)


def flat_positions(layer: nn.Module, param: torch.Tensor, is_out: bool, idxs: Sequence[int]):
    """Flat indices into `param` for each channel row (same layout as `channel_rows`)."""
    ids = torch.arange(param.numel(), device=param.device).reshape(param.shape)
    return channel_rows(layer, ids, is_out, idxs)
