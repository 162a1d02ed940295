"""MAC/parameter counting: hand-computed small nets plus torchvision's published figures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.utils._python_dispatch import _get_current_dispatch_mode

from engine.utils import count_ops_and_params
from engine.utils.counting import CountReport, count_layers

# ----------------------------------------------------------------- tiny models


class TinyConvNet(nn.Module):
    def __init__(self, conv_type: type[nn.Conv2d] = nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv_type(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


# Input 1x3x8x8, conv output 1x8x8x8 (512 elements, 64 positions).
CONV_MACS = 64 * (3 * 3 * 3 * 8) + 8 * 64  # positions x (k*k*Cin*Cout) + bias per output = 14336
BN_MACS = 512 * 2  # input numel, x2 for affine
RELU_MACS = 512  # output numel
POOL_MACS = 512  # input numel
FC_MACS = 8 * 10 + 10  # input numel x out_features + out_features (bias, once)
TINY_CONV_MACS = CONV_MACS + BN_MACS + RELU_MACS + POOL_MACS + FC_MACS  # 16474
TINY_CONV_PARAMS = (3 * 8 * 9 + 8) + (8 + 8) + (8 * 10 + 10)  # conv + bn affine + fc = 330


def tiny_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3, bias=False))


class FunctionalAttention(nn.Module):
    """Uses the Linear weights through F.linear and matmuls, so no module rule ever fires."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(6, 18)
        self.proj = nn.Linear(6, 6, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.qkv.weight, self.qkv.bias).chunk(3, dim=-1)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return F.linear(attn @ v, self.proj.weight)


# x: 1x5x6. qkv: (5x6)@(6x18) + bias on 5x18 outputs; q@k^T: 5x6x5; attn@v: 5x5x6; proj: 5x6x6.
FUNCTIONAL_ATTENTION_MACS = (5 * 6 * 18 + 5 * 18) + 5 * 6 * 5 + 5 * 5 * 6 + 5 * 6 * 6  # 1110


class SdpaBlock(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(5, 2, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.a(x) + self.b(y)


TWO_INPUTS_MACS = (3 * 2 + 2) + 5 * 2  # 18 for x: 1x3, y: 1x5


class Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x)
        raise RuntimeError("boom")


# ---------------------------------------------------------------- hand checks


def test_tiny_conv_net_exact() -> None:
    macs, params = count_ops_and_params(TinyConvNet(), torch.randn(1, 3, 8, 8))
    assert macs == TINY_CONV_MACS == 16474
    assert params == TINY_CONV_PARAMS == 330


def test_tiny_mlp_exact_and_per_sample() -> None:
    mlp = tiny_mlp()
    # batch 1: fc1 4*16 + 16 bias, relu 16, dropout 0, fc2 16*3 (no bias)
    assert count_ops_and_params(mlp, torch.randn(1, 4)) == (4 * 16 + 16 + 16 + 16 * 3, 128)
    # batch 2 is per sample: (2*4*16 + 16 + 2*16 + 2*16*3) / 2 = 272 / 2 (bias counted once)
    assert count_ops_and_params(mlp, torch.randn(2, 4))[0] == 136


def test_subclassed_conv_counted_through_aten_like_conv_rule() -> None:
    class MyConv(nn.Conv2d):
        pass

    x = torch.randn(1, 3, 8, 8)
    macs, _ = count_ops_and_params(TinyConvNet(MyConv), x)
    assert macs == TINY_CONV_MACS
    report = count_layers(TinyConvNet(MyConv), x)
    assert report.by_name()["conv"].macs == CONV_MACS


def test_multihead_attention_formula() -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, 5, 8)
    # q scaling 5*8, projections 3*5*8*8, in-proj bias 15*8, heads 2*(5*5*4 + 5*5 + 5*5*4),
    # out proj 5*8*(8+1)
    expected = 40 + 960 + 120 + 450 + 360
    assert count_ops_and_params(mha, (x, x, x))[0] == expected == 1930
    assert count_ops_and_params(mha, {"query": x, "key": x, "value": x})[0] == 1930


