"""Fast meta answers equal the real meta kernels: shape, dtype, strides, device, freshness."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torchvision

import engine
from engine.utils import count_ops_and_params
from engine.utils.meta_kernels import _FAST_KERNELS, MetaKernels

KERNELS = MetaKernels()  # this module's own kernels and layout memo


def fast_meta_call(func: Any, args: tuple, kwargs: dict) -> Any:
    return KERNELS.call(func, args, kwargs)

aten = torch.ops.aten
F32, BF16, F16, I64 = torch.float32, torch.bfloat16, torch.float16, torch.int64


def m(*shape: int, dtype: torch.dtype = F32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


def layout(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape), out.stride(), out.dtype, out.device.type, out.storage_offset())
    return tuple(layout(o) for o in out)


def real(func: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return layout(func(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the fast path must raise alike
        return type(exc)


def fast(func: Any, args: tuple, kwargs: dict) -> Any:
    try:
        return layout(fast_meta_call(func, args, kwargs))
    except Exception as exc:  # noqa: BLE001
        return type(exc)


def nhwc(n: int, c: int, h: int, w: int, dtype: torch.dtype = F32) -> torch.Tensor:
    return m(n, h, w, c, dtype=dtype).permute(0, 3, 1, 2)


# (func, args, kwargs, answered directly?)
Case = tuple[Any, tuple, dict, bool]


def matmul_cases() -> list[Case]:
    w = m(16, 8)
    cases: list[Case] = []
    for dtype in (F32, BF16, F16):
        a, b, bias = m(4, 8, dtype=dtype), m(8, 16, dtype=dtype), m(16, dtype=dtype)
        cases += [
            (aten.addmm.default, (bias, a, b), {}, True),
            (aten.addmm.default, (m(1, 16, dtype=dtype), a, b), {"beta": 0.5, "alpha": 2}, True),
            (aten.addmm.default, (m(4, 16, dtype=dtype), a, b), {"beta": 0}, True),
            (aten.mm.default, (a, b), {}, True),
            (aten.bmm.default, (m(3, 4, 8, dtype=dtype), m(3, 8, 5, dtype=dtype)), {}, True),
        ]
    cases += [
        (aten.addmm.default, (m(16), m(4, 8), w.t()), {}, True),  # a linear layer
        (aten.addmm.default, (m(16), m(8, 4).t(), w.t()), {}, True),  # transposed input
        (aten.addmm.default, (m(1), m(1, 8), m(8, 1)), {}, True),
        (aten.addmm.default, (m(), m(1, 8), m(8, 3)), {}, True),  # 0-dim bias
        (aten.addmm.default, (m(0), m(0, 8), m(8, 0)), {}, True),  # empty
        (aten.addmm.default, (m(16, 4).t(), m(4, 8), m(8, 16)), {}, False),  # strided bias
        (aten.addmm.default, (m(16, dtype=BF16), m(4, 8), m(8, 16)), {}, False),  # mixed
        (aten.addmm.default, (m(5), m(4, 8), m(8, 16)), {}, False),  # bad bias: raises
        (aten.addmm.default, (m(2, 4, 16), m(4, 8), m(8, 16)), {}, False),  # too big bias
        (aten.mm.default, (m(4, 8), m(8, 16, dtype=F16)), {}, False),
        (aten.mm.default, (m(4, 8), m(7, 16)), {}, False),  # raises
        (aten.mm.default, (m(8), m(8)), {}, False),  # raises
        (aten.addmm.default, (m(16), m(4, 8), m(8, 16)), {"gamma": 1}, False),  # raises
        (aten.mm.default, (m(4, 8, dtype=I64), m(8, 2, dtype=I64)), {}, False),
        (aten.mm.default, (m(16, 4).t(), m(2, 16).t()), {}, True),
        (aten.bmm.default, (m(3, 4, 8), m(2, 8, 5)), {}, False),  # raises
        (aten.bmm.default, (m(3, 8, 4).transpose(1, 2), m(3, 8, 5)), {}, True),
    ]
    return cases


def pointwise_cases() -> list[Case]:
    unary = [aten.relu.default, aten.silu.default, aten.sigmoid.default, aten.tanh.default,
             aten.hardswish.default, aten.hardsigmoid.default, aten.neg.default, aten.exp.default,
             aten.rsqrt.default, aten.sqrt.default, aten.gelu.default]  # fmt: skip
    cases: list[Case] = []
    for op in unary:
        for dtype in (F32, BF16, F16):
            cases += [
                (op, (m(2, 3, 4, dtype=dtype),), {}, True),
                (op, (m(dtype=dtype),), {}, True),  # 0-dim
                (op, (m(0, 3, dtype=dtype),), {}, True),  # empty
                (op, (nhwc(2, 3, 4, 5, dtype=dtype),), {}, False),  # channels_last
                (op, (m(4, 3, dtype=dtype).t(),), {}, False),
            ]
        cases.append((op, (m(2, 3, dtype=I64),), {}, False))  # int: may promote or raise
    cases += [
        (aten.gelu.default, (m(2, 3),), {"approximate": "tanh"}, True),
        (aten.gelu.default, (m(2, 3), "tanh"), {}, False),  # keyword-only: raises
        (aten.gelu.default, (m(2, 3),), {"approximate": "bogus"}, False),  # raises
        (aten._safe_softmax.default, (m(2, 3, 5), -1), {}, True),
        (aten._safe_softmax.default, (m(2, 3, 5, dtype=BF16), 1), {}, True),
        (aten._safe_softmax.default, (m(2, 3, 5), 3), {}, False),  # raises
        (aten._safe_softmax.default, (m(2, 3, 5), -1, F32), {}, False),  # dtype given
        (aten._safe_softmax.default, (m(5, 3, 2).transpose(0, 2), -1), {}, False),
    ]
    binary = [aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor]
    scalar = [aten.add.Scalar, aten.sub.Scalar, aten.mul.Scalar, aten.div.Scalar]
    for op in binary:
        for dtype in (F32, BF16, F16):
            x = m(2, 3, 4, dtype=dtype)
            cases += [
                (op, (x, m(2, 3, 4, dtype=dtype)), {}, True),
                (op, (m(dtype=dtype), m(dtype=dtype)), {}, True),  # 0-dim
                (op, (m(0, 4, dtype=dtype), m(0, 4, dtype=dtype)), {}, True),
                (op, (x, 2), {}, True),
                (op, (x, 0.5), {}, True),
                (op, (x, True), {}, False),
                (op, (x, 1 + 2j), {}, False),  # complex promotes
                (op, (x, m(4, dtype=dtype)), {}, False),  # broadcast
                (op, (m(4, dtype=dtype), x), {}, False),
                (op, (x, m(dtype=dtype)), {}, False),  # 0-dim operand
                (op, (x, m(2, 3, 4, dtype=F32 if dtype != F32 else BF16)), {}, False),
                (op, (nhwc(1, 3, 4, 5, dtype=dtype), nhwc(1, 3, 4, 5, dtype=dtype)), {}, False),
                (op, (nhwc(1, 3, 4, 5, dtype=dtype), m(3, 1, 1, dtype=dtype)), {}, False),
                (op, (x, torch.tensor(2.0, dtype=dtype)), {}, False),  # CPU scalar tensor
            ]
        cases += [
            (op, (m(2, 3, dtype=I64), 2.5), {}, False),  # int tensor, float scalar: float
            (op, (m(2, 3, dtype=I64), m(2, 3, dtype=I64)), {}, False),
            (op, (m(2, 3, dtype=torch.bool), m(2, 3, dtype=torch.bool)), {}, False),
        ]
    for op in (aten.add.Tensor, aten.sub.Tensor):
        cases += [
            (op, (m(2, 3), m(2, 3)), {"alpha": 2}, True),
            (op, (m(2, 3), 1), {"alpha": 0.5}, True),
            (op, (m(2, 3), m(2, 3)), {"alpha": 1 + 1j}, False),
        ]
    for op in scalar:
        cases += [
            (op, (m(2, 3), 3), {}, True),
            (op, (m(2, 3, dtype=BF16), 0.125), {}, True),
            (op, (m(2, 3, dtype=I64), 0.125), {}, False),
            (op, (nhwc(2, 3, 4, 5), 2.0), {}, False),
        ]
    return cases


def norm_cases() -> list[Case]:
    cases: list[Case] = []
    for dtype in (F32, BF16, F16):
        w = m(6, dtype=dtype)
        for x in (m(2, 6, 5, 5, dtype=dtype), nhwc(2, 6, 5, 5, dtype=dtype)):
            for training in (True, False):
                args = (x, w, w, m(6, dtype=dtype), m(6, dtype=dtype), training, 0.1, 1e-5)
                cases.append((aten.native_batch_norm.default, args, {}, True))
            cases.append((aten.native_group_norm.default, (x, w, w, 2, 6, 25, 3, 1e-5), {}, True))
        seq = m(2, 6, 5, dtype=dtype).transpose(1, 2)
        cases.append((aten.native_layer_norm.default, (seq, [6], w, w, 1e-6), {}, True))
        cases.append(
            (
                aten.native_layer_norm.default,
                (m(3, 4, 6, dtype=dtype), [4, 6], None, None, 1e-6),
                {},
                True,
            )
        )
    return cases


def conv_cases() -> list[Case]:
    conv = aten.convolution.default
    cases: list[Case] = []
    for dtype in (F32, BF16, F16):
        x, w, b = m(2, 6, 9, 9, dtype=dtype), m(8, 6, 3, 3, dtype=dtype), m(8, dtype=dtype)
        cases += [
            (conv, (x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1), {}, True),
            (conv, (x, w, None, [2, 2], [0, 0], [1, 1], False, [0, 0], 1), {}, True),
            (conv, (x, w, b, [2], [1], [2], False, [0], 1), {}, True),  # one value per arg
        ]
    cases += [
        (conv, (m(1, 6, 9, 9), m(6, 1, 3, 3), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 6),
         {}, True),  # depthwise
        (conv, (m(1, 6, 9, 9), m(4, 3, 1, 1), m(4), [1, 1], [0, 0], [1, 1], False, [0, 0], 2),
         {}, True),  # grouped
        (conv, (m(2, 3, 20), m(5, 3, 4), m(5), [2], [1], [1], False, [0], 1), {}, True),  # 1d
        (conv, (m(1, 2, 4, 6, 6), m(3, 2, 3, 3, 3), None, [1, 1, 1], [1, 1, 1], [1, 1, 1],
                False, [0, 0, 0], 1), {}, True),  # 3d
        (conv, (m(1, 16, 5, 5), m(16, 32, 2, 2), None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1),
         {}, True),  # transposed (ConvTranspose2d(16, 32, 2, stride=2))
        (conv, (m(1, 4, 5, 5), m(4, 3, 3, 3), m(6), [2, 2], [1, 1], [1, 1], True, [1, 1], 2),
         {}, True),  # grouped transposed with output padding
        (conv, (nhwc(1, 6, 9, 9), m(8, 6, 3, 3), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
         {}, False),  # channels_last input
        (conv, (m(1, 5, 9, 9), m(8, 6, 3, 3), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
         {}, False),  # channel mismatch: raises
        (conv, (m(1, 6, 2, 2), m(8, 6, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1),
         {}, False),  # kernel larger than the input: raises
        (conv, (m(1, 6, 9, 9), m(8, 6, 3, 3), m(7), [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
         {}, False),  # bias of the wrong size
        (conv, (m(1, 6, 9, 9), m(8, 6, 3, 3, dtype=BF16), None, [1, 1], [1, 1], [1, 1], False,
                [0, 0], 1), {}, False),  # mixed dtypes
        (conv, (m(0, 6, 9, 9), m(8, 6, 3, 3), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
         {}, True),  # empty batch
        (conv, (m(1, 6, 9, 9), m(8, 6, 3, 3), None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
         {"extra": 1}, False),
    ]
    return cases


ALL_CASES = matmul_cases() + pointwise_cases() + norm_cases() + conv_cases()


@pytest.mark.filterwarnings("ignore:.*support is experimental")
@pytest.mark.parametrize("case", range(len(ALL_CASES)))
def test_fast_answer_equals_the_real_meta_kernel(case: int) -> None:
    func, args, kwargs, direct = ALL_CASES[case]
    assert fast(func, args, kwargs) == real(func, args, kwargs), (func, args, kwargs)
    answered = _FAST_KERNELS[func](args, kwargs) is not None
    assert answered == direct, "the direct kernel answers exactly the cases it can prove"


def test_every_direct_kernel_is_covered_by_a_case() -> None:
    assert set(_FAST_KERNELS) == {func for func, _, _, direct in ALL_CASES if direct}


def _random_tensor(rng: random.Random, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A meta tensor of `shape` stored in a random dimension order, maybe sliced."""
    order = list(range(len(shape)))
    rng.shuffle(order)
    t = m(*[shape[i] for i in order], dtype=dtype).permute(
        [order.index(i) for i in range(len(shape))]
    )
    if shape and rng.random() < 0.2 and shape[-1] > 1:
        t = m(*shape[:-1], shape[-1] * 2, dtype=dtype)[..., ::2]
    return t


