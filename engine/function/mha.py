"""Pruner for nn.MultiheadAttention: the embedding dim, in whole heads or inside every head.

nn.MultiheadAttention needs its input, its internal q/k/v width and its output to
be the same `embed_dim`, so (as in Torch-Pruning) one channel index removes the
input column, the q/k/v rows and the out-projection row and column at once.
`embed_dim` is `num_heads` blocks of `head_dim`; the graph keeps the blocks equal
(`get_out_channel_groups`), and the indices given here decide which attribute
shrinks: the same positions in every head -> `head_dim`; whole blocks -> `num_heads`.

MHA scales q.k by 1/sqrt(head_dim) read at every forward, so narrower heads would
change every attention score; the q rows are rescaled by sqrt(new/old head_dim) so
the kept dims compute exactly what they computed before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

__all__ = ["MultiheadAttentionPruner", "head_layout_after"]


def head_layout_after(num_heads: int, head_dim: int, removed: Sequence[int]) -> tuple[int, int]:
    """(num_heads, head_dim) after removing `removed` embed positions.

    Whole heads may go, and the same number of dims from every remaining head (both at
    once when a step's head and head-dim removals are applied as one union); anything
    else would leave heads of different widths and is refused.
    """
    per_head = [0] * num_heads
    for i in removed:
        per_head[i // head_dim] += 1
    rest = {c for c in per_head if c < head_dim}
    if not rest:
        raise ValueError("refusing to remove every attention head")
    if len(rest) > 1:
        raise ValueError(
            f"attention heads must stay equal: removing {len(removed)} of "
            f"{num_heads}x{head_dim} embed positions leaves heads of different widths; "
            "remove the same positions in every head (head dims) or whole heads"
        )
    return num_heads - per_head.count(head_dim), head_dim - rest.pop()


def _rescale_queries(layer: nn.MultiheadAttention, factor: float) -> None:
    """Multiply the q projection (rows 0..E-1 of the packed weight, and its bias) in place."""
    e = layer.embed_dim
    with torch.no_grad():
        if layer._qkv_same_embed_dim:
            layer.in_proj_weight[:e] *= factor
        else:
            layer.q_proj_weight *= factor
        if layer.in_proj_bias is not None:
            layer.in_proj_bias[:e] *= factor


class MultiheadAttentionPruner(BasePruningFunc):
    """Embed-dim pruning of nn.MultiheadAttention; input and output channels are one axis."""

    TARGET_MODULES: tuple[type, ...] = (nn.MultiheadAttention,)
    channels_last = True  # (L, N, E) or (N, L, E): the embedding is always the last dim
    groups_are_heads = True  # equal blocks are heads: whole ones may go (prune_num_heads)

    def prune_out_channels(
        self, layer: nn.MultiheadAttention, idxs: Sequence[int]
    ) -> nn.MultiheadAttention:
        e = layer.embed_dim
        removed = normalize_idxs(idxs, e, "embed dim")
        if not removed:
            return layer
        keep = keep_indices(e, removed, "embed dims")
        heads, head_dim = head_layout_after(layer.num_heads, layer.head_dim, removed)
        rows = keep + [i + e for i in keep] + [i + 2 * e for i in keep]
        if head_dim != layer.head_dim:
            _rescale_queries(layer, (head_dim / layer.head_dim) ** 0.5)
        if layer._qkv_same_embed_dim:
            prune_tensor_(layer.in_proj_weight, 0, rows)
            prune_tensor_(layer.in_proj_weight, 1, keep)
        else:
            prune_tensor_(layer.q_proj_weight, 0, keep)
            prune_tensor_(layer.q_proj_weight, 1, keep)
            prune_tensor_(layer.k_proj_weight, 0, keep)
            prune_tensor_(layer.v_proj_weight, 0, keep)
        prune_tensor_(layer.in_proj_bias, 0, rows)
        prune_tensor_(layer.bias_k, 2, keep)
        prune_tensor_(layer.bias_v, 2, keep)
        out = layer.out_proj
        prune_tensor_(out.weight, 0, keep)
        prune_tensor_(out.weight, 1, keep)
        prune_tensor_(out.bias, 0, keep)
        out.in_features = out.out_features = len(keep)
        if layer._qkv_same_embed_dim:
            layer.kdim = layer.vdim = len(keep)
        layer.embed_dim = len(keep)
        layer.num_heads = heads
        layer.head_dim = head_dim
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.MultiheadAttention) -> int:
        return layer.embed_dim

    get_in_channels = get_out_channels

    def get_out_channel_groups(self, layer: nn.MultiheadAttention) -> int:
        return layer.num_heads

    get_in_channel_groups = get_out_channel_groups

