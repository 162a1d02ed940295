"""torchvision Swin (V1, V2) and MaxViT attention: head dims and whole heads prune.

`shifted_window_attention` reshapes qkv to (3, num_heads, C // num_heads) with C the
INPUT width and folds the heads back into C, and MaxViT reshapes its heads back to
its input width: the attention width was tied to the residual stream by arithmetic no
tensor rule sees, so the probe locked it (the models kept ~68% of their parameters at
ratio 0.5). engine.families.lift swaps these blocks for equivalent forms that read
the head width from qkv and the output width from proj; the graph then offers head
dims, whole heads (the relative position bias table, V2's logit_scale and cpb_mlp
follow their heads) and the residual width separately.

Oracles: the lifted forward equals torchvision's exactly; pruning zeroed head dims or
zeroed heads leaves the outputs unchanged to 1e-5.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
from torchvision.models.swin_transformer import (
    PatchMergingV2,
    ShiftedWindowAttention,
    SwinTransformer,
    SwinTransformerBlockV2,
)

import engine as tp
from engine.families.lift import lift_attention

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def tiny_swin(v2: bool = False) -> SwinTransformer:
    """Stage 1: 8x8 map, window 4, shifted blocks (the mask path); stage 2: one window."""
    torch.manual_seed(0)
    kw = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if v2 else {}
    model = SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4],
                            window_size=[4, 4], num_classes=10, **kw).eval()
    with torch.no_grad():  # sharp attention, so a wrong regrouping of heads shows
        for a in attentions(model):
            a.qkv.weight[: 2 * a.qkv.in_features] *= 10
            if hasattr(a, "cpb_mlp"):
                a.cpb_mlp[2].weight.normal_()
            else:
                a.relative_position_bias_table.normal_()
    return model


def attentions(model: nn.Module) -> list[ShiftedWindowAttention]:
    return [m for m in model.modules() if isinstance(m, ShiftedWindowAttention)]


def run(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def prune(model: nn.Module, **kw) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tp.pruner.BasePruner(model, X, tp.importance.MagnitudeImportance(),
                             ignored_layers=[model.head], **kw).step()


def _zero(a: ShiftedWindowAttention, pos: list[int]) -> None:
    """Zero q/k/v rows `pos` (positions inside the heads) and proj's matching columns."""
    e = a.qkv.out_features // 3
    rows = [b * e + p for b in range(3) for p in pos]
    with torch.no_grad():
        a.qkv.weight[rows] = 0
        a.qkv.bias[rows] = 0
        a.proj.weight[:, pos] = 0


@pytest.mark.parametrize("v2", [False, True])
def test_lifted_forward_equals_torchvision(v2):
    model = tiny_swin(v2)
    ref = run(model)
    assert lift_attention(model) == [f"features.{s}.{b}.attn" for s in (1, 3) for b in (0, 1)]
    assert all(type(a).__qualname__.startswith("Lifted") for a in attentions(model))
    assert all(type(a).__name__ == type(a).__mro__[1].__name__ for a in attentions(model))
    torch.testing.assert_close(run(model), ref, atol=0, rtol=0)
    assert lift_attention(model) == []  # idempotent: lifted blocks stay as they are


def test_lifted_maxvit_attention_equals_torchvision():
    torch.manual_seed(0)
    attn = RelativePositionalMultiHeadAttention(32, 8, 16).eval()
    x = torch.randn(2, 3, 16, 32)
    with torch.no_grad():
        ref = attn(x)
        holder = nn.Sequential(attn)
        lift_attention(holder)
        torch.testing.assert_close(holder[0](x), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("v2", [False, True])
def test_zeroed_head_dims_pruned_outputs_unchanged(v2):
    """Half of every head's dims (the same ones in each head) go; heads and C stay. Dim 0
    of every head shares its unit with the per-head bias, so 5 of the 11 others go."""
    model = tiny_swin(v2)
    for a in attentions(model):
        d = a.qkv.out_features // 3 // a.num_heads
        _zero(a, [h * d + j for h in range(a.num_heads) for j in range(1, d, 2)])
    before = run(model)
    prune(model, pruning_ratio=0.0, pruning_ratio_dict={a.qkv: 0.5 for a in attentions(model)})
    assert [(a.num_heads, a.qkv.out_features, a.qkv.in_features) for a in attentions(model)] == [
        (2, 42, 24), (2, 42, 24), (4, 84, 48), (4, 84, 48)]
    torch.testing.assert_close(run(model), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("v2", [False, True])
def test_zeroed_whole_heads_pruned_outputs_unchanged(v2):
    """prune_num_heads: 2 -> 1 and 4 -> 2 heads, with their bias-table columns (V2:
    logit_scale entries and cpb_mlp outputs); the residual width stays."""
    model = tiny_swin(v2)
    for a in attentions(model):
        d = a.qkv.out_features // 3 // a.num_heads
        gone = [1] if a.num_heads == 2 else [1, 3]
        _zero(a, [h * d + j for h in gone for j in range(d)])
        with torch.no_grad():  # what the removed heads read per head: zero for the ranking
            if v2:
                a.cpb_mlp[2].weight[gone] = 0
                a.logit_scale[gone] = 0
            else:
                a.relative_position_bias_table[:, gone] = 0
    before = run(model)
    prune(model, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
          head_pruning_ratio=0.5)
    got = [(a.num_heads, a.qkv.out_features, a.proj.in_features) for a in attentions(model)]
    assert got == [(1, 36, 12), (1, 36, 12), (2, 72, 24), (2, 72, 24)]
    for a in attentions(model):
        if v2:
            assert tuple(a.logit_scale.shape) == (a.num_heads, 1, 1)
            assert a.cpb_mlp[2].out_features == a.num_heads
        else:
            assert a.relative_position_bias_table.shape[1] == a.num_heads
    torch.testing.assert_close(run(model), before, atol=1e-5, rtol=0)


def test_lifted_model_pickles_and_reloads():
    model = tiny_swin()
    prune(model, pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    torch.testing.assert_close(run(again), run(model), atol=0, rtol=0)


def _kept_at_half(name: str, **kw) -> tuple[float, list[int], nn.Module]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    widths = [a.qkv.out_features for a in attentions(model)]
    before = sum(p.numel() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tp.pruner.BasePruner(model, x, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
                             ignored_layers=[model.head], **kw).step()
    assert model(x).shape == (1, 1000)
    after = [a.qkv.out_features for a in attentions(model)]
    shrunk = [i for i, (w0, w1) in enumerate(zip(widths, after, strict=True)) if w1 < w0]
    return sum(p.numel() for p in model.parameters()) / before, shrunk, model


@pytest.mark.slow  # ~20 s each on 2 shared cores (test_attention.py checks swin_t at 0.45)
@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_full_size_swin_keeps_under_45_percent_with_every_attention_pruned(name):
    kept, shrunk, model = _kept_at_half(name)
    assert kept <= 0.45
    assert len(shrunk) == len(attentions(model)) == 12


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_full_size_swin_whole_heads(name):
    kept, _, model = _kept_at_half(name, prune_num_heads=True, head_pruning_ratio=0.5)
    assert [a.num_heads for a in attentions(model)] == [2] * 2 + [3] * 2 + [6] * 6 + [12] * 2
    assert kept <= 0.45
