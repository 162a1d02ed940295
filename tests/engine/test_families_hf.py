"""Hugging Face families (Llama GQA, Qwen2, Mistral, BERT, ViT, GPT-2) prune with no hand-patching.

Tiny configs, random weights. Every test checks the new head counts/dims and the
HF config, not only that forward runs; oracles zero the weights of what will be
removed and require the outputs to stay equal.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
from transformers.pytorch_utils import Conv1D  # noqa: E402

from engine import families  # noqa: E402
from engine.function import default_pruners  # noqa: E402
from engine.graph import DependencyGraph  # noqa: E402
from engine.importance import MagnitudeImportance  # noqa: E402
from engine.pruner import BasePruner  # noqa: E402

IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
PIX = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
CAUSAL = ("llama", "qwen2", "mistral", "gpt2")
ROPE = ("llama", "qwen2", "mistral")


def _decoder(cls_name: str, cfg_name: str) -> nn.Module:
    cfg = getattr(transformers, cfg_name)(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return getattr(transformers, cls_name)(cfg)


BUILDERS = {
    "llama": lambda: _decoder("LlamaForCausalLM", "LlamaConfig"),
    "qwen2": lambda: _decoder("Qwen2ForCausalLM", "Qwen2Config"),
    "mistral": lambda: _decoder("MistralForCausalLM", "MistralConfig"),
    "bert": lambda: transformers.BertForSequenceClassification(
        transformers.BertConfig(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=64,
        )
    ),
    "gpt2": lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=128,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        )
    ),
    "vit": lambda: transformers.ViTForImageClassification(
        transformers.ViTConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
    ),
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return BUILDERS[name]().eval()


def inputs(name: str) -> torch.Tensor:
    return PIX if name == "vit" else IDS


def run(model: nn.Module, name: str) -> torch.Tensor:
    with torch.no_grad():
        return families.model_output(model(inputs(name)))


def prune(model: nn.Module, name: str, **kw) -> BasePruner:
    """One step with exactly what a no-code tool passes (families.pruner_kwargs)."""
    args = families.pruner_kwargs(model)
    if not kw.pop("heads", False):
        args.pop("num_heads", None)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = BasePruner(model, inputs(name), MagnitudeImportance(), **args)
        pruner.step()
    return pruner


def heads_of(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(i.heads, i.kv_heads, i.head_dim) for i in families.find_attention(model)]


def generate(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=0)


# ------------------------------------------------------------------ Conv1D
def test_conv1d_pruner_slices_transposed_weight_and_nf():
    torch.manual_seed(0)
    layer = Conv1D(6, 4)  # nf=6 out, nx=4 in, weight (4, 6)
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    pruner = default_pruners()[Conv1D]
    pruner.prune_out_channels(layer, [1, 4])
    assert layer.nf == 4 and tuple(layer.weight.shape) == (4, 4)
    assert torch.equal(layer.weight.detach(), w[:, [0, 2, 3, 5]])
    assert torch.equal(layer.bias.detach(), b[[0, 2, 3, 5]])
    pruner.prune_in_channels(layer, [0])
    assert layer.nx == 3 and torch.equal(layer.weight.detach(), w[1:][:, [0, 2, 3, 5]])
    assert tuple(layer(torch.randn(2, 5, 3)).shape) == (2, 5, 4)


def test_engine_never_imports_transformers():
    code = (
        "import sys, engine, engine.families, engine.function, engine.graph; "
        "assert 'transformers' not in sys.modules and 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gpt2_groups_are_rooted_at_conv1d():
    model = build("gpt2")
    dg = DependencyGraph().build_dependency(model, IDS, output_transform=families.model_output)
    groups = list(dg.get_all_groups(root_module_types=families.root_module_types_for(model)))
    widths = {dg.module2name[g[0].dep.target.module]: len(g[0].idxs) for g in groups}
    # the residual width (tied wte/lm_head included), both MLPs, and c_attn's head dims
    # (the probe passes once refresh_attributes sets head_dim/split_size)
    assert widths == {
        "transformer.h.0.attn.c_proj": 64,
        "transformer.h.0.attn.c_attn": 192,
        "transformer.h.0.mlp.c_fc": 256,
        "transformer.h.1.attn.c_attn": 192,
        "transformer.h.1.mlp.c_fc": 256,
    }
    by_root = {dg.module2name[g[0].dep.target.module]: g for g in groups}
    hidden = {dg.module2name[it.dep.target.module] for it in by_root["transformer.h.0.attn.c_proj"]}
    assert {"transformer.wte", "transformer.wpe", "transformer.ln_f"} <= hidden
    attn = by_root["transformer.h.0.attn.c_attn"]
    # a head-dim unit: dim d of every head of q, k and v at once
    assert attn.channel_sets()[0] == [h * 16 + p * 64 for p in range(3) for h in range(4)]
    assert len(attn.channel_sets()) == 16


# ---------------------------------------------------------- num_heads, RoPE
def test_detect_num_heads_per_family():
    llama, bert, gpt2, vit = (build(n) for n in ("llama", "bert", "gpt2", "vit"))
    attn = llama.model.layers[0].self_attn
    heads = families.detect_num_heads(llama)
    assert (heads[attn.q_proj], heads[attn.k_proj], heads[attn.v_proj]) == (8, 2, 2)
    assert len(heads) == 6
    sa = bert.bert.encoder.layer[1].attention.self
    assert families.detect_num_heads(bert)[sa.value] == 4
    assert families.detect_num_heads(gpt2) == {b.attn.c_attn: 4 for b in gpt2.transformer.h}
    assert set(families.detect_num_heads(vit).values()) == {4}
    assert heads_of(llama) == [(8, 2, 8)] * 2 and heads_of(gpt2) == [(4, 4, 16)] * 2


def test_rope_head_dims_refused_with_clear_message():
    llama = build("llama")
    assert families.rope_attention(llama) == [f"model.layers.{i}.self_attn" for i in (0, 1)]
    with pytest.raises(families.RopeHeadDimError, match="prune_num_heads=True"):
        families.check_head_dim_pruning(llama, prune_head_dims=True)
    families.check_head_dim_pruning(llama, prune_head_dims=False)
    families.check_head_dim_pruning(build("bert"), prune_head_dims=True)  # no RoPE: allowed


def test_rope_graph_offers_whole_heads_only():
    """q/k of a RoPE model form no head-dim unit; the fine (per-head) classes are whole heads."""
    llama = build("llama")
    dg = DependencyGraph().build_dependency(llama, IDS, output_transform=families.model_output)
    q = llama.model.layers[0].self_attn.q_proj
    group = next(g for g in dg.get_all_groups() if g[0].dep.target.module is q)
    assert group.channel_sets() == [list(range(64))]  # all or nothing: head_dim is fixed
    state = dg.port_of(q, group[0].dep.handler)
    fine = state.fine.reshape(8, 8)  # (heads, head_dim)
    assert all(len(set(row.tolist())) == 1 for row in fine)  # one class per head
    # GQA: q heads 0-3 read KV head 0, q heads 4-7 KV head 1; each KV unit is one class
    q_units = fine[:, 0].tolist()
    assert q_units[:4] == [q_units[0]] * 4 and q_units[4:] == [q_units[4]] * 4
    assert q_units[0] != q_units[4]
    k = llama.model.layers[0].self_attn.k_proj
    k_fine = dg.index.port(k).fine.reshape(2, 8)
    assert k_fine[:, 0].tolist() == [q_units[0], q_units[4]]


# ----------------------------------------------------------- hidden + MLP
@pytest.mark.parametrize("name", list(BUILDERS))
def test_hidden_and_mlp_halved_config_refreshed(name):
    model = build(name)
    shape = tuple(run(model, name).shape)
    prune(model, name, pruning_ratio=0.5)
    cfg = model.config
    assert cfg.hidden_size == 32
    if name in ROPE:  # the RMSNorm weights (unwrapped Parameters) follow the hidden dim
        norms = [m for n, m in model.named_modules() if type(m).__name__.endswith("RMSNorm")]
        assert len(norms) == 5 and all(tuple(m.weight.shape) == (32,) for m in norms)
        assert tuple(model.model.embed_tokens.weight.shape) == (128, 32)
        assert model.model.layers[0].mlp.down_proj.in_features == 64
    if name == "gpt2":
        assert cfg.n_inner == 128 and model.transformer.h[1].mlp.c_fc.nf == 128
        assert model.lm_head.in_features == 32  # tied to wte, pruned through it
    else:
        assert cfg.intermediate_size == 64
    # heads stay; every head of q, k and v also loses half its dims where one group holds
    # them (GPT-2's fused c_attn; BERT/ViT through families.coupling); RoPE fixes head_dim
    expected = {"bert": (4, 4, 8), "gpt2": (4, 4, 8), "vit": (4, 4, 8)}.get(name, (8, 2, 8))
    assert heads_of(model) == [expected] * 2
    assert tuple(run(model, name).shape) == shape
    if name in CAUSAL:
        assert tuple(generate(model).shape) == (1, 11)


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_global_pruning_keeps_q_k_v_head_size_equal(name):
    """BERT/ViT view q, k and v with ONE head size: ranked globally, their head dims must
    still shrink together (families.coupling makes q/k/v one group), never apart."""
    model = build(name)
    shape = tuple(run(model, name).shape)
    prune(model, name, pruning_ratio=0.4, global_pruning=True)
    for info in families.find_attention(model):
        widths = {p.out_features for p in info.projections}
        assert widths == {info.heads * info.head_dim} and info.heads == 4
    problems = families.refresh_attributes(model).problems  # per-layer sizes may differ
    assert not [p for p in problems if "q/k" in p or "q width" in p]
    assert tuple(run(model, name).shape) == shape


def test_bert_zero_head_dims_removed_outputs_unchanged():
    """Dims 12..15 of every head zeroed in query/key/value and output.dense: pruned away."""
    model = build("bert")
    dims = [h * 16 + d for h in range(4) for d in range(12, 16)]
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            for lin in (
                layer.attention.self.query,
                layer.attention.self.key,
                layer.attention.self.value,
            ):
                lin.weight[dims] = 0
                lin.bias[dims] = 0
            layer.attention.output.dense.weight[:, dims] = 0
    before = run(model, "bert")
    qs = {layer.attention.self.query: 0.25 for layer in model.bert.encoder.layer}
    prune(model, "bert", pruning_ratio=0.0, pruning_ratio_dict=qs)
    sa = model.bert.encoder.layer[0].attention.self
    assert (sa.num_attention_heads, sa.attention_head_size, sa.all_head_size) == (4, 12, 48)
    torch.testing.assert_close(run(model, "bert"), before, atol=1e-5, rtol=0)


# -------------------------------------------------------------- whole heads
@pytest.mark.parametrize("name", list(BUILDERS))
def test_whole_heads_halved_attributes_and_config(name):
    model = build(name)
    shape = tuple(run(model, name).shape)
    prune(
        model,
        name,
        pruning_ratio=0.0,
        heads=True,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    cfg = model.config
    assert cfg.hidden_size == 64
    if name in ROPE:
        assert heads_of(model) == [(4, 1, 8)] * 2  # 8 q / 2 kv -> 4 / 1: a KV head + its 4 q
        for layer in model.model.layers:
            a = layer.self_attn
            assert (a.q_proj.out_features, a.k_proj.out_features, a.o_proj.in_features) == (
                32,
                8,
                32,
            )
            assert a.num_key_value_groups == 4 and a.head_dim == 8
        assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (4, 1, 8)
    elif name == "bert":
        assert heads_of(model) == [(2, 2, 16)] * 2
        sa = model.bert.encoder.layer[0].attention.self
        assert (sa.num_attention_heads, sa.attention_head_size, sa.all_head_size) == (2, 16, 32)
        assert cfg.num_attention_heads == 2
    elif name == "gpt2":
        assert heads_of(model) == [(2, 2, 16)] * 2
        a = model.transformer.h[0].attn
        assert (a.num_heads, a.head_dim, a.split_size, a.embed_dim, a.c_attn.nf) == (
            2,
            16,
            32,
            32,
            96,
        )
        assert cfg.n_head == 2
    else:
        assert heads_of(model) == [(2, 2, 16)] * 2
        assert model.vit.layers[0].attention.num_attention_heads == 2
        assert cfg.num_attention_heads == 2
    assert tuple(run(model, name).shape) == shape
    if name in CAUSAL:
        assert tuple(generate(model).shape) == (1, 11)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_pruned_config_rebuilds_the_same_model(name):
    """hidden, MLP and heads all halved: `type(model)(model.config)` loads the pruned weights."""
    model = build(name)
    prune(
        model,
        name,
        pruning_ratio=0.5,
        heads=True,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    rebuilt = type(model)(model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(run(rebuilt, name), run(model, name), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ oracles
def test_llama_zero_kv_head_removed_outputs_unchanged():
    """Zero KV head 1 and its 4 query heads in every layer: pruning them keeps the logits."""
    model = build("llama")
    with torch.no_grad():
        for layer in model.model.layers:
            a = layer.self_attn
            a.q_proj.weight[32:] = 0
            a.k_proj.weight[8:] = 0
            a.v_proj.weight[8:] = 0
            a.o_proj.weight[:, 32:] = 0
    before, tokens = run(model, "llama"), generate(model)
    prune(
        model,
        "llama",
        pruning_ratio=0.0,
        heads=True,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    assert heads_of(model) == [(4, 1, 8)] * 2
    torch.testing.assert_close(run(model, "llama"), before, atol=1e-5, rtol=0)
    assert torch.equal(generate(model), tokens)


def test_gpt2_zero_mlp_channels_removed_outputs_unchanged():
    """Conv1D in both directions: zeroed c_fc columns / c_proj rows go, logits stay."""
    model = build("gpt2")
    with torch.no_grad():
        for block in model.transformer.h:
            block.mlp.c_fc.weight[:, 1::2] = 0
            block.mlp.c_fc.bias[1::2] = 0
            block.mlp.c_proj.weight[1::2] = 0
    before = run(model, "gpt2")
    mlps = {block.mlp.c_fc: 0.5 for block in model.transformer.h}
    prune(model, "gpt2", pruning_ratio=0.0, pruning_ratio_dict=mlps)
    assert [b.mlp.c_fc.nf for b in model.transformer.h] == [128, 128]
    assert model.config.n_inner == 128 and model.config.hidden_size == 64
    torch.testing.assert_close(run(model, "gpt2"), before, atol=1e-5, rtol=0)


def test_gpt2_zero_head_dims_removed_outputs_unchanged():
    """Head-dim pruning: dims 8..15 of every q/k/v head zeroed, pruned away, logits stay."""
    model = build("gpt2")
    with torch.no_grad():
        for block in model.transformer.h:
            cols = [p * 64 + h * 16 + d for p in range(3) for h in range(4) for d in range(8, 16)]
            block.attn.c_attn.weight[:, cols] = 0
            block.attn.c_attn.bias[cols] = 0
            block.attn.c_proj.weight[[h * 16 + d for h in range(4) for d in range(8, 16)]] = 0
    before = run(model, "gpt2")
    attns = {block.attn.c_attn: 0.5 for block in model.transformer.h}
    prune(model, "gpt2", pruning_ratio=0.0, pruning_ratio_dict=attns)
    assert heads_of(model) == [(4, 4, 8)] * 2
    a = model.transformer.h[1].attn
    assert (a.num_heads, a.head_dim, a.split_size, a.c_attn.nf, a.c_proj.nx) == (4, 8, 32, 96, 32)
    torch.testing.assert_close(run(model, "gpt2"), before, atol=1e-5, rtol=0)


def test_refresh_is_a_no_op_on_an_unpruned_model():
    for name in ("llama", "gpt2", "bert"):
        report = families.refresh_attributes(build(name))
        assert report.changed == [] and report.problems == []


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_history_replays_onto_a_fresh_model(name):
    """engine.state_dict keeps the pruning history; replaying it (heads included) on the
    original architecture refreshes the same attributes and config, and gives the same logits."""
    import engine

    model = build(name)
    prune(
        model,
        name,
        pruning_ratio=0.5,
        heads=True,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=0.5,
    )
    fresh = BUILDERS[name]().eval()  # other random weights: all of them get loaded
    engine.load_state_dict(fresh, engine.state_dict(model), example_inputs=IDS)
    assert heads_of(fresh) == heads_of(model)
    assert fresh.config.to_dict() == model.config.to_dict()
    torch.testing.assert_close(run(fresh, name), run(model, name), atol=1e-5, rtol=0)
    assert torch.equal(generate(fresh), generate(model))


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_plain_base_pruner_needs_no_family_arguments(name):
    """What a no-code tool gets with Torch-Pruning's arguments only: Conv1D roots like a
    Linear, and with no num_heads declared the family's attention is declared for it."""
    model = build(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BasePruner(
            model,
            IDS,
            MagnitudeImportance(),
            pruning_ratio=0.5,
            prune_num_heads=True,
            prune_head_dims=False,
            head_pruning_ratio=0.5,
        ).step()
    assert model.config.hidden_size == 32
    assert heads_of(model) == ([(4, 1, 8)] if name == "llama" else [(2, 2, 16)]) * 2
    assert tuple(generate(model).shape) == (1, 11)


@pytest.mark.slow
def test_gpt2_small_full_size():
    """GPT-2 small (124M, random weights): hidden -25%, heads 12 -> 6, then generate()."""
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    ids = torch.randint(0, 50257, (1, 16), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BasePruner(
            model,
            ids,
            MagnitudeImportance(),
            pruning_ratio=0.25,
            prune_num_heads=True,
            prune_head_dims=False,
            head_pruning_ratio=0.5,
        ).step()
    cfg = model.config
    assert (cfg.n_embd, cfg.n_head, cfg.n_inner) == (576, 6, 2304)
    assert heads_of(model) == [(6, 6, 64)] * 12
    # GPT-2's config derives head_dim from n_embd: the report says it cannot rebuild this
    assert any("would not rebuild" in p for p in families.refresh_attributes(model).problems)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert tuple(out.shape) == (1, 19)