def test_memo_equals_the_real_kernel_on_random_layouts() -> None:
    """Broadcasting pointwise ops on random layouts: memo misses and hits both exact."""
    rng = random.Random(0)
    ops: list[Callable] = [aten.add.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.where.self]
    for _ in range(300):
        ndim = rng.randint(0, 4)
        shape = tuple(rng.choice([1, 1, 2, 3, 5]) for _ in range(ndim))
        other = tuple(s if rng.random() < 0.6 else 1 for s in shape[rng.randint(0, ndim) :])
        dtypes = rng.choice([(F32, F32), (F32, BF16), (I64, F32), (F16, F16)])
        x = _random_tensor(rng, shape, dtypes[0])
        y = _random_tensor(rng, other, dtypes[1])
        if rng.random() < 0.5:
            x, y = y, x
        op = rng.choice(ops)
        args = (m(*shape, dtype=torch.bool), x, y) if op is aten.where.self else (x, y)
        expected = real(op, args, {})
        assert fast(op, args, {}) == expected, (
            op,
            [a.shape for a in args],
            [a.stride() for a in args],
        )
        assert fast(op, args, {}) == expected  # now from the memo


def test_memo_tells_scalar_kinds_apart_and_never_remembers_aliases() -> None:
    x = m(2, 3, dtype=I64)
    assert fast_meta_call(aten.mul.Tensor, (x, 2), {}).dtype == I64
    assert fast_meta_call(aten.mul.Tensor, (x, 2.0), {}).dtype == F32
    assert fast_meta_call(aten.mul.Tensor, (x, True), {}).dtype == I64
    v = fast_meta_call(aten._unsafe_view.default, (x, [6]), {})
    assert v.untyped_storage()._cdata == x.untyped_storage()._cdata  # still the real view
    a = fast_meta_call(aten.clone.default, (x,), {})
    b = fast_meta_call(aten.clone.default, (x,), {})
    assert a.untyped_storage()._cdata != b.untyped_storage()._cdata  # fresh each time
    assert not KERNELS.is_functional(aten._unsafe_view.default)
    assert not KERNELS.is_functional(aten.add_.Tensor)


