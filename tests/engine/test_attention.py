"""Attention pruning: nn.MultiheadAttention (ViT), separate and fused q/k/v projections, GQA,
head dims vs whole heads, and the torchvision attention models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import engine as tp

X32 = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
SEQ = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))


def tiny_vit() -> torchvision.models.VisionTransformer:
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=12, hidden_dim=96, mlp_dim=192,
        num_classes=10).eval()


class Attention(nn.Module):
    """q/k/v/o Linears; `num_key_value_heads < num_heads` is Grouped Query Attention."""

    def __init__(self, dim: int = 32, heads: int = 8, kv_heads: int = 2, head_dim: int = 8):
        super().__init__()
        self.num_heads, self.num_key_value_heads = heads, kv_heads
        self.q_proj = nn.Linear(dim, heads * head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * head_dim)
        self.o_proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        hq, hkv = self.num_heads, self.num_key_value_heads
        q = self.q_proj(x).view(b, n, hq, -1).transpose(1, 2)
        k = self.k_proj(x).view(b, n, hkv, -1).transpose(1, 2)
        v = self.v_proj(x).view(b, n, hkv, -1).transpose(1, 2)
        rep = hq // hkv  # repeat_kv: every KV head serves `rep` consecutive query heads
        k = k[:, :, None].expand(b, hkv, rep, n, k.shape[-1]).reshape(b, hq, n, -1)
        v = v[:, :, None].expand(b, hkv, rep, n, v.shape[-1]).reshape(b, hq, n, -1)
        att = (q @ k.transpose(-1, -2) / 4.0).softmax(-1)
        return self.o_proj((att @ v).transpose(1, 2).reshape(b, n, -1))


class FusedAttention(nn.Module):
    """timm-style fused qkv projection."""

    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, -1))


class Net(nn.Module):
    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        self.attn = attn
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.head((h + self.attn(h)).mean(1))


def gqa_net(kv_heads: int = 2) -> Net:
    torch.manual_seed(0)
    return Net(Attention(kv_heads=kv_heads)).eval()


def declared(net: Net) -> dict[nn.Module, int]:
    a = net.attn
    return {a.q_proj: a.num_heads, a.k_proj: a.num_key_value_heads,
            a.v_proj: a.num_key_value_heads}


def pruner(model: nn.Module, x, **kw) -> tp.pruner.BasePruner:
    return tp.pruner.BasePruner(model, x, tp.importance.MagnitudeImportance(), **kw)


# ------------------------------------------------------------ nn.MultiheadAttention (ViT)
def test_vit_head_dims_pruned_inside_every_head():
    model = tiny_vit()
    pruner(model, X32, pruning_ratio=0.5, ignored_layers=[model.heads]).step()
    for layer in model.encoder.layers:
        a = layer.self_attention
        assert (a.embed_dim, a.num_heads, a.head_dim, a.kdim, a.vdim) == (48, 12, 4, 48, 48)
        assert tuple(a.in_proj_weight.shape) == (144, 48)
        assert tuple(a.out_proj.weight.shape) == (48, 48)
        assert layer.mlp[0].out_features == 96
    assert model.hidden_dim == 48 and model.conv_proj.out_channels == 48
    assert tuple(model.class_token.shape) == (1, 1, 48)
    assert model(X32).shape == (1, 10)


def test_vit_whole_heads_12_to_6():
    model = tiny_vit()
    p = pruner(model, X32, pruning_ratio=0.0, ignored_layers=[model.heads],
               prune_num_heads=True, head_pruning_ratio=0.5, prune_head_dims=False)
    plans = p.plan_step()
    assert [(pl.scope.startswith("heads:"), pl.channels_before, pl.channels_after)
            for pl in plans] == [(True, 96, 48)]
    p.step()
    for layer in model.encoder.layers:
        a = layer.self_attention
        assert (a.num_heads, a.head_dim, a.embed_dim) == (6, 8, 48)
        assert layer.num_heads == 6
    assert model(X32).shape == (1, 10)
    # removed heads are whole blocks of 8 residual channels
    removed = p.pruning_history()[0][2]
    assert len(removed) == 48 and all(len({i // 8 for i in removed[k:k + 8]}) == 1
                                      for k in range(0, 48, 8))


def test_vit_heads_and_head_dims_in_one_step():
    model = tiny_vit()
    pruner(model, X32, pruning_ratio=0.5, ignored_layers=[model.heads],
           prune_num_heads=True, head_pruning_ratio=0.5).step()
    a = model.encoder.layers[1].self_attention
    assert (a.num_heads, a.head_dim, a.embed_dim) == (6, 4, 24)
    assert model(X32).shape == (1, 10)


def test_vit_head_history_replays():
    model = tiny_vit()
    pruner(model, X32, pruning_ratio=0.0, ignored_layers=[model.heads],
           prune_num_heads=True, head_pruning_ratio=0.25).step()
    ref = model(X32)
    restored = tp.load_state_dict(tiny_vit(), tp.state_dict(model), example_inputs=X32)
    assert restored.encoder.layers[0].self_attention.num_heads == 9
    torch.testing.assert_close(restored(X32), ref, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ separate q/k/v, GQA
def test_head_pruning_ratio_half_gives_exactly_half_the_heads():
    model = gqa_net(kv_heads=8)
    p = pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head],
               num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5)
    p.step()
    a = model.attn
    assert (a.num_heads, a.num_key_value_heads) == (4, 4)
    assert [m.out_features for m in (a.q_proj, a.k_proj, a.v_proj)] == [32, 32, 32]
    assert a.o_proj.in_features == 32
    assert p.num_heads == {a.q_proj: 4, a.k_proj: 4, a.v_proj: 4}
    assert model(SEQ).shape == (2, 4)


def test_head_pruning_ratio_dict_overrides_per_module():
    model = gqa_net(kv_heads=8)
    pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head], num_heads=declared(model),
           prune_num_heads=True, head_pruning_ratio=0.5,
           head_pruning_ratio_dict={model.attn: 0.25}).step()
    assert (model.attn.num_heads, model.attn.q_proj.out_features) == (6, 48)


def test_gqa_kv_head_goes_with_its_query_heads():
    model = gqa_net(kv_heads=2)
    a = model.attn
    with torch.no_grad():  # KV head 1 and its query heads 4..7 contribute nothing
        a.k_proj.weight[8:] = 0
        a.k_proj.bias[8:] = 0
        a.v_proj.weight[8:] = 0
        a.v_proj.bias[8:] = 0
        a.q_proj.weight[32:] = 0
        a.q_proj.bias[32:] = 0
        a.o_proj.weight[:, 32:] = 0
    ref = model(SEQ)
    p = pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head],
               num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5)
    p.step()
    assert (a.num_heads, a.num_key_value_heads) == (4, 1)
    assert [a.q_proj.out_features, a.k_proj.out_features, a.v_proj.out_features,
            a.o_proj.in_features] == [32, 8, 8, 32]
    assert a.num_heads % a.num_key_value_heads == 0
    torch.testing.assert_close(model(SEQ), ref, atol=1e-5, rtol=0)


def test_gqa_head_dims_keep_every_head_equal():
    model = gqa_net(kv_heads=2)
    p = pruner(model, SEQ, pruning_ratio=0.5, ignored_layers=[model.head],
               num_heads=declared(model))
    sets = {pl.root_name: pl.n_removed for pl in p.plan_step()}
    p.step()
    a = model.attn
    # q/k lose 4 of 8 dims in each of their heads, v/o too: heads stay (8 q, 2 kv)
    assert [a.q_proj.out_features, a.k_proj.out_features] == [32, 8]
    assert [a.v_proj.out_features, a.o_proj.in_features] == [8, 32]
    assert sets["attn.q_proj"] == 32 and sets["attn.v_proj"] == 8
    assert model(SEQ).shape == (2, 4)


def test_prune_head_dims_false_keeps_attention_widths():
    model = gqa_net(kv_heads=2)
    pruner(model, SEQ, pruning_ratio=0.5, ignored_layers=[model.head],
           num_heads=declared(model), prune_head_dims=False).step()
    a = model.attn
    assert [a.q_proj.out_features, a.k_proj.out_features, a.v_proj.out_features] == [64, 16, 16]
    assert model.inp.out_features == 16  # other groups still prune


def test_fused_qkv_heads_and_dims():
    torch.manual_seed(0)
    model = Net(FusedAttention()).eval()
    pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head],
           num_heads={model.attn.qkv: 4}, prune_num_heads=True, head_pruning_ratio=0.5).step()
    assert (model.attn.num_heads, model.attn.qkv.out_features, model.attn.proj.in_features) == (
        2, 48, 16)
    assert model(SEQ).shape == (2, 4)
    torch.manual_seed(0)
    model = Net(FusedAttention()).eval()
    pruner(model, SEQ, pruning_ratio=0.5, ignored_layers=[model.head],
           num_heads={model.attn.qkv: 4}).step()
    assert (model.attn.num_heads, model.attn.qkv.out_features) == (4, 48)
    assert model(SEQ).shape == (2, 4)


def test_mha_pruner_refuses_uneven_heads():
    mha = nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match="heads must stay equal"):
        tp.function.prune_multihead_attention_out_channels(mha, [0])
    tp.function.prune_multihead_attention_out_channels(mha, [0, 4])
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (6, 2, 3)
    tp.function.prune_multihead_attention_out_channels(mha, [3, 4, 5])
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (3, 1, 3)


def test_mha_whole_head_with_unused_output_leaves_output_unchanged():
    """(L, N, E) layout, bias_k/bias_v: removing head 1 whose output is never used."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    x = torch.randn(5, 3, 8)
    x[..., 4:] = 0  # the embed channels of head 1 carry nothing in
    with torch.no_grad():
        mha.out_proj.weight[:, 4:] = 0  # and head 1's output is never read
    ref = mha(x, x, x, need_weights=False)[0]
    tp.function.prune_multihead_attention_out_channels(mha, [4, 5, 6, 7])
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (4, 1, 4)
    assert tuple(mha.in_proj_weight.shape) == (12, 4) and tuple(mha.bias_k.shape) == (1, 1, 4)
    out = mha(x[..., :4], x[..., :4], x[..., :4], need_weights=False)[0]
    torch.testing.assert_close(out, ref[..., :4], atol=1e-5, rtol=0)


