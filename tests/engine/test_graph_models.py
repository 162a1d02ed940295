"""Engine fixes found by the torchvision prunability sweep (benchmarks/prunability.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import engine as tp


class CachesOnDevice(nn.Module):
    """Rebinds a plain tensor attribute to the input's device, like AnchorGenerator."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.scale = [torch.tensor(2.0)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.scale = [s.to(x.device) for s in self.scale]
        self.seen = x.device.type
        return self.conv2(self.conv(x)) * self.scale[0]


def test_meta_trace_leaves_no_meta_tensors_in_plain_attributes():
    model = CachesOnDevice().eval()
    x = torch.randn(1, 3, 8, 8)
    dg = tp.DependencyGraph().build_dependency(model, x)
    assert model.scale[0].device.type == "cpu"
    assert model.scale[0].item() == 2.0
    assert not hasattr(model, "seen")  # attributes created during the meta run are dropped
    group = dg.get_pruning_group(model.conv, tp.prune_conv_out_channels, [0, 1, 2])
    group.prune()
    assert model.conv.out_channels == 5 and model.conv2.in_channels == 5
    assert model(x).shape == (1, 4, 8, 8)


def test_detection_model_prunes_after_meta_trace_fallback():
    """The RPN's anchors used to stay on meta after the meta trace failed on NMS."""
    from benchmarks.prunability import check_model

    r = check_model("fasterrcnn_mobilenet_v3_large_320_fpn")
    assert r.ok, r.reason
    assert r.device == "cpu" and r.groups == 33
    assert r.params_after < r.params_before


class HardCodedHeads(nn.Module):
    """q's width is baked into a reshape (like Swin / HF attention): only the MLP can prune."""

    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.q = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q(x).reshape(b, n, self.heads, self.dim // self.heads).softmax(-1)
        x = x + self.o(q.reshape(b, n, self.dim))
        return x + self.fc2(torch.relu(self.fc1(x)))


def _stack(blocks: int) -> nn.Module:
    return nn.Sequential(*[HardCodedHeads() for _ in range(blocks)]).eval()


def test_probe_locks_every_repeated_broken_group_in_few_runs():
    from engine.graph.probe import Prober, smallest_unit

    model = _stack(8)
    x = torch.randn(1, 5, 16)
    dg = tp.DependencyGraph().build_dependency(model, x)
    roots = {g[0].dep.target.module for g in dg.get_all_groups()}
    assert roots == {blk.fc1 for blk in model}  # q of every block locked, MLPs prunable
    assert len(dg.lock_reasons) >= 8
    # all at once, one try per kind of group (q, fc1), one run for the passing ones: no halving
    assert dg.probe_runs == 4
    # the same verdicts as probing every group on its own, one run each
    raw = tp.DependencyGraph().build_dependency(model, x, validate=False)
    units = [smallest_unit(raw, g) for g in raw.get_all_groups(root_module_types=(object,))]
    prober = Prober(raw, model, x, lambda m, inp: m(inp), [(1, 5, 16)])
    alone = {u[0].dep.target.module for u in units if prober.passes([u])}
    assert alone == roots
    y = model(x)
    for grp in dg.get_all_groups():
        grp.prune(idxs=grp.channel_sets()[0])
    assert model(x).shape == y.shape
    assert all(blk.fc1.out_features < 32 for blk in model)


def test_channel_sets_singletons_and_multi_channel_units():
    # concat of a conv with itself: channel i and i+4 of the concat are one unit of conv a
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(8, 6, 1)
            self.c = nn.Conv2d(6, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            return self.c(self.b(torch.cat([y, y], 1)))

    model = Twice().eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 4, 4))
    b_group = dg.get_pruning_group(model.b, tp.prune_conv_out_channels, [5, 0, 3])
    assert b_group.channel_sets() == [[0], [3], [5]]
    cat_in = dg.get_pruning_group(model.b, tp.prune_conv_in_channels, [6, 1])
    assert cat_in.channel_sets() == [[1, 5], [2, 6]]


def test_probe_costs_one_run_when_every_group_prunes():
    blocks = [nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                            nn.Conv2d(16, 8, 1)) for _ in range(6)]
    model = nn.Sequential(nn.Conv2d(3, 8, 1), *blocks).eval()
    dg = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 8, 8))
    assert dg.probe_runs == 1
    assert len(list(dg.get_all_groups())) == 12  # stem + 6 inner + 5 between blocks