def test_memo_keys_on_the_default_dtype_and_skips_factories() -> None:
    x = m(2, 3, dtype=I64)
    assert fast_meta_call(aten.mul.Tensor, (x, 0.5), {}).dtype == F32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert fast_meta_call(aten.mul.Tensor, (x, 0.5), {}).dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    size = len(KERNELS.layouts)
    out = fast_meta_call(aten.empty.memory_format, ([2, 3],), {"device": torch.device("meta")})
    assert out.is_meta and len(KERNELS.layouts) == size
    cat = fast_meta_call(aten.cat.default, ([m(2, 3), m(4, 3)],), {})
    assert layout(cat) == ((6, 3), (3, 1), F32, "meta", 0)
    assert len(KERNELS.layouts) == size + 1  # a list of tensors is keyed


def test_disabled_runs_the_real_kernels_and_owners_do_not_share() -> None:
    args = (m(16), m(4, 8), m(8, 16))
    off = MetaKernels(enabled=False)
    calls: list[Any] = []

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(a)
        return aten.addmm.default(*a, **k)

    assert layout(off.call(spy, args, {})) == real(aten.addmm.default, args, {})
    assert len(calls) == 1 and not off.layouts  # ran the real kernel, remembered nothing
    on = MetaKernels()
    on.call(aten.clone.default, (m(3, 4),), {})
    assert len(on.layouts) == 1 and not off.layouts and on.enabled and not off.enabled


