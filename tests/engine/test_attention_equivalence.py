"""Semantic equivalence for every attention family we claim: not only shapes.

The oracle: zero the weights of exactly what will be pruned (the same dims of every
head, or whole heads: q/k/v rows and the output projection's columns), prune with
the arguments a no-code tool passes, and every output must stay equal to 1e-5.
A pruner that regroups the kept dims into heads differently (DETR's `view(..., -1,
head_dim)` read with a stale head_dim: 4 heads of 8 become 2 heads of 16, each
mixing two original heads) keeps every shape and fails here.

Tiny configs, random weights; the residual width is kept (LayerNorm statistics
would change), so only the attention's own channels go.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from engine import families
from engine.importance import MagnitudeImportance
from engine.pruner import BasePruner

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
MASK = torch.ones_like(IDS)
PIX32 = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
PIX64 = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
SHARPEN = 30.0
SEQ = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))


def _decoder(name: str) -> nn.Module:
    cfg = getattr(transformers, f"{name}Config")(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64)
    return getattr(transformers, f"{name}ForCausalLM")(cfg)


def _qk_norm_decoder(name: str) -> nn.Module:
    """Qwen3 / Gemma 2 / Gemma 3: explicit head_dim; Qwen3 and Gemma 3 norm q and k per
    head (weights of head_dim, shared by the heads: whole heads leave them as they are)."""
    cfg_cls = {"Gemma3": "Gemma3TextConfig"}.get(name, f"{name}Config")
    cfg = getattr(transformers, cfg_cls)(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    return getattr(transformers, f"{name}ForCausalLM")(cfg)


def _detr() -> nn.Module:
    backbone = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
    cfg = transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5,
        num_labels=3)
    return transformers.DetrForObjectDetection(cfg)


def _bert() -> nn.Module:
    return transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64))


def _roberta() -> nn.Module:
    return transformers.RobertaForSequenceClassification(transformers.RobertaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64))


def _albert() -> nn.Module:
    return transformers.AlbertForSequenceClassification(transformers.AlbertConfig(
        vocab_size=128, embedding_size=32, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64))


def _bart() -> nn.Module:
    return transformers.BartModel(transformers.BartConfig(
        vocab_size=128, d_model=64, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=64))


def _hf_vit() -> nn.Module:
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8))


def _gpt2() -> nn.Module:
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=64))


class FusedAttention(nn.Module):
    """timm / torchvision-style fused qkv Linear with `num_heads`."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2) * 0.25).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, -1))