# ------------------------------------------------------------------ torchvision models
_ATTN = ("ShiftedWindowAttention", "RelativePositionalMultiHeadAttention")


def _count_heads(model: nn.Module) -> list[int]:
    return [getattr(m, "num_heads", None) or m.n_heads for m in model.modules()
            if type(m).__name__ in _ATTN]


def _prune_half(model: nn.Module, ignored: nn.Module) -> tuple[int, int]:
    """Prune half of every group, run it; (params before, after)."""
    x = torch.randn(1, 3, 224, 224)
    params0 = sum(p.numel() for p in model.parameters())
    pruner(model, x, pruning_ratio=0.5, ignored_layers=[ignored]).step()
    assert model(x).shape == (1, 1000)
    return params0, sum(p.numel() for p in model.parameters())


def test_swin_t_prunes_and_runs():
    """Swin reshapes qkv with `C // num_heads` (C from its input): engine.families.lift makes
    it read the head width from qkv, so head dims, the residual width and the MLPs all prune
    (dim 0 of every head shares its unit with the per-head bias table: 15 of 31 dims go)."""
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None).eval()
    heads = _count_heads(model)
    before, after = _prune_half(model, model.head)
    block = model.features[1][0]
    assert (block.attn.qkv.out_features, block.attn.proj.in_features) == (153, 51)
    assert (block.attn.qkv.in_features, block.attn.proj.out_features) == (48, 48)
    assert (block.mlp[0].out_features, block.mlp[3].in_features) == (192, 192)
    assert model.features[7][1].mlp[0].out_features == 1536
    assert _count_heads(model) == heads
    assert after <= 0.45 * before