def test_graphs_and_counts_use_their_own_kernels() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    mine = MetaKernels()
    dg = engine.DependencyGraph(mine).build_dependency(model, x)
    assert dg.meta_kernels is mine and len(mine.layouts) > 0
    other = engine.DependencyGraph().build_dependency(model, x)
    assert other.meta_kernels is not mine and len(other.meta_kernels.layouts) > 0


def _facts(model: torch.nn.Module, x: torch.Tensor, kernels: MetaKernels) -> tuple:
    dg = engine.DependencyGraph(kernels).build_dependency(model, x)
    groups = [(len(g), len(g[0].idxs)) for g in dg.get_all_groups()]
    return groups, len(dg.module2node), count_ops_and_params(model, x, layer_wise=True,
                                                             meta_kernels=kernels)


@pytest.mark.parametrize("arch,size", [("convnext_tiny", 64), ("resnet18", 64)])
def test_trace_and_counts_unchanged_by_fast_kernels(arch: str, size: int) -> None:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    x = torch.randn(1, 3, size, size)
    fast_facts = _facts(model, x, MetaKernels())
    real_facts = _facts(model, x, MetaKernels(enabled=False))
    assert fast_facts == real_facts
    assert len(fast_facts[0]) > 5 and fast_facts[2][0] > 0


def test_meta_like_equals_empty_like_on_meta():
    from engine.utils.meta_kernels import meta_like

    base = torch.randn(2, 3, 4, 5)
    cases = [
        base,
        base.to(memory_format=torch.channels_last),
        base[:, :, :, ::2],  # not dense: falls back to empty_like
        base.transpose(0, 1),
        torch.randn(1, 6, 1, 1).as_strided((1, 6, 1, 1), (7, 1, 3, 9)),  # size-1 dims
        torch.randn(()).to(torch.bfloat16),
        torch.zeros(0, 3),
    ]
    for t in cases:
        got, want = meta_like(t), torch.empty_like(t, device="meta")
        assert got.is_meta and got.shape == want.shape and got.dtype == want.dtype
        assert got.stride() == want.stride()
