"""T5 (relative attention bias, inferred heads) and Mixtral (fused experts) prune and still work.

Tiny configs, random weights. The oracle is the one of test_attention_equivalence:
zero exactly what will be pruned, prune, and the outputs must not move (1e-5).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from engine import families
from engine.families.refresh import RefreshReport
from engine.families.t5 import fold_decoder_output_scale
from engine.importance import MagnitudeImportance
from engine.pruner import BasePruner
from tests.engine.fresh_process import experts_class_after_reload

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
T5_IN = {"input_ids": IDS, "decoder_input_ids": IDS[:, :5]}
SHARPEN = 30.0


def _t5(encoder_only: bool = False) -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.T5Config(
        vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
        num_heads=4, decoder_start_token_id=0, dropout_rate=0.0)
    cls = transformers.T5EncoderModel if encoder_only else transformers.T5ForConditionalGeneration
    model = cls(cfg).eval()
    with torch.no_grad():  # sharp attention: a re-split of heads would show in the outputs
        for info in families.find_attention(model):
            info.module.q.weight.mul_(SHARPEN)
    return model


def _inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    return {"input_ids": IDS} if isinstance(model, transformers.T5EncoderModel) else T5_IN


def _outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    return [v for v in out.values() if isinstance(v, torch.Tensor)]


def _prune(model: nn.Module, inputs: Any, **kw: Any) -> BasePruner:
    args = families.pruner_kwargs(model)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, inputs, MagnitudeImportance(), **args)
        pruner.step()
    return pruner


def _t5_layouts(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(m.n_heads, m.key_value_proj_dim, m.inner_dim) for m in model.modules()
            if isinstance(m, transformers.models.t5.modeling_t5.T5Attention)]


def _zero_t5_dims(model: nn.Module, dims: list[int]) -> None:
    """Zero head dims `dims` of every head of every T5 attention (q/k/v rows, o columns)."""
    with torch.no_grad():
        for info in families.find_attention(model):
            m, h, d = info.module, info.heads, info.head_dim
            pos = [i * d + j for i in range(h) for j in dims]
            for layer in (m.q, m.k, m.v):
                layer.weight[pos] = 0
            m.o.weight[:, pos] = 0


# --------------------------------------------------------------------- T5
@pytest.mark.parametrize("encoder_only", [False, True])
def test_t5_zeroed_head_dims_pruned_outputs_unchanged(encoder_only):
    # float64: random-init T5's activations are large enough that float32 summation
    # order alone moves outputs by ~1.5e-5; in double the check is exact to 1e-5 honestly
    model = _t5(encoder_only).double()
    inputs = _inputs(model)
    before_layout = _t5_layouts(model)
    _zero_t5_dims(model, list(range(1, 16, 2)))
    before = _outputs(model, inputs)
    ratios = {info.module.q: 0.5 for info in families.find_attention(model)}
    _prune(model, inputs, pruning_ratio=0.0, pruning_ratio_dict=ratios)
    # heads stay. One dim of each head stands for the head itself (the relative bias has
    # one column per head and follows whole heads), so 15 of 16 dims are prunable and
    # ratio 0.5 removes 7 of them: every removed dim is a zeroed one
    assert _t5_layouts(model) == [(h, d - 7, h * (d - 7)) for h, d, _ in before_layout]
    assert model.config.d_kv == 9 and model.config.num_heads == 4
    bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert bias.weight.shape[1] == 4
    after = _outputs(model, inputs)
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _zero_t5_heads(model: nn.Module, heads: list[int]) -> None:
    """Zero whole heads `heads` of every T5 attention, and their relative-bias columns."""
    with torch.no_grad():
        for info in families.find_attention(model):
            m, d = info.module, info.head_dim
            pos = [i * d + j for i in heads for j in range(d)]
            for layer in (m.q, m.k, m.v):
                layer.weight[pos] = 0
            m.o.weight[:, pos] = 0
            if m.has_relative_attention_bias:
                m.relative_attention_bias.weight[:, heads] = 0


@pytest.mark.parametrize("encoder_only", [False, True])
def test_t5_zeroed_whole_heads_pruned_outputs_unchanged(encoder_only):
    """The relative bias of layer 0 is shared by every layer of its stack: a head goes from
    all of them and from the bias's columns, and `n_heads` follows. Cross-attention layers
    share one zero bias of `n_heads` made by the first of them: its heads stay, with a reason."""
    model = _t5(encoder_only)
    inputs = _inputs(model)
    _zero_t5_heads(model, [1, 3])
    before = _outputs(model, inputs)
    pruner = _prune(model, inputs, pruning_ratio=0.0, prune_num_heads=True,
                    prune_head_dims=False, head_pruning_ratio=0.5)
    got = {n: (m.n_heads, m.key_value_proj_dim, m.inner_dim) for n, m in model.named_modules()
           if isinstance(m, transformers.models.t5.modeling_t5.T5Attention)}
    assert {v for n, v in got.items() if "SelfAttention" in n} == {(2, 16, 32)}
    cross = [n for n in got if "EncDecAttention" in n]
    assert {got[n] for n in cross} == ({(4, 16, 64)} if cross else set())
    if cross:
        # the zero bias is a fixed-size tensor: the graph locks the heads it meets
        assert any("locked" in p for p in pruner._heads.problems)
    else:
        assert model.config.num_heads == 2  # every layer agrees: the config follows
    bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert bias.weight.shape == (32, 2)
    for a, b in zip(_outputs(model, inputs), before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_t5_decoder_output_scale_is_folded_when_d_model_changes():
    """What a rebuilt model computes (d_model**-0.5) is made to equal the original."""
    model = _t5()
    before = _outputs(model, T5_IN)[0]
    model.config.d_model = 32  # as the refresh writes it after the residual width halves
    report = RefreshReport()
    fold_decoder_output_scale(model, report)
    assert model.model_dim == 32 and report.changed == ["model_dim: 64 -> 32"]
    torch.testing.assert_close(_outputs(model, T5_IN)[0], before, atol=1e-5, rtol=0)


def test_t5_pruned_round_trips_through_save_pretrained(tmp_path):
    model = _t5()
    _prune(model, T5_IN, pruning_ratio=0.5)
    expect = _outputs(model, T5_IN)
    model.save_pretrained(tmp_path)
    again = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert again.config.d_model == model.config.d_model < 64
    assert again.config.d_ff == model.config.d_ff < 128
    for a, b in zip(_outputs(again, T5_IN), expect, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert again.generate(IDS, max_new_tokens=3, do_sample=False).shape[0] == 1


# ---------------------------------------------------------------- Mixtral
def _mixtral() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.MixtralConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        num_local_experts=4, num_experts_per_tok=2)
    model = transformers.MixtralForCausalLM(cfg).eval()
    with torch.no_grad():
        for info in families.find_attention(model):
            info.module.q_proj.weight.mul_(SHARPEN)
            info.module.k_proj.weight.mul_(SHARPEN)
    return model


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _experts(model: nn.Module) -> list[nn.Module]:
    return [layer.mlp.experts for layer in model.model.layers]


def _logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_mixtral_ratio_half_prunes_residual_and_experts_and_generates():
    model = _mixtral()
    n0 = _params(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5)
    kept = _params(model) / n0
    assert kept < 0.35  # was 1.0: the residual and every expert were locked
    for experts in _experts(model):
        assert experts.gate_up_proj.shape == (4, 128, 32)  # E stays, 2I = 128, H = 32
        assert experts.down_proj.shape == (4, 32, 64)
    for layer in model.model.layers:
        attn = layer.self_attn  # q/k/v agree with 8 heads and 2 KV heads of 8
        assert (attn.q_proj.out_features, attn.k_proj.out_features,
                attn.v_proj.out_features) == (64, 16, 16)
        assert layer.mlp.gate.weight.shape == (4, 32)  # the router keeps every expert
    cfg = model.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts) == (32, 64, 4)
    assert _logits(model).shape == (1, 8, 128)
    with torch.no_grad():
        out = model.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 11)
    rebuilt = transformers.MixtralForCausalLM(model.config)
    assert _params(rebuilt) == _params(model)  # the config describes the pruned model


def test_mixtral_zeroed_expert_channels_pruned_outputs_unchanged():
    """Each expert loses its own zeroed half (different channels per expert)."""
    from engine.families.moe import prune_expert_widths

    model = _mixtral()
    zeroed: list[int] = []
    with torch.no_grad():
        for experts in _experts(model):
            i = experts.down_proj.shape[2]
            for e in range(experts.num_experts):
                gone = [c for c in range(i) if (c // (e + 1)) % 2 == 1][: i // 2]
                gone += [c for c in range(i) if c not in gone][: i // 2 - len(gone)]
                experts.gate_up_proj[e, gone] = 0
                experts.gate_up_proj[e, [i + c for c in gone]] = 0
                experts.down_proj[e, :, gone] = 0
                zeroed += sorted(gone) if experts is _experts(model)[0] else []
    before = _logits(model)
    done = prune_expert_widths(model, 0.5)
    assert sorted(v[:2] for v in done.values()) == [(128, 64), (128, 64)]
    assert done["model.layers.0.mlp.experts"][2] == zeroed  # each expert its own channels
    assert len({tuple(zeroed[k * 64:(k + 1) * 64]) for k in range(4)}) == 4
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_mixtral_zeroed_whole_kv_head_pruned_outputs_unchanged():
    """Whole heads under GQA: KV head 1 with its 4 query heads goes, in every layer."""
    model = _mixtral()
    with torch.no_grad():
        for info in families.find_attention(model):
            m, d = info.module, info.head_dim
            q_pos = [h * d + j for h in range(4, 8) for j in range(d)]
            kv_pos = [d + j for j in range(d)]
            m.q_proj.weight[q_pos] = 0
            m.k_proj.weight[kv_pos] = 0
            m.v_proj.weight[kv_pos] = 0
            m.o_proj.weight[:, q_pos] = 0
    before = _logits(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.0, prune_num_heads=True,
           prune_head_dims=False, head_pruning_ratio=0.5)
    assert [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)] == [
        (4, 1, 8)] * 2
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (4, 1)
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_mixtral_pruned_round_trips_through_save_pretrained(tmp_path):
    model = _mixtral()
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5)
    expect = _logits(model)
    model.save_pretrained(tmp_path)
    again = transformers.MixtralForCausalLM.from_pretrained(tmp_path).eval()
    assert again.model.layers[0].mlp.experts.down_proj.shape == (4, 32, 64)
    torch.testing.assert_close(_logits(again), expect, atol=1e-5, rtol=0)


def test_lifted_experts_pickle_in_a_fresh_process(tmp_path):
    """torch.save(model) of a pruned model names the lifted class; it must resolve again."""
    model = _mixtral()
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5)
    assert experts_class_after_reload(model, tmp_path) == "LiftedMixtralExperts"


def test_mixtral_odd_widths_fall_back_to_the_eager_experts_loop():
    """Ratio 0.3 leaves 45 / 90 wide experts, which `torch._grouped_mm` refuses (16-byte
    strides): the lifted experts run transformers' eager loop and say so."""
    model = _mixtral()
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.3)
    experts = _experts(model)[0]
    assert experts.down_proj.shape[1:] == (45, 90)
    assert _logits(model).shape == (1, 8, 128)
    problems = families.refresh_attributes(model).problems
    assert any("set_experts_implementation('eager')" in p for p in problems)
    model.set_experts_implementation("eager")
    again = _logits(model)
    model.set_experts_implementation("grouped_mm")
    torch.testing.assert_close(_logits(model), again, atol=1e-5, rtol=0)