def test_functional_linear_and_matmuls_counted_and_attributed() -> None:
    model = nn.Sequential()
    model.add_module("attn", FunctionalAttention())
    x = torch.randn(1, 5, 6)
    macs, params = count_ops_and_params(model, x)
    assert macs == FUNCTIONAL_ATTENTION_MACS == 1110
    assert params == 6 * 18 + 18 + 6 * 6
    rows = count_layers(model, x).by_name()
    assert rows["attn"].macs == 1110  # the module whose forward ran the ops
    assert rows["attn.qkv"].macs == 0  # its forward never ran


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_sdpa(device: str) -> None:
    q = torch.randn(1, 2, 5, 4, device=device)
    k = torch.randn(1, 2, 7, 4, device=device)
    v = torch.randn(1, 2, 7, 3, device=device)
    # B*h*Nq*Nk*(d_qk + d_v) = 1*2*5*7*(4+3); fused kernel on cpu, decomposed bmms on meta
    assert count_ops_and_params(SdpaBlock(), (q, k, v))[0] == 2 * 5 * 7 * 7 == 490


# ------------------------------------------------------------- API behaviour


def test_layer_wise_dicts() -> None:
    model = TinyConvNet()
    macs, params, layer_macs, layer_params = count_ops_and_params(
        model, torch.randn(1, 3, 8, 8), layer_wise=True
    )
    leaves = [m for m in model.modules() if not list(m.children())]
    assert sum(layer_macs[m] for m in leaves) == macs == TINY_CONV_MACS
    assert sum(layer_params[m] for m in leaves) == params == TINY_CONV_PARAMS
    assert layer_macs[model] == macs  # entries include descendants, like Torch-Pruning
    assert layer_macs[model.conv] == CONV_MACS
    assert layer_macs[model.bn] == BN_MACS
    assert layer_params[model.fc] == 90


def test_count_layers_report_rows_sum_to_totals() -> None:
    report = count_layers(TinyConvNet(), torch.randn(1, 3, 8, 8))
    assert isinstance(report, CountReport)
    assert (report.total_macs, report.total_params) == (TINY_CONV_MACS, TINY_CONV_PARAMS)
    assert sum(row.macs for row in report.layers) == TINY_CONV_MACS
    assert sum(row.params for row in report.layers) == TINY_CONV_PARAMS
    rows = report.by_name()
    assert list(rows) == ["", "conv", "bn", "relu", "pool", "fc"]
    assert (rows["bn"].type, rows["bn"].macs, rows["bn"].params) == ("BatchNorm2d", 1024, 16)


def test_tuple_and_dict_inputs() -> None:
    model = TwoInputs()
    x, y = torch.randn(1, 3), torch.randn(1, 5)
    assert count_ops_and_params(model, (x, y)) == (TWO_INPUTS_MACS, 3 * 2 + 2 + 5 * 2)
    assert count_ops_and_params(model, [x, y])[0] == TWO_INPUTS_MACS
    assert count_ops_and_params(model, {"x": x, "y": y})[0] == TWO_INPUTS_MACS


def test_meta_equals_cpu() -> None:
    cpu_net = torchvision.models.resnet18(weights=None)
    with torch.device("meta"):
        meta_net = torchvision.models.resnet18(weights=None)
    cpu = count_ops_and_params(cpu_net, torch.randn(1, 3, 64, 64))
    meta = count_ops_and_params(meta_net, torch.empty(1, 3, 64, 64, device="meta"))
    assert cpu == meta
    assert cpu[1] == 11_689_512
    attn = FunctionalAttention()
    assert count_ops_and_params(attn.to("meta"), torch.empty(1, 5, 6, device="meta"))[0] == 1110


def test_train_flags_and_running_stats_untouched() -> None:
    model = TinyConvNet()
    model.train()
    model.fc.eval()
    count_ops_and_params(model, torch.randn(2, 3, 8, 8))
    assert model.training and model.conv.training and model.bn.training
    assert not model.fc.training
    assert int(model.bn.num_batches_tracked) == 0  # forward ran in eval mode
    assert torch.equal(model.bn.running_mean, torch.zeros(8))