@pytest.mark.slow  # ~1 min on 2 cores: most of it the probe over 60+ groups
def test_maxvit_t_prunes_and_runs():
    torch.manual_seed(0)
    model = torchvision.models.maxvit_t(weights=None).eval()
    heads = _count_heads(model)
    before, after = _prune_half(model, model.classifier)
    layer = model.blocks[0].layers[0].layers
    attn = layer.window_attention.attn_layer[1]
    assert attn.n_heads == 2 and attn.to_qkv.out_features < 192
    assert attn.to_qkv.out_features == 3 * attn.n_heads * attn.head_dim
    assert layer.MBconv.layers.conv_a[0].out_channels == 128
    assert layer.window_attention.mlp_layer[1].out_features == 128
    assert _count_heads(model) == heads
    assert after <= 0.45 * before


@pytest.mark.slow
def test_vit_b_16_heads_and_dims_at_224():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    pruner(model, x, pruning_ratio=0.25, ignored_layers=[model.heads],
           prune_num_heads=True, head_pruning_ratio=0.5).step()
    for layer in model.encoder.layers:
        a = layer.self_attention
        assert (a.num_heads, a.head_dim, a.embed_dim) == (6, 48, 288)
    assert model(x).shape == (1, 1000)


def test_mha_pruner_takes_heads_and_dims_as_one_union():
    """What a preview applies in one call: head 0 whole plus dim 1 of the other heads."""
    mha = nn.MultiheadAttention(12, 3)
    tp.function.prune_multihead_attention_out_channels(mha, [0, 1, 2, 3, 5, 9])
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (6, 2, 3)
    with pytest.raises(ValueError, match="refusing"):
        tp.function.prune_multihead_attention_out_channels(mha, list(range(6)))