def test_mixtral_history_replays_onto_a_fresh_model():
    """engine.state_dict keeps the pruning history, the experts' own widths included."""
    import engine

    model = _mixtral()
    pruner = _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
                    prune_head_dims=False, head_pruning_ratio=0.5)
    assert any(n.startswith("experts:") for n, _, _ in pruner.pruning_history())
    torch.manual_seed(1)
    fresh = transformers.MixtralForCausalLM(model.config.__class__(
        **{**model.config.to_dict(), "hidden_size": 64, "intermediate_size": 128,
           "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 8})).eval()
    engine.load_state_dict(fresh, engine.state_dict(model), example_inputs={"input_ids": IDS})
    assert _experts(fresh)[0].down_proj.shape == _experts(model)[0].down_proj.shape
    assert fresh.config.to_dict() == model.config.to_dict()
    torch.testing.assert_close(_logits(fresh), _logits(model), atol=1e-5, rtol=0)


MOE_FAMILIES = {
    "Qwen3Moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                     head_dim=8),
    "Qwen2Moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                     shared_expert_intermediate_size=64),
    "Olmoe": dict(num_experts=4, num_experts_per_tok=2),
}


@pytest.mark.parametrize("name", list(MOE_FAMILIES))
def test_other_fused_moe_families_prune_and_their_config_rebuilds_them(name):
    """Experts' widths go to `moe_intermediate_size` where the config has it, shared experts'
    to `shared_expert_intermediate_size`: the refreshed config rebuilds the pruned model."""
    torch.manual_seed(0)
    cfg = getattr(transformers, f"{name}Config")(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        **MOE_FAMILIES[name])
    model = getattr(transformers, f"{name}ForCausalLM")(cfg).eval()
    n0 = _params(model)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5)
    assert _params(model) / n0 < 0.4  # all three kept 0.89-1.0 before the experts were lifted
    assert families.refresh_attributes(model).problems == []
    with torch.no_grad():
        assert model.generate(IDS, max_new_tokens=2, do_sample=False,
                              pad_token_id=0).shape == (1, 10)
    if name == "Olmoe":
        return  # its q/k norms span hidden_size in the config: a rebuild cannot say otherwise
    rebuilt = type(model)(model.config)
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_t5_encoder_whole_heads_round_trip_through_save_pretrained(tmp_path):
    """Every layer agrees on 2 heads: config.num_heads says so and the relative bias's
    2 columns reload."""
    model = _t5(encoder_only=True)
    _prune(model, {"input_ids": IDS}, pruning_ratio=0.5, prune_num_heads=True,
           head_pruning_ratio=0.5)
    assert model.config.num_heads == 2
    expect = _outputs(model, {"input_ids": IDS})
    model.save_pretrained(tmp_path)
    again = transformers.T5EncoderModel.from_pretrained(tmp_path).eval()
    bias = again.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert bias.weight.shape[1] == 2
    for a, b in zip(_outputs(again, {"input_ids": IDS}), expect, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_t5_cross_attention_heads_stay_with_a_named_reason():
    """Heads only (no head dims): self-attention loses half its heads, the cross-attention
    keeps all 4, and the attention report names the cross-attention reason."""
    from engine.families.report import attention_report, attention_widths

    model = _t5()
    widths = attention_widths(model)
    pruner = _prune(model, T5_IN, pruning_ratio=0.0, prune_num_heads=True,
                    prune_head_dims=False, head_pruning_ratio=0.5)
    report = attention_report(widths, model, pruner.DG.lock_reasons)
    cross = sorted(n for n in widths if n.endswith("EncDecAttention"))
    assert len(cross) == 2 and sorted(report.full_width) == cross
    assert report.pruned == report.total - 2 == 4
    assert report.reasons[0].startswith("T5 cross-attention (EncDecAttention)")
    assert "EncDecAttention" in report.summary()


@pytest.mark.parametrize("heads", [False, True])
def test_mixtral_experts_prune_through_the_plan_path_with_an_exact_preview(heads, tmp_path):
    """Previewer + apply_plan (what the GUI and CLI run), not BasePruner.step(): the experts
    narrow too, the preview's MACs and params equal the pruned model's, the router keeps
    its 4 experts, the config follows and save_pretrained / from_pretrained reloads it."""
    from engine.plan.apply import apply_plan
    from engine.plan.preview import Previewer
    from engine.plan.schema import PruningPlan
    from engine.utils import count_ops_and_params

    model = _mixtral()
    n0 = _params(model)
    plan = PruningPlan(pruning_ratio=0.5, prune_num_heads=heads,
                       head_pruning_ratio=0.5 if heads else 0.0)
    inputs = {"input_ids": IDS}
    preview = Previewer(model, inputs).preview(plan)
    assert _params(model) == n0  # the preview touched nothing
    apply_plan(model, inputs, plan)
    macs, params = count_ops_and_params(model, inputs)
    assert (preview.macs_after, preview.params_after) == (macs, params) == (macs, _params(model))
    assert params / n0 < 0.35
    for layer in model.model.layers:
        assert layer.mlp.experts.down_proj.shape[2] == 64  # was 128
        assert layer.mlp.gate.weight.shape[0] == 4
    assert model.config.intermediate_size == 64 and model.config.num_local_experts == 4
    expected = _logits(model)
    model.save_pretrained(tmp_path / "hf")
    reloaded = type(model).from_pretrained(tmp_path / "hf").eval()
    torch.testing.assert_close(_logits(reloaded), expected, atol=1e-5, rtol=0)