def test_fast_meta_batch_norm_matches_the_real_meta_kernel():
    from engine.utils.meta_kernels import FastMeta, MetaKernels

    for training, dtype in ((False, torch.float32), (True, torch.float32), (False, torch.bfloat16)):
        bn = nn.BatchNorm2d(6).train(training).to("meta", dtype)
        x = torch.empty(2, 6, 5, 5, device="meta", dtype=dtype)
        x = x.to(memory_format=torch.channels_last)
        args = (x, bn.weight, bn.bias, bn.running_mean, bn.running_var, training, 0.1, 1e-5)
        ref = torch.ops.aten.native_batch_norm.default(*args)
        with FastMeta(MetaKernels()):
            fast = torch.ops.aten.native_batch_norm.default(*args)
        assert [t.shape for t in fast] == [t.shape for t in ref]
        assert [t.dtype for t in fast] == [t.dtype for t in ref]
        assert fast[0].stride() == ref[0].stride()


def _same_meta(fast: tuple, ref: tuple) -> None:
    assert [t.device.type for t in fast] == ["meta"] * len(ref)
    assert [t.shape for t in fast] == [t.shape for t in ref]
    assert [t.dtype for t in fast] == [t.dtype for t in ref]
    assert [t.stride() for t in fast] == [t.stride() for t in ref]


def test_fast_meta_layer_norm_matches_the_real_meta_kernel():
    from engine.utils.meta_kernels import FastMeta, MetaKernels

    op = torch.ops.aten.native_layer_norm.default
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        w = torch.empty(6, device="meta", dtype=dtype)
        nhwc = torch.empty(2, 6, 5, 4, device="meta", dtype=dtype).permute(0, 2, 3, 1)
        seq = torch.empty(2, 6, 5, device="meta", dtype=dtype).transpose(1, 2)
        cases = [(nhwc, [6], w, w), (nhwc, [4, 6], None, None), (seq, [6], w, None)]
        for x, shape, weight, bias in cases:
            ref = op(x, shape, weight, bias, 1e-6)
            with FastMeta(MetaKernels()):
                fast = op(x, shape, weight, bias, 1e-6)
            _same_meta(fast, ref)


def test_fast_meta_group_norm_matches_the_real_meta_kernel():
    from engine.utils.meta_kernels import FastMeta, MetaKernels

    op = torch.ops.aten.native_group_norm.default
    for dtype in (torch.float32, torch.bfloat16):
        w = torch.empty(6, device="meta", dtype=dtype)
        for x in (
            torch.empty(2, 6, 5, 5, device="meta", dtype=dtype),
            torch.empty(2, 5, 5, 6, device="meta", dtype=dtype).permute(0, 3, 1, 2),
            torch.empty(3, 6, 7, device="meta", dtype=dtype),
        ):
            hw = x[0, 0].numel()
            for weight in (w, None):
                ref = op(x, weight, weight, x.shape[0], 6, hw, 3, 1e-5)
                with FastMeta(MetaKernels()):
                    fast = op(x, weight, weight, x.shape[0], 6, hw, 3, 1e-5)
                _same_meta(fast, ref)


def test_partial_refresh_writes_the_config_only_when_all_layers_agree():
    """A pruned group refreshes only its own modules; the HF config still sees every layer."""
    transformers = pytest.importorskip("transformers")
    from engine.graph import DependencyGraph

    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(0))
    dg = DependencyGraph().build_dependency(model, example_inputs=(ids,))
    for i, expected in ((0, 48), (1, 16)):  # layer 0 alone: layers differ, config kept
        mlp = model.model.layers[i].mlp
        handler = dg.get_pruner_of_module(mlp.gate_proj).prune_out_channels
        dg.get_pruning_group(mlp.gate_proj, handler, list(range(32))).prune()
        assert mlp.gate_proj.out_features == mlp.up_proj.out_features == 16
        assert mlp.down_proj.in_features == 16
        assert model.config.intermediate_size == expected
    assert tuple(model(ids).logits.shape) == (1, 6, 64)