class PreNormBlock(nn.Module):
    """RMSNorm -> GQA attention -> residual, as in Llama-style decoders."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        self.norm = nn.RMSNorm(32)
        self.attn = Attention()
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.head((h + self.attn(self.norm(h))).mean(1))


def test_rmsnorm_residual_and_heads_prune_together():
    torch.manual_seed(0)
    model = PreNormBlock().eval()
    p = pruner(model, SEQ, pruning_ratio=0.5, ignored_layers=[model.head],
               num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5)
    p.step()
    a = model.attn
    assert tuple(model.norm.weight.shape) == (16,) and model.norm.normalized_shape == (16,)
    assert (a.q_proj.in_features, a.o_proj.out_features) == (16, 16)
    assert (a.num_heads, a.num_key_value_heads) == (4, 1)
    # heads 8 -> 4 (one KV group), then half of every head's dims: q 8x8 -> 4x4
    assert [a.q_proj.out_features, a.k_proj.out_features, a.v_proj.out_features] == [16, 4, 4]
    assert model(SEQ).shape == (2, 4)


def test_interactive_step_yields_head_groups_and_matches_step():
    def run(interactive: bool) -> dict[str, tuple[int, ...]]:
        model = gqa_net(kv_heads=2)
        p = pruner(model, SEQ, pruning_ratio=0.5, ignored_layers=[model.head],
                   num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5)
        if interactive:
            kinds = []
            for group in p.step(interactive=True):
                kinds.append(type(group).__name__)
                group.prune()
            assert kinds[0] == "HeadGroup" and len(kinds) == 4
        else:
            p.step()
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    assert run(True) == run(False)


def test_vit_with_6_heads_is_exactly_a_smaller_vit():
    """Same state_dict shapes, outputs, MACs and params as a ViT built with 6 heads of 8."""
    model = tiny_vit()
    pruner(model, X32, pruning_ratio=0.0, ignored_layers=[model.heads],
           prune_num_heads=True, head_pruning_ratio=0.5).step()
    small = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=6, hidden_dim=48, mlp_dim=192,
        num_classes=10).eval()
    small.load_state_dict(model.state_dict())
    torch.testing.assert_close(small(X32), model(X32), atol=1e-5, rtol=0)
    assert tp.utils.count_ops_and_params(model, X32) == tp.utils.count_ops_and_params(small, X32)


def test_gqa_head_history_replays_with_head_counts():
    model = gqa_net(kv_heads=2)
    pruner(model, SEQ, pruning_ratio=0.25, ignored_layers=[model.head],
           num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5).step()
    ref = model(SEQ)
    restored = tp.load_state_dict(gqa_net(kv_heads=2), tp.state_dict(model), example_inputs=SEQ)
    a = restored.attn
    assert (a.num_heads, a.num_key_value_heads, a.q_proj.out_features) == (4, 1, 24)
    torch.testing.assert_close(restored(SEQ), ref, atol=1e-5, rtol=0)


def test_heads_follow_the_iterative_schedule():
    model = gqa_net(kv_heads=8)
    p = pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head], iterative_steps=2,
               num_heads=declared(model), prune_num_heads=True, head_pruning_ratio=0.5)
    counts = []
    for _ in range(2):
        p.step()
        counts.append((model.attn.num_heads, model.attn.q_proj.out_features))
        assert model(SEQ).shape == (2, 4)
    assert counts == [(6, 48), (4, 32)]


def test_heads_that_would_break_the_forward_are_kept():
    """Only q_proj declared: removing its heads would leave v/o heads behind (the probe
    sees the forward fail), so no head goes and the pruner says why."""
    model = gqa_net(kv_heads=8)
    with pytest.warns(UserWarning, match="breaks the forward"):
        p = pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head],
                   num_heads={model.attn.q_proj: 8}, prune_num_heads=True,
                   head_pruning_ratio=0.5)
    assert p.plan_step() == []
    p.step()
    assert model.attn.q_proj.out_features == 64 and model(SEQ).shape == (2, 4)


class EncoderNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(10, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc(self.emb(x)).mean(1))


def test_transformer_encoder_heads_and_dims_on_both_paths():
    """nn.TransformerEncoderLayer: traced on meta through the Python path, then run on the
    fused inference fast path (eval + no_grad) and the Python path (grad enabled)."""
    torch.manual_seed(0)
    model = EncoderNet().eval()
    x = torch.randn(2, 6, 10)
    pruner(model, x, pruning_ratio=0.5, ignored_layers=[model.fc], prune_num_heads=True,
           head_pruning_ratio=0.5).step()
    for layer in model.enc.layers:
        a = layer.self_attn
        assert (a.embed_dim, a.num_heads, a.head_dim) == (8, 2, 4)
        assert (layer.linear1.in_features, layer.linear1.out_features) == (8, 32)
        assert layer.norm1.normalized_shape == (8,)
    with torch.no_grad():
        fast = model(x)
    torch.testing.assert_close(model(x), fast, atol=1e-5, rtol=0)


class WideFusedAttention(nn.Module):
    """A fused projection no family knows (`to_qkv`), into heads wider than its input."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = 4
        self.to_qkv = nn.Linear(32, 3 * 48)
        self.out = nn.Linear(48, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)).softmax(-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, n, -1))


