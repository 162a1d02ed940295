"""Which entries of a layer's parameter belong to each pruned channel.

Every criterion (magnitude, Taylor, Hessian) and every regularizer needs the
same thing: for a group member `(layer, in/out, idxs)`, the weight entries that
disappear with each index. Keeping that layout knowledge here, once, means the
criteria are one-liners over an `(n_idxs, n_entries)` matrix, and grouped or
transposed convolutions are handled identically everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    index = torch.as_tensor(list(idxs), dtype=torch.long, device=tensor.device)
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


def bias_rows(layer: nn.Module, idxs: Sequence[int], is_out: bool) -> torch.Tensor | None:
    """Bias entries of out channels (a bias has no input axis)."""
    bias = getattr(layer, "bias", None)
    if not is_out or not isinstance(bias, torch.Tensor):
        return None
    index = torch.as_tensor(list(idxs), dtype=torch.long, device=bias.device)
    return bias.detach()[index].unsqueeze(1)


def flat_positions(layer: nn.Module, param: torch.Tensor, is_out: bool, idxs: Sequence[int]):
    """Flat indices into `param` for each channel row (same layout as `channel_rows`)."""
    ids = torch.arange(param.numel(), device=param.device).reshape(param.shape)
    return channel_rows(layer, ids, is_out, idxs)
