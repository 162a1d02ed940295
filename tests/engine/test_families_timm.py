"""timm families: ViT (fused qkv attention) and ConvNeXt prune with no hand-patching.

(Also: num_heads detection for torchvision's attention, the other vision family.)

Random weights, 32x32 inputs. Checks the new widths and the attributes forward
reads (`num_heads`, `head_dim`, `attn_dim`) and the informational ones
(`embed_dim`, `num_features`), plus a zero-weight oracle for whole heads.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

timm = pytest.importorskip("timm")

from engine import families  # noqa: E402
from engine.importance import MagnitudeImportance  # noqa: E402
from engine.pruner import BasePruner  # noqa: E402

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def vit(num_heads: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        depth=2,
        num_heads=num_heads,
        num_classes=10,
    ).eval()


def convnext() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("convnext_atto", pretrained=False, num_classes=10).eval()


def prune(model: nn.Module, heads: bool = False, **kw) -> BasePruner:
    args = families.pruner_kwargs(model)
    if not heads:
        args.pop("num_heads", None)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, X, MagnitudeImportance(), **args)
        pruner.step()
    return pruner


def run(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def test_vit_detect_num_heads():
    model = vit()
    assert families.detect_num_heads(model) == {b.attn.qkv: 3 for b in model.blocks}
    assert [(i.kind, i.heads, i.head_dim) for i in families.find_attention(model)] == [
        ("fused", 3, 64)
    ] * 2


def test_torchvision_detect_num_heads():
    import torchvision

    tv_vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=12, hidden_dim=96, mlp_dim=192
    )
    heads = families.detect_num_heads(tv_vit)
    assert list(heads.values()) == [12, 12]
    assert all(isinstance(m, nn.MultiheadAttention) for m in heads)
    swin = torchvision.models.swin_t(weights=None)
    assert list(families.detect_num_heads(swin).values()) == [3] * 2 + [6] * 2 + [12] * 6 + [24] * 2


def test_vit_hidden_mlp_and_head_dims_halved():
    model = vit()
    prune(model, pruning_ratio=0.5)
    assert model.patch_embed.proj.out_channels == 96
    assert model.cls_token.shape[-1] == 96 and model.pos_embed.shape[-1] == 96
    for block in model.blocks:
        a = block.attn
        assert (a.num_heads, a.head_dim, a.attn_dim) == (3, 32, 96)  # every head lost half
        assert (a.qkv.out_features, a.qkv.in_features, a.proj.in_features) == (288, 96, 96)
        assert (block.mlp.fc1.out_features, block.mlp.fc2.in_features) == (384, 384)
    assert (model.embed_dim, model.num_features, model.head.in_features) == (96, 96, 96)
    assert tuple(run(model).shape) == (1, 10)


def test_vit_whole_heads_halved():
    model = vit(num_heads=4)  # head_dim 48
    prune(
        model,
        heads=True,
        pruning_ratio=0.0,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    for block in model.blocks:
        a = block.attn
        assert (a.num_heads, a.head_dim, a.attn_dim) == (2, 48, 96)
        assert (a.qkv.out_features, a.qkv.in_features, a.proj.in_features) == (288, 192, 96)
    assert model.embed_dim == 192
    assert tuple(run(model).shape) == (1, 10)


def test_vit_zero_heads_removed_outputs_unchanged():
    """Heads 2 and 3 of every block zeroed in q, k, v and proj: removing them keeps logits."""
    model = vit(num_heads=4)
    with torch.no_grad():
        for block in model.blocks:
            rows = [p * 192 + h * 48 + d for p in range(3) for h in (2, 3) for d in range(48)]
            block.attn.qkv.weight[rows] = 0
            block.attn.qkv.bias[rows] = 0
            block.attn.proj.weight[:, 96:] = 0
    before = run(model)
    prune(
        model,
        heads=True,
        pruning_ratio=0.0,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    assert [b.attn.num_heads for b in model.blocks] == [2, 2]
    torch.testing.assert_close(run(model), before, atol=1e-5, rtol=0)


def test_convnext_atto_halved():
    model = convnext()
    prune(model, pruning_ratio=0.5)
    assert model.stem[0].out_channels == 20
    dims = [stage.blocks[0].conv_dw.out_channels for stage in model.stages]
    assert dims == [20, 40, 80, 160]  # 40/80/160/320 halved
    for stage, dim in zip(model.stages, dims, strict=True):
        for block in stage.blocks:
            assert block.conv_dw.groups == dim and block.gamma.shape == (dim,)
            assert block.mlp.fc1.out_channels == 4 * dim  # its own group, also halved
    assert (model.num_features, model.head_hidden_size) == (160, 160)
    assert (model.head.fc.in_features, model.head.in_features) == (160, 160)
    assert tuple(run(model).shape) == (1, 10)


def test_eva_rotary_attention_is_left_whole():
    """timm EVA applies interleaved RoPE inside attention: it is flagged, its attention and
    width stay (not traced through yet), its SwiGLU MLPs still halve, and refresh is clean."""
    torch.manual_seed(0)
    model = timm.create_model(
        "eva02_tiny_patch14_224", pretrained=False, img_size=56, depth=2, num_classes=10
    ).eval()
    x = torch.randn(1, 3, 56, 56)
    assert families.rope_attention(model) == ["blocks.0.attn", "blocks.1.attn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BasePruner(
            model,
            x,
            MagnitudeImportance(),
            pruning_ratio=0.5,
            prune_num_heads=True,
            head_pruning_ratio=0.5,
        ).step()
    assert [b.mlp.fc1.out_features for b in model.blocks] == [512, 512]  # fused gate|up
    assert [(i.heads, i.head_dim) for i in families.find_attention(model)] == [(3, 64)] * 2
    assert families.refresh_attributes(model).problems == []
    with torch.no_grad():
        assert tuple(model(x).shape) == (1, 10)