def test_unknown_fused_qkv_layout_found_from_fine_classes():
    """The q|k|v stacking is read off the fine classes, not the layer's in width."""
    torch.manual_seed(0)
    model = Net(WideFusedAttention()).eval()
    attn = model.attn
    pruner(model, SEQ, pruning_ratio=0.0, ignored_layers=[model.head],
           num_heads={attn.to_qkv: 4}, prune_num_heads=True, head_pruning_ratio=0.5).step()
    assert (attn.heads, attn.to_qkv.out_features, attn.out.in_features) == (2, 72, 24)
    assert model(SEQ).shape == (2, 4)


class CrossAttention(nn.Module):
    """nn.MultiheadAttention with kdim/vdim != embed_dim (separate q/k/v weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(6, 16)
        self.mha = nn.MultiheadAttention(16, 4, kdim=10, vdim=12, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.fc(self.mha(self.q(x), k, v, need_weights=False)[0].mean(1))


def test_cross_attention_keeps_key_value_widths():
    torch.manual_seed(0)
    model = CrossAttention().eval()
    inputs = (torch.randn(2, 3, 6), torch.randn(2, 5, 10), torch.randn(2, 5, 12))
    pruner(model, inputs, pruning_ratio=0.5, ignored_layers=[model.fc],
           prune_num_heads=True, head_pruning_ratio=0.5).step()
    m = model.mha
    assert (m.embed_dim, m.num_heads, m.head_dim, m.kdim, m.vdim) == (4, 2, 2, 10, 12)
    assert not m._qkv_same_embed_dim
    assert [tuple(w.shape) for w in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)] == [
        (4, 4), (4, 10), (4, 12)]
    assert model(*inputs).shape == (2, 2)
