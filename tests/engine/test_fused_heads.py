"""Fused-qkv decoders (Phi-3, Falcon, GPT-NeoX) lose whole heads; CLIP's residual prunes.

Tiny configs, random weights. The oracle is the one of test_attention_equivalence:
zero what will be pruned, prune, every output unchanged to 1e-5.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from engine import families
from engine.importance import MagnitudeImportance
from engine.pruner import BasePruner

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _prune(model: nn.Module, inputs: Any, **kw: Any) -> BasePruner:
    args = families.pruner_kwargs(model)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, inputs, MagnitudeImportance(), **args)
        pruner.step()
    return pruner


# ------------------------------------------------------------------- CLIP
def _clip() -> nn.Module:
    torch.manual_seed(0)
    text = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, image_size=32, patch_size=8)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    return transformers.CLIPModel(cfg).eval()


CLIP_INPUTS = {
    "input_ids": torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0)),
    "pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
}


def test_clip_default_output_is_the_image_text_logits():
    model = _clip()
    with torch.no_grad():
        out = model(**CLIP_INPUTS)
    picked = families.model_output(out)
    assert picked is out.logits_per_image


def test_clip_residual_width_prunes_at_ratio_half():
    """Returned whole, CLIP's output locks both towers' residual widths (what the
    default did before): about 0.59 of the params stay. Its logits free them."""
    whole = _clip()
    n0 = _params(whole)
    _prune(whole, CLIP_INPUTS, pruning_ratio=0.5, output_transform=lambda out: out)
    kept_whole = _params(whole) / n0

    model = _clip()
    _prune(model, CLIP_INPUTS, pruning_ratio=0.5)
    kept = _params(model) / n0
    assert kept_whole > 0.5  # the residual stream stayed
    assert kept < 0.35 and kept < kept_whole - 0.2
    assert model.text_model.embeddings.token_embedding.weight.shape[1] < 64
    assert model.vision_model.embeddings.patch_embedding.weight.shape[0] < 64
    with torch.no_grad():
        out = model(**CLIP_INPUTS)
    assert out.logits_per_image.shape == (2, 2)
    assert torch.isfinite(out.logits_per_image).all()


# ----------------------------------------------------- packed q|k|v decoders
IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
SHARPEN = 30.0  # HF's init gives near-uniform softmax, under which mixed heads look alike


def _phi3() -> nn.Module:
    return transformers.Phi3ForCausalLM(transformers.Phi3Config(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=0))


def _falcon(**kw: Any) -> nn.Module:
    return transformers.FalconForCausalLM(transformers.FalconConfig(
        vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
        ffn_hidden_size=128, **kw))


def _neox() -> nn.Module:
    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, max_position_embeddings=64))


# name -> (builder, (heads, kv heads, head_dim) before)
PACKED = {
    "phi3_gqa": (_phi3, (8, 2, 8)),
    "falcon": (lambda: _falcon(multi_query=False), (8, 8, 8)),
    "falcon_new_arch": (lambda: _falcon(new_decoder_architecture=True, num_kv_heads=2),
                        (8, 2, 8)),
    "gpt_neox": (_neox, (8, 8, 8)),
    # one q head per group: a size-1 dim the reshape rule used to lock
    "falcon_new_arch_kv8": (lambda: _falcon(new_decoder_architecture=True, num_kv_heads=8),
                            (8, 8, 8)),
}


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = PACKED[name][0]().eval()
    with torch.no_grad():
        for info in families.find_attention(model):
            next(iter(info.projections)).weight.mul_(SHARPEN)
    return model


def _logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _out_proj(block: nn.Module) -> nn.Linear:
    return block.o_proj if hasattr(block, "o_proj") else block.dense


def _zero_half_the_units(model: nn.Module) -> None:
    """Zero every other removable unit (a KV head with its q heads) of every block:
    its rows of the packed projection and its q heads' columns of the output one."""
    for info in families.find_attention(model):
        proj = next(iter(info.projections))
        unit, n_units, per_unit = families.attention.packed_units(
            info.module, proj.weight.shape[0])
        d = info.head_dim
        with torch.no_grad():
            for j in range(1, n_units, 2):
                rows = torch.from_numpy(unit == j)
                proj.weight[rows] = 0
                if proj.bias is not None:
                    proj.bias[rows] = 0
                cols = [h * d + i for h in range(j * per_unit, (j + 1) * per_unit)
                        for i in range(d)]
                _out_proj(info.module).weight[:, cols] = 0