class Net(nn.Module):
    """An attention block between two Linears, residual and all, no norm."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        self.attn = attn
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        a = self.attn(h, h, h, need_weights=False)[0] if isinstance(
            self.attn, nn.MultiheadAttention) else self.attn(h)
        return self.head((h + a).mean(1))


# name -> (builder, inputs, does head-dim pruning apply (no RoPE))
FAMILIES: dict[str, tuple[Callable[[], nn.Module], Any, bool]] = {
    "detr": (_detr, {"pixel_values": PIX64}, True),
    "bert": (_bert, {"input_ids": IDS}, True),
    # the all-ones attention_mask the README recommends: HF's mask code reads its values
    "bert_mask": (_bert, {"input_ids": IDS, "attention_mask": MASK}, True),
    "roberta_mask": (_roberta, {"input_ids": IDS + 2, "attention_mask": MASK}, True),
    "albert_mask": (_albert, {"input_ids": IDS, "attention_mask": MASK}, True),
    "bart_mask": (_bart, {"input_ids": IDS, "attention_mask": MASK}, True),
    "hf_vit": (_hf_vit, {"pixel_values": PIX32}, True),
    "gpt2": (_gpt2, {"input_ids": IDS}, True),
    "timm_fused": (lambda: Net(FusedAttention()), SEQ, True),
    "torch_mha": (lambda: Net(nn.MultiheadAttention(32, 4, batch_first=True)), SEQ, True),
    "llama": (lambda: _decoder("Llama"), {"input_ids": IDS}, False),
    "qwen2": (lambda: _decoder("Qwen2"), {"input_ids": IDS}, False),
    "mistral": (lambda: _decoder("Mistral"), {"input_ids": IDS}, False),
    "qwen3": (lambda: _qk_norm_decoder("Qwen3"), {"input_ids": IDS}, False),
    "gemma2": (lambda: _qk_norm_decoder("Gemma2"), {"input_ids": IDS}, False),
    "gemma3": (lambda: _qk_norm_decoder("Gemma3"), {"input_ids": IDS}, False),
}


def build(name: str) -> nn.Module:
    """With sharp attention: HF's init (std 0.02) gives near-uniform softmax, under which
    any regrouping of heads computes the same mean and the oracle could not see it."""
    torch.manual_seed(0)
    model = FAMILIES[name][0]().eval()
    with torch.no_grad():
        for info in families.find_attention(model):
            for layer in list(info.projections)[:2] if info.kind != "mha" else []:
                layer.weight.mul_(SHARPEN)  # q and k (or the fused qkv)
        for m in model.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_weight[: 2 * m.embed_dim].mul_(SHARPEN / 10)
    return model


def outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    """Every tensor the model returns (DETR: logits and boxes and hidden states)."""
    with torch.no_grad():
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    if isinstance(out, torch.Tensor):
        return [out]
    return [v for v in out.values() if isinstance(v, torch.Tensor)]


# ----------------------------------------------------------------- zeroing
def _rows(layer: nn.Module, idx: list[int]) -> None:
    """Zero output positions `idx` of a Linear / HF Conv1D (and their bias)."""
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            layer.weight[idx] = 0
        else:  # Conv1D: weight (in, out)
            layer.weight[:, idx] = 0
        if layer.bias is not None:
            layer.bias[idx] = 0


def _cols(layer: nn.Module, idx: list[int]) -> None:
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            layer.weight[:, idx] = 0
        else:
            layer.weight[idx] = 0


def _blocks(model: nn.Module) -> list[tuple[families.AttentionInfo, nn.Module | None]]:
    """Each attention block with its output projection."""
    named = dict(model.named_modules())
    out = []
    for info in families.find_attention(model):
        m = info.module
        o = next((getattr(m, n) for n in ("o_proj", "out_proj", "proj", "c_proj", "dense")
                  if isinstance(getattr(m, n, None), nn.Module)), None)
        if o is None and info.kind == "bert":  # BertSelfOutput / ViTSelfOutput: beside it
            o = named[info.name.rpartition(".")[0]].output.dense
        out.append((info, o))
    return out


def zero(model: nn.Module, dims: Callable[[int], list[int]] | None, kv_unit: int | None) -> None:
    """Zero head dims `dims(head_dim)` of every head, or whole KV unit `kv_unit` (a KV
    head and its query heads; heads == kv_heads: just that head and the one after the
    middle) of every attention block."""
    for m in model.modules():
        if isinstance(m, Net) and isinstance(m.attn, nn.MultiheadAttention):
            _zero_mha(m, dims, kv_unit)
            return
    for info, o in _blocks(model):
        h, hkv, d = info.heads, info.kv_heads, info.head_dim
        rep = h // hkv
        if dims is not None:
            q_pos = [i * d + j for i in range(h) for j in dims(d)]
            kv_pos = [i * d + j for i in range(hkv) for j in dims(d)]
        else:
            kv_heads = [kv_unit] if hkv < h else [kv_unit, kv_unit + h // 2]
            q_heads = [g * rep + r for g in kv_heads for r in range(rep)]
            q_pos = [i * d + j for i in q_heads for j in range(d)]
            kv_pos = [i * d + j for i in kv_heads for j in range(d)]
        m = info.module
        if info.kind in ("gpt2", "fused"):
            fused = m.c_attn if info.kind == "gpt2" else m.qkv
            e = h * d
            _rows(fused, q_pos + [e + i for i in kv_pos] + [2 * e + i for i in kv_pos])
        else:
            q, k, v = (m.query, m.key, m.value) if info.kind == "bert" else (
                m.q_proj, m.k_proj, m.v_proj)
            _rows(q, q_pos)
            _rows(k, kv_pos)
            _rows(v, kv_pos)
        _cols(o, q_pos)


def _zero_mha(net: Net, dims: Callable[[int], list[int]] | None, kv_unit: int | None) -> None:
    """nn.MultiheadAttention's embed dim is the residual width: zero it end to end."""
    mha = net.attn
    h, d, e = mha.num_heads, mha.head_dim, mha.embed_dim
    pos = ([i * d + j for i in range(h) for j in dims(d)] if dims is not None
           else [i * d + j for i in (kv_unit, kv_unit + h // 2) for j in range(d)])
    _rows(net.inp, pos)
    with torch.no_grad():
        rows = pos + [e + i for i in pos] + [2 * e + i for i in pos]
        mha.in_proj_weight[rows] = 0
        mha.in_proj_bias[rows] = 0
        mha.in_proj_weight[:, pos] = 0
    _rows(mha.out_proj, pos)
    _cols(mha.out_proj, pos)
    _cols(net.head, pos)


def prune(model: nn.Module, inputs: Any, **kw: Any) -> None:
    args = families.pruner_kwargs(model)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BasePruner(model, inputs, MagnitudeImportance(), **args).step()


def layouts(model: nn.Module) -> list[tuple[int, int, int]]:
    got = [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)]
    mha = [(m.num_heads, m.num_heads, m.head_dim) for m in model.modules()
           if isinstance(m, nn.MultiheadAttention)]
    return got + mha


def _odd(d: int) -> list[int]:
    return list(range(1, d, 2))


# ------------------------------------------------------------------ tests
HEAD_DIM_FAMILIES = [n for n, (_, _, dims) in FAMILIES.items() if dims]


@pytest.mark.parametrize("name", HEAD_DIM_FAMILIES)
def test_zeroed_head_dims_pruned_outputs_unchanged(name):
    """No head pruning asked: half of every head's dims (the same ones) go, heads stay."""
    model = build(name)
    inputs = FAMILIES[name][1]
    before_layout = layouts(model)
    zero(model, _odd, None)
    before = outputs(model, inputs)
    if name == "torch_mha":
        ratios = {model.inp: 0.5}  # the embed dim is the residual width
    else:
        ratios = {next(iter(info.projections)): 0.5 for info in families.find_attention(model)}
    prune(model, inputs, pruning_ratio=0.0, pruning_ratio_dict=ratios)
    assert layouts(model) == [(h, kv, d // 2) for h, kv, d in before_layout]
    after = outputs(model, inputs)
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_zeroed_whole_heads_pruned_outputs_unchanged(name):
    """prune_num_heads: half the heads go (for GQA: a KV head with its query heads)."""
    model = build(name)
    inputs = FAMILIES[name][1]
    before_layout = layouts(model)
    zero(model, None, 1)
    before = outputs(model, inputs)
    prune(model, inputs, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
          head_pruning_ratio=0.5)
    assert layouts(model) == [(h // 2, kv // 2, d) for h, kv, d in before_layout]
    for a, b in zip(outputs(model, inputs), before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_detr_stale_head_dim_would_mix_heads():
    """The bug this file guards against, shown directly: after head-dim pruning, a stale
    head_dim re-splits 4 heads of 8 into 2 heads of 16, same shapes, other outputs."""
    model = build("detr")
    inputs = FAMILIES["detr"][1]
    zero(model, _odd, None)
    before = outputs(model, inputs)
    ratios = {next(iter(info.projections)): 0.5 for info in families.find_attention(model)}
    prune(model, inputs, pruning_ratio=0.0, pruning_ratio_dict=ratios)
    attn = model.model.encoder.layers[0].self_attn
    assert (attn.head_dim, attn.q_proj.out_features) == (8, 32)
    for info in families.find_attention(model):
        info.module.head_dim = 16  # what the engine used to leave behind
    stale = outputs(model, inputs)
    assert [tuple(s.shape) for s in stale] == [tuple(b.shape) for b in before]
    assert max((s - b).abs().max().item() for s, b in zip(stale, before, strict=True)) > 1e-3


@pytest.mark.parametrize("name", ["detr", "bert", "llama"])
def test_attention_is_sharp_enough_for_the_oracle(name):
    """Regrouping two heads into one changes the outputs of the models above."""
    model = build(name)
    info = families.find_attention(model)[0]
    probs = []
    hook = info.module.register_forward_hook(lambda m, a, o: probs.append(o[1]))
    try:
        with torch.no_grad():
            kw = dict(FAMILIES[name][1])
            model.config._attn_implementation = "eager"
            model(**kw, output_attentions=True)
    finally:
        hook.remove()
    p = probs[0]
    assert p is not None and p.max().item() > 2.0 / p.shape[-1]  # far from uniform