def test_hooks_and_mode_removed_even_on_error() -> None:
    model = Boom()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        count_ops_and_params(model, torch.randn(1, 2))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert _get_current_dispatch_mode() is None
    assert model.training
    assert count_ops_and_params(TinyConvNet(), torch.randn(1, 3, 8, 8))[0] == TINY_CONV_MACS


# ------------------------------------------------------ torchvision published


@contextlib.contextmanager
def _params_on_meta() -> Iterator[None]:
    """Move every parameter/buffer to meta as it is registered (for builders that call
    .tolist() on tensors and so cannot run under torch.device('meta'), e.g. RegNet)."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def to_meta_param(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def to_meta_buffer(
        self: nn.Module, name: str, buf: torch.Tensor | None, persistent: bool = True
    ) -> None:
        register_buffer(self, name, None if buf is None else buf.to("meta"), persistent)

    nn.Module.register_parameter = to_meta_param
    nn.Module.register_buffer = to_meta_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter
        nn.Module.register_buffer = register_buffer


CLASSIFIERS = torchvision.models.list_models(module=torchvision.models)
FAST_MACS = ["resnet18", "mobilenet_v3_small", "swin_t", "vit_b_16"]


def _published(name: str) -> tuple[dict, int]:
    weights = next(iter(torchvision.models.get_model_weights(name)))
    return weights.meta, weights.transforms().crop_size[0]


def _meta_model(name: str) -> nn.Module:
    meta, _ = _published(name)
    kwargs: dict = {}
    if name == "googlenet":  # published weights drop the auxiliary heads
        kwargs["aux_logits"] = False
    if name in ("googlenet", "inception_v3"):  # explicit, to silence a FutureWarning
        kwargs["init_weights"] = True
    if name.startswith("vit_"):  # position embeddings depend on the weights' image size
        kwargs["image_size"] = meta["min_size"][0]
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(name, weights=None, **kwargs)
    except NotImplementedError:
        with _params_on_meta():
            return torchvision.models.get_model(name, weights=None, **kwargs)


def _check_published_macs(name: str) -> None:
    meta, size = _published(name)
    macs, params = count_ops_and_params(
        _meta_model(name), torch.empty(1, 3, size, size, device="meta")
    )
    assert params == meta["num_params"]
    published = meta["_ops"] * 1e9
    assert abs(macs / published - 1) < 0.10, f"{name}: {macs / 1e9:.3f} vs {meta['_ops']}"


def test_classifier_list_is_populated() -> None:
    assert len(CLASSIFIERS) > 70 and set(FAST_MACS) <= set(CLASSIFIERS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_params_match_published(name: str) -> None:
    meta, _ = _published(name)
    assert sum(p.numel() for p in _meta_model(name).parameters()) == meta["num_params"]


@pytest.mark.parametrize("name", FAST_MACS)
def test_macs_near_published_fast(name: str) -> None:
    _check_published_macs(name)


def test_swin_t_attention_matmuls_counted() -> None:
    """swin_t runs qkv/proj via F.linear and q@k^T by hand: module rules alone give ~2.98 G."""
    meta, size = _published("swin_t")
    report = count_layers(_meta_model("swin_t"), torch.empty(1, 3, size, size, device="meta"))
    attn = report.by_name()["features.1.0.attn"]
    assert attn.type == "ShiftedWindowAttention"
    # 3136 tokens in 64 windows of 49, C=96, 3 heads of 32:
    # qkv 3136*96*288 + bias 3136*288, q@k^T and attn@v 64*3*49*32*49 each, proj 3136*96*96 + bias
    qkv = 3136 * 96 * 288 + 3136 * 288
    matmuls = 2 * 64 * 3 * 49 * 32 * 49
    proj = 3136 * 96 * 96 + 3136 * 96
    assert attn.macs == qkv + matmuls + proj


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_macs_near_published_all(name: str) -> None:
    _check_published_macs(name)