def _layouts(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)]


@pytest.mark.parametrize("name", list(PACKED))
def test_packed_heads_are_detected(name):
    model = _build(name)
    infos = families.find_attention(model)
    assert len(infos) == 2 and {i.kind for i in infos} == {"packed"}
    assert _layouts(model) == [PACKED[name][1]] * 2
    heads = families.detect_num_heads(model)
    assert len(heads) == 2 and set(heads.values()) == {8}


@pytest.mark.parametrize("name", list(PACKED))
def test_zeroed_whole_heads_pruned_outputs_unchanged(name):
    """Semantic equivalence: the zeroed half of the heads goes, logits stay to 1e-5, and
    the modules' and config's head counts follow."""
    model = _build(name)
    h, hkv, d = PACKED[name][1]
    _zero_half_the_units(model)
    before = _logits(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.0, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    assert _layouts(model) == [(h // 2, hkv // 2, d)] * 2
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)
    cfg = model.config
    assert cfg.num_attention_heads == h // 2
    for info in families.find_attention(model):
        proj = next(iter(info.projections))
        assert proj.out_features == proj.weight.shape[0] == (h // 2 + 2 * (info.kv_heads)) * d
        assert _out_proj(info.module).in_features == h // 2 * d
        groups = getattr(info.module, "num_key_value_groups", None)
        assert groups in (None, info.heads // info.kv_heads)


@pytest.mark.parametrize("name", ["phi3_gqa", "gpt_neox"])
def test_oracle_sees_heads_that_were_not_zeroed(name):
    """The oracle can fail: pruning half the heads without zeroing them moves the logits."""
    model = _build(name)
    before = _logits(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.0, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    assert _layouts(model)[0][0] == 4
    assert (_logits(model) - before).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", list(PACKED))
def test_ratio_half_prunes_attention_and_runs(name):
    """Params kept at ratio 0.5 with whole heads: attention shrinks with the rest."""
    model = _build(name)
    n0 = _params(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
           head_pruning_ratio=0.5)
    assert _params(model) / n0 < 0.45
    assert all(i.heads == 4 for i in families.find_attention(model))
    assert _logits(model).shape == (1, 8, 128)


@pytest.mark.parametrize("name", list(PACKED))
def test_pruned_config_rebuilds_the_same_model(name):
    """Residual, MLP and heads halved: `type(model)(model.config)` takes the pruned weights
    (head counts, KV heads, head_dim and the MLP width are all written to the config)."""
    model = _build(name)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    rebuilt = type(model)(model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(_logits(rebuilt), _logits(model), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["phi3_gqa", "falcon_new_arch", "gpt_neox"])
def test_pruned_model_saves_and_reloads(name, tmp_path):
    """save_pretrained / from_pretrained (the stock classes, not lifted) and a pickle of
    the lifted model both give back the pruned model's logits."""
    model = _build(name)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    expected = _logits(model)
    model.save_pretrained(tmp_path / "hf")
    reloaded = type(model).from_pretrained(tmp_path / "hf").eval()
    torch.testing.assert_close(_logits(reloaded), expected, atol=1e-5, rtol=0)
    with torch.no_grad():  # the lifted forward's cache path: same tokens as the stock class
        gen = [m.generate(IDS, max_new_tokens=4, do_sample=False, pad_token_id=0)
               for m in (model, reloaded)]
    assert gen[0].shape == (1, 12) and torch.equal(gen[0], gen[1])
    torch.save(model, tmp_path / "model.pt")
    unpickled = torch.load(tmp_path / "model.pt", weights_only=False).eval()
    torch.testing.assert_close(_logits(unpickled), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["phi3_gqa", "gpt_neox", "falcon"])
def test_whole_heads_go_with_an_attention_mask(name):
    """The all-ones mask the README recommends does not stop whole-head pruning."""
    model = _build(name)
    inputs = {"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}
    _zero_half_the_units(model)
    with torch.no_grad():
        before = model(**inputs).logits
    _prune(model, inputs, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert [i.heads for i in families.find_attention(model)] == [4, 4]
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, before, atol=1e-5, rtol=0)


def test_gqa_sdpa_without_repeat_kv_keeps_whole_heads():
    """With a mask the trace runs for real and HF's sdpa gets k/v with 2 KV heads for
    8 q heads (enable_gqa): the sdpa rule repeats the KV heads instead of failing (which
    locked every head). Llama, the same as Phi-3."""
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64)).eval()
    inputs = {"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}
    _prune(model, inputs, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert [(i.heads, i.kv_heads) for i in families.find_attention(model)] == [(4, 1)] * 2
    with torch.no_grad():
        assert model(**inputs).logits.shape == (1, 8, 128)


@pytest.mark.parametrize("name", list(PACKED))
def test_history_replays_onto_a_fresh_model(name):
    """engine.state_dict's pruning history (whole heads included) replays onto a fresh
    model of the original architecture: same layouts, config and logits."""
    import engine

    model = _build(name)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    fresh = PACKED[name][0]().eval()
    engine.load_state_dict(fresh, engine.state_dict(model), example_inputs={"input_ids": IDS})
    assert _layouts(fresh) == _layouts(model)
    assert fresh.config.to_dict() == model.config.to_dict()
    torch.testing.assert_close(_logits(fresh), _logits(model), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(multi_query=False, alibi=True),
                                dict(new_decoder_architecture=True, num_kv_heads=2, alibi=True)])
def test_falcon_alibi_zeroed_head_dims_pruned_outputs_unchanged(kw):
    """No RoPE (ALiBi): the same dims of every head may go; head_dim is refreshed from the
    stored head count, heads stay, logits unchanged to 1e-5."""
    torch.manual_seed(0)
    model = _falcon(**kw).eval()
    infos = families.find_attention(model)
    with torch.no_grad():
        for info in infos:
            proj = next(iter(info.projections))
            proj.weight.mul_(SHARPEN)
            d = info.head_dim
            proj.weight[[r for r in range(proj.weight.shape[0]) if r % d % 2]] = 0
            info.module.dense.weight[:, [c for c in range(info.heads * d) if c % d % 2]] = 0
    before = _logits(model)
    layout = _layouts(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.0,
           pruning_ratio_dict={next(iter(i.projections)): 0.5 for i in infos})
    after = _layouts(model)
    assert [(h, kv) for h, kv, _ in after] == [(h, kv) for h, kv, _ in layout]
    assert all(d < 8 for _, _, d in after)
    assert all(i.module.head_dim == i.head_dim for i in families.find_attention(model))
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(multi_query=True),
                                dict(new_decoder_architecture=True, num_kv_heads=1)])
def test_falcon_single_kv_head_is_locked_with_a_named_reason(kw):
    """One k/v head shared by all q heads ties the heads (q.k unites every head's dims):
    the heads stay, the MLP and residual still prune, and the attention report says why."""
    from engine.families.report import attention_report, attention_widths

    torch.manual_seed(0)
    model = _falcon(**kw).eval()
    widths = attention_widths(model)
    n0 = _params(model)
    pruner = _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
                    head_pruning_ratio=0.5)
    assert [i.heads for i in families.find_attention(model)] == [8, 8]
    assert _params(model) / n0 < 0.5  # residual and MLP went
    report = attention_report(widths, model, pruner.DG.lock_reasons)
    assert report.pruned == 0 and report.total == 2
    assert report.reasons[0].startswith("Falcon with one k/v head")
    assert "one k/v head" in report.summary()
    assert _logits(model).shape == (1, 8, 128)
