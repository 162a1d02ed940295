"""GPT-OSS (transposed, interleaved fused experts with biases; attention sinks) and OLMoE
(q/k RMSNorm over all heads' concatenated width) prune and still compute what they did.

Tiny configs, random weights. Oracles: zero exactly what will be pruned, prune, and the
outputs must not move (1e-5); per-head tensors (sinks) must follow the heads they
belong to, which the outputs show because every sink is made large and distinct.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from engine import families
from engine.families.moe import experts_layout, prune_expert_widths
from engine.importance import MagnitudeImportance
from engine.pruner import BasePruner
from tests.engine.fresh_process import experts_class_after_reload

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
SHARPEN = 30.0


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _prune(model: nn.Module, **kw: Any) -> BasePruner:
    """One step with exactly what a no-code tool passes (families.pruner_kwargs)."""
    args = families.pruner_kwargs(model)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, {"input_ids": IDS}, MagnitudeImportance(), **args)
        pruner.step()
    return pruner


def _sharpen(model: nn.Module) -> None:
    """Sharp attention: a head re-split or a misplaced per-head tensor shows in the logits."""
    with torch.no_grad():
        for info in families.find_attention(model):
            info.module.q_proj.weight.mul_(SHARPEN)
            info.module.k_proj.weight.mul_(SHARPEN)


def _zero_kv_head(model: nn.Module, kv: int) -> list[int]:
    """Zero KV head `kv` and the query heads that read it (q/k/v rows, biases, o columns)
    in every layer; returns the query heads zeroed."""
    q_heads: list[int] = []
    with torch.no_grad():
        for info in families.find_attention(model):
            m, d = info.module, info.head_dim
            per = info.heads // info.kv_heads
            q_heads = list(range(kv * per, (kv + 1) * per))
            q_pos = [h * d + j for h in q_heads for j in range(d)]
            kv_pos = [kv * d + j for j in range(d)]
            for layer, pos in ((m.q_proj, q_pos), (m.k_proj, kv_pos), (m.v_proj, kv_pos)):
                layer.weight[pos] = 0
                if layer.bias is not None:
                    layer.bias[pos] = 0
            m.o_proj.weight[:, q_pos] = 0
    return q_heads


# ------------------------------------------------------------------ GPT-OSS
def _gpt_oss() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GptOssConfig(
        vocab_size=128, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
        num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"])
    model = transformers.GptOssForCausalLM(cfg).eval()
    _sharpen(model)
    with torch.no_grad():  # transformers inits these to zero: make them count
        for layer in model.model.layers:
            experts = layer.mlp.experts
            experts.gate_up_proj_bias.normal_(0, 0.5)
            experts.down_proj_bias.normal_(0, 0.5)
            layer.self_attn.sinks.copy_(torch.linspace(-3.0, 3.0, 8))  # distinct, large
    return model


def test_gpt_oss_experts_layout_is_read_from_the_module():
    """GPT-OSS stores gate_up (E, H, 2I) with gate/up interleaved, down (E, I, H)."""
    model = _gpt_oss()
    experts = model.model.layers[0].mlp.experts
    lay = experts_layout(experts)
    assert lay is not None and lay.transposed and lay.interleaved
    assert families.refresh_attributes(model).problems == []


def test_gpt_oss_ratio_half_prunes_residual_experts_and_heads():
    model = _gpt_oss()
    n0 = _params(model)
    _prune(model, pruning_ratio=0.5, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert _params(model) / n0 < 0.35
    for layer in model.model.layers:
        experts, attn = layer.mlp.experts, layer.self_attn
        assert experts.gate_up_proj.shape == (4, 32, 32)  # E stays, H 64 -> 32, 2I 64 -> 32
        assert experts.gate_up_proj_bias.shape == (4, 32)
        assert experts.down_proj.shape == (4, 16, 32)
        assert experts.down_proj_bias.shape == (4, 32)
        assert layer.mlp.router.weight.shape == (4, 32)  # the router keeps every expert
        assert layer.mlp.router.bias.shape == (4,)
        assert (attn.q_proj.out_features, attn.k_proj.out_features,
                attn.v_proj.out_features, attn.o_proj.in_features) == (32, 8, 8, 32)
        assert attn.sinks.shape == (4,)  # one sink per kept head
        assert attn.num_key_value_groups == 4
    cfg = model.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts) == (32, 16, 4)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (4, 1, 8)
    assert _logits(model).shape == (1, 8, 128)
    with torch.no_grad():
        out = model.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 11)
    rebuilt = transformers.GptOssForCausalLM(model.config)
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_gpt_oss_zeroed_expert_channels_pruned_outputs_unchanged():
    """Each expert loses its own zeroed half: gate (even) and up (odd) columns of
    gate_up_proj, their biases, and the rows of down_proj. A layout mix-up (gate/up read
    as halves, or H taken for I) would remove live channels and move the logits."""
    model = _gpt_oss()
    zeroed: list[int] = []
    with torch.no_grad():
        for n, layer in enumerate(model.model.layers):
            experts = layer.mlp.experts
            i = experts.down_proj.shape[1]
            for e in range(experts.num_experts):
                gone = sorted(torch.randperm(i, generator=torch.Generator().manual_seed(
                    10 * n + e))[: i // 2].tolist())
                cols = [2 * c for c in gone] + [2 * c + 1 for c in gone]
                experts.gate_up_proj[e][:, cols] = 0
                experts.gate_up_proj_bias[e, cols] = 0
                experts.down_proj[e, gone] = 0
                zeroed += gone if n == 0 else []
    before = _logits(model)
    done = prune_expert_widths(model, 0.5)
    assert sorted(v[:2] for v in done.values()) == [(32, 16), (32, 16)]
    assert done["model.layers.0.mlp.experts"][2] == zeroed  # each expert its own channels
    assert model.model.layers[0].mlp.experts.intermediate_size == 16
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_gpt_oss_zeroed_whole_heads_pruned_sinks_follow_outputs_unchanged():
    """KV head 1 and its 4 query heads are zeroed; whole-head pruning must take exactly
    them, with their sinks: the kept heads keep their own sinks (distinct values, and a
    wrong sink would change every kept head's softmax)."""
    model = _gpt_oss()
    gone = _zero_kv_head(model, 1)
    sinks = [layer.self_attn.sinks.detach().clone() for layer in model.model.layers]
    before = _logits(model)
    _prune(model, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)] == [
        (4, 1, 8)] * 2
    kept = [h for h in range(8) if h not in gone]
    for layer, old in zip(model.model.layers, sinks, strict=True):
        torch.testing.assert_close(layer.self_attn.sinks.detach(), old[kept], atol=0, rtol=0)
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_gpt_oss_wrong_sinks_would_show():
    """The oracle above can fail: the same heads removed with the sinks of the removed
    heads kept instead moves the logits well beyond 1e-5."""
    model = _gpt_oss()
    gone = _zero_kv_head(model, 1)
    before = _logits(model)
    _prune(model, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.copy_(torch.linspace(-3.0, 3.0, 8)[gone])
    assert (_logits(model) - before).abs().max() > 1e-3


def test_gpt_oss_pruned_round_trips_through_save_pretrained(tmp_path):
    model = _gpt_oss()
    _prune(model, pruning_ratio=0.5, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    expect = _logits(model)
    model.save_pretrained(tmp_path)
    again = transformers.GptOssForCausalLM.from_pretrained(tmp_path).eval()
    experts = again.model.layers[0].mlp.experts
    assert experts.down_proj.shape == (4, 16, 32)
    assert again.model.layers[0].self_attn.sinks.shape == (4,)
    torch.testing.assert_close(_logits(again), expect, atol=1e-5, rtol=0)


def test_gpt_oss_lifted_experts_pickle_in_a_fresh_process(tmp_path):
    """torch.save(model) names `LiftedGptOssExperts`; its module is transformers'
    `gpt_oss` (snake case), which a fresh process must find."""
    model = _gpt_oss()
    _prune(model, pruning_ratio=0.5)
    assert experts_class_after_reload(model, tmp_path) == "LiftedGptOssExperts"


# ----------------------------------------------- OLMoE: q/k norms over all heads
def _olmo(name: str) -> nn.Module:
    torch.manual_seed(0)
    extra: dict[str, Any] = {"num_experts": 4, "num_experts_per_tok": 2} if name in (
        "Olmoe", "FlexOlmo") else {}
    if name == "Olmo3":
        extra["sliding_window"] = 4
    cfg = getattr(transformers, f"{name}Config")(
        vocab_size=128, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=0, bos_token_id=None, eos_token_id=None, **extra)
    model = getattr(transformers, f"{name}ForCausalLM")(cfg).eval()
    _sharpen(model)
    with torch.no_grad():  # norm weights away from 1: a misplaced weight would show
        for info in families.find_attention(model):
            for norm in (info.module.q_norm, info.module.k_norm):
                norm.weight.uniform_(0.5, 1.5)
    return model


OLMO = ["Olmoe", "Olmo2", "Olmo3", "FlexOlmo"]


@pytest.mark.parametrize("name", OLMO)
def test_full_width_qk_norms_zeroed_heads_pruned_outputs_unchanged(name):
    """RMSNorm(H * head_dim) before the view: removing zeroed heads would divide the same
    sum of squares by a smaller width; the norm keeps its original divisor instead."""
    model = _olmo(name)
    attn = model.model.layers[0].self_attn
    assert attn.q_norm.weight.shape == (64,) and attn.k_norm.weight.shape == (16,)
    _zero_kv_head(model, 1)
    before = _logits(model)
    _prune(model, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)] == [
        (4, 1, 8)] * 2
    assert attn.q_norm.weight.shape == (32,) and attn.k_norm.weight.shape == (8,)
    eps = model.config.rms_norm_eps
    assert attn.q_norm.variance_epsilon == pytest.approx(2 * eps)  # 64 / 32
    assert attn.k_norm.variance_epsilon == pytest.approx(2 * eps)  # 16 / 8
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_full_width_qk_norms_without_the_kept_divisor_the_oracle_fails(monkeypatch):
    """The control: with the width stamp switched off, the same prune moves the logits."""
    import engine.graph.dependency as dependency

    monkeypatch.setattr(dependency, "record_norm_widths", lambda model: 0)
    model = _olmo("Olmoe")
    _zero_kv_head(model, 1)
    before = _logits(model)
    _prune(model, pruning_ratio=0.0, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert model.model.layers[0].self_attn.q_norm.weight.shape == (32,)
    assert (_logits(model) - before).abs().max() > 1e-3


def test_per_head_qk_norms_are_left_alone():
    """Qwen3 normalises each head alone (RMSNorm(head_dim)): nothing is stamped or folded."""
    from engine.families.qk_norm import full_width_qk_norms

    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(
        vocab_size=128, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    assert full_width_qk_norms(transformers.Qwen3ForCausalLM(cfg)) == []
    assert len(full_width_qk_norms(_olmo("Olmoe"))) == 4  # q and k of 2 layers


def test_olmoe_zeroed_expert_channels_pruned_outputs_unchanged():
    """OLMoE's experts (Mixtral's layout: gate rows then up rows) lose their own zeroed half."""
    model = _olmo("Olmoe")
    with torch.no_grad():
        for n, layer in enumerate(model.model.layers):
            experts = layer.mlp.experts
            assert not experts_layout(experts).transposed
            i = experts.down_proj.shape[2]
            for e in range(experts.num_experts):
                gone = torch.randperm(i, generator=torch.Generator().manual_seed(10 * n + e))
                gone = sorted(gone[: i // 2].tolist())
                experts.gate_up_proj[e, gone] = 0
                experts.gate_up_proj[e, [i + c for c in gone]] = 0
                experts.down_proj[e, :, gone] = 0
    before = _logits(model)
    done = prune_expert_widths(model, 0.5)
    assert sorted(v[:2] for v in done.values()) == [(32, 16), (32, 16)]
    torch.testing.assert_close(_logits(model), before, atol=1e-5, rtol=0)


def test_olmoe_ratio_half_with_heads_prunes_and_reloads(tmp_path):
    """Residual, experts and heads all halve; the router keeps its 4 experts; the engine's
    own reload is exact, and save_pretrained / from_pretrained (one config epsilon for
    every norm) stays within the bound the refresh reports."""
    import engine

    model = _olmo("Olmoe")
    n0 = _params(model)
    _prune(model, pruning_ratio=0.5, prune_num_heads=True, prune_head_dims=False,
           head_pruning_ratio=0.5)
    assert _params(model) / n0 < 0.35
    layer = model.model.layers[0]
    assert layer.mlp.experts.gate_up_proj.shape == (4, 32, 32)
    assert layer.mlp.gate.weight.shape == (4, 32)
    cfg = model.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_experts) == (32, 16, 4)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 1)
    problems = families.refresh_attributes(model).problems
    assert len(problems) == 1 and "from_pretrained uses config.rms_norm_eps" in problems[0]
    expect = _logits(model)
    with torch.no_grad():
        assert model.generate(IDS, max_new_tokens=2, do_sample=False,
                              pad_token_id=0).shape == (1, 10)
    torch.manual_seed(1)
    fresh = _olmo("Olmoe")
    engine.load_state_dict(fresh, engine.state_dict(model), example_inputs={"input_ids": IDS})
    torch.testing.assert_close(_logits(fresh), expect, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    again = transformers.OlmoeForCausalLM.from_pretrained(tmp_path).eval()
    assert again.model.layers[0].self_attn.q_norm.weight.shape == (32,)
    torch.testing.assert_close(_logits(again), expect, atol=1e-3, rtol=0)


# ------------------------------------------------------- MACs of fused experts
def _mixtral() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.MixtralConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        num_local_experts=4, num_experts_per_tok=2)
    return transformers.MixtralForCausalLM(cfg).eval()


def _expert_macs(model: nn.Module, impl: str | None = None) -> tuple[list[int], int]:
    from engine.utils import count_ops_and_params

    if impl is not None:
        model.set_experts_implementation(impl)
    total, _, layer_macs, _ = count_ops_and_params(model, {"input_ids": IDS}, layer_wise=True)
    return [layer_macs[layer.mlp.experts] for layer in model.model.layers], total


@pytest.mark.parametrize("impl", ["eager", "grouped_mm"])
def test_mixtral_experts_macs_count_routed_work(impl):
    """8 tokens, top_k = 2 of E = 4 experts, H = 64, I = 128, no biases:
    per (token, expert) pair gate_up H * 2I = 64 * 256 = 16384 and down I * H = 128 * 64
    = 8192, i.e. 24576; 8 tokens * 2 experts = 16 pairs -> 393216 per layer (all four
    experts would be 786432, and grouped_mm used to count 0)."""
    model = _mixtral()
    experts, total = _expert_macs(model, impl)
    assert experts == [16 * (64 * 256 + 128 * 64)] * 2 == [393216] * 2
    assert total == _expert_macs(_mixtral(), "eager")[1]  # eager and grouped_mm agree


def test_gpt_oss_experts_macs_count_routed_work_with_biases():
    """8 tokens, top_k = 2 of 4, H = 64, I = 32, with biases: gate_up 64 * 64 = 4096 plus
    its bias 2I = 64, down 32 * 64 = 2048 plus its bias H = 64: 6272 per pair, 16 pairs
    -> 100352 per layer."""
    model = _gpt_oss()
    experts, total = _expert_macs(model)
    assert experts == [16 * (64 * 64 + 64 + 32 * 64 + 64)] * 2 == [100352] * 2
    assert total == _expert_macs(_gpt_oss(), "eager")[1]


def test_fused_experts_macs_preview_equals_pruned_gpt_oss():
    """The plan preview (a weightless meta copy, whose experts only return a shape) counts
    the same routed work as the pruned model itself: 16 pairs of (32 * 32 + 32 + 16 * 32
    + 32) = 1600 after H 64 -> 32 and I 32 -> 16."""
    from engine.plan.apply import apply_plan
    from engine.plan.preview import Previewer
    from engine.plan.schema import PruningPlan
    from engine.utils import count_ops_and_params

    model = _gpt_oss()
    plan = PruningPlan(pruning_ratio=0.5)
    preview = Previewer(model, {"input_ids": IDS}).preview(plan)
    apply_plan(model, {"input_ids": IDS}, plan)
    macs, params = count_ops_and_params(model, {"input_ids": IDS})
    assert (preview.macs_after, preview.params_after) == (macs, params)
    assert _expert_macs(model)[0] == [16 * 1600] * 2
