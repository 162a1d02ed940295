"""Swin (torchvision) whole heads: why the engine keeps them.

`shifted_window_attention` reshapes qkv to (3, num_heads, C // num_heads) with C the
INPUT width, and later reshapes the heads back to C. So q/k/v width must equal the
residual width C: removing n heads of head_dim d is only valid if the residual
stream (every block of the stage, and the patch merging around it) loses exactly
n * d channels in the same step. That is a count tie between two independent
channel sets, which the dependency graph cannot express; heads alone break the
forward, so the head planner's forward check keeps them (with a warning).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchvision.models.swin_transformer import ShiftedWindowAttention, SwinTransformer

import engine as tp

X = torch.randn(1, 8, 8, 24, generator=torch.Generator().manual_seed(0))  # B, H, W, C


def _attention() -> ShiftedWindowAttention:
    torch.manual_seed(0)
    return ShiftedWindowAttention(24, [4, 4], [2, 2], num_heads=2).eval()  # 2 heads of 12


def _remove_head(attn: ShiftedWindowAttention, head: int, keep_in: list[int]) -> None:
    """Remove `head` from qkv rows (q, k and v blocks), proj columns and the bias table,
    and keep only the input/residual channels `keep_in` (qkv columns, proj rows)."""
    d = attn.qkv.out_features // 3 // attn.num_heads
    dims = attn.qkv.out_features // 3
    heads_kept = [i for i in range(dims) if i // d != head]
    rows = [b * dims + i for b in range(3) for i in heads_kept]
    with torch.no_grad():
        attn.qkv.weight = nn.Parameter(attn.qkv.weight[rows][:, keep_in])
        attn.qkv.bias = nn.Parameter(attn.qkv.bias[rows])
        attn.proj.weight = nn.Parameter(attn.proj.weight[keep_in][:, heads_kept])
        attn.proj.bias = nn.Parameter(attn.proj.bias[keep_in])
        table = attn.relative_position_bias_table
        attn.relative_position_bias_table = nn.Parameter(
            table[:, [h for h in range(attn.num_heads) if h != head]])
    attn.num_heads -= 1


def test_removing_a_whole_head_alone_breaks_the_forward() -> None:
    attn = _attention()
    _remove_head(attn, 1, keep_in=list(range(24)))  # residual width C = 24 kept
    assert tuple(attn.qkv.weight.shape) == (36, 24)
    with pytest.raises(RuntimeError):  # reshape to (3, 1, 24 // 1): 36 values are not 72
        attn(X)


def test_a_head_goes_only_with_as_many_residual_channels() -> None:
    """Heads + n * head_dim residual channels run, and equal the original on the kept
    channels when the removed head and the removed residual channels carry zeros."""
    attn = _attention()
    with torch.no_grad():  # head 1 silent: its v rows zero (q, k then do not matter)
        attn.qkv.weight[48 + 12:] = 0
        attn.qkv.bias[48 + 12:] = 0
    gone = [1, 4, 6, 9, 11, 13, 15, 17, 19, 20, 22, 23]  # any 12 residual channels
    keep = [c for c in range(24) if c not in gone]
    x = X.clone()
    x[..., gone] = 0
    with torch.no_grad():
        expected = attn(x)[..., keep]
    _remove_head(attn, 1, keep_in=keep)
    assert attn.num_heads == 1
    assert tuple(attn.qkv.weight.shape) == (36, 12)
    assert tuple(attn.proj.weight.shape) == (12, 12)
    assert tuple(attn.relative_position_bias_table.shape) == (49, 1)
    with torch.no_grad():
        got = attn(x[..., keep])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_engine_keeps_swin_heads_whole_and_says_why() -> None:
    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4],
                            window_size=[4, 4], num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner = tp.pruner.BasePruner(
            model, x, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
            prune_num_heads=True, head_pruning_ratio=0.5, ignored_layers=[model.head])
        pruner.step()
    assert any("features.1.0.attn.qkv" in str(w.message) and "breaks the forward"
               in str(w.message) for w in caught)
    attns = [m for m in model.modules() if isinstance(m, ShiftedWindowAttention)]
    assert [(a.num_heads, a.qkv.out_features, a.proj.in_features) for a in attns] == [
        (2, 72, 24), (2, 72, 24), (4, 144, 48), (4, 144, 48)]
    assert model.features[1][0].mlp[0].out_features == 48  # the MLPs still halve
    assert model(x).shape == (1, 10)
