"""Fast answers for meta kernels that PyTorch runs as slow Python decompositions.

Tracing, the probe, and counting a weightless (meta) copy all run whole forwards on
meta tensors. Norms, `addmm`, GELU/softmax and pointwise arithmetic go through Python
refs/decompositions (100-600 us a call, 10-100x a conv's meta kernel); this module
answers the plain cases directly and remembers the output layout of every other
functional op by its inputs' metadata. Every answer equals the real meta kernel's
shape, dtype, device and strides (tests/engine/test_meta_kernels.py). The switch and
the memo live in a `MetaKernels` object owned by whoever runs the forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class MetaKernels:
    """Fast meta answers plus a layout memo, owned by the object that runs meta forwards.

    A tracer, a probe, a previewer or a count holds one (never a module global): the
    GUI's preview and prune threads each use their own, so neither can switch the
    other's kernels off or evict its layouts. `enabled=False` runs every op through its
    real kernel (tests compare against that). Not thread-safe: one owner, one thread.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._memo = _LayoutMemo()

    @property
    def layouts(self) -> dict[tuple, tuple]:
        """The remembered output layouts (inputs' metadata -> outputs' layout)."""
        return self._memo.layouts

    def is_functional(self, func: Any) -> bool:
        """Whether `func`'s results may be remembered (neither mutating nor aliasing)."""
        return self._memo.is_functional(func)

    def forget_layouts(self) -> None:
        """Empty the layout memo (benchmarks time cold traces with it)."""
        self._memo.layouts.clear()

    def call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run `func`; on meta tensors answer it directly or from the layout memo when exact.

        A direct kernel returns None when its case is not provably the real kernel's; the
        call then falls through to the memo (functional ops only) or to `func` itself.
        """
        if not self.enabled:
            return func(*args, **kwargs)
        kernel = _FAST_KERNELS.get(func)
        if kernel is not None and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            fast = kernel(args, kwargs)
            if fast is not None:
                return fast
        return self._memo.call(func, args, kwargs)


def meta_like(t: torch.Tensor) -> torch.Tensor:
    """`torch.empty_like(t, device="meta")`, without its Python reference implementation
    (~20 us a call; a ResNet-50 meta copy makes ~400). Dense layouts (contiguous or
    channels-last) keep their exact strides there, so `empty_strided` is the same tensor;
    anything else goes through `empty_like`."""
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    return torch.empty_like(t, device="meta")


# ----------------------------------------------------------------- helpers
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TENSORS = (torch.Tensor, torch.nn.Parameter)  # plain tensors; other subclasses fall back


def _plain(x: Any) -> bool:
    """A meta tensor of a floating dtype with exactly the strides `torch.empty` gives."""
    if type(x) not in _TENSORS or not x.is_meta or x.dtype not in _FLOATS:
        return False
    expected = 1
    for size, stride in zip(reversed(x.shape), reversed(x.stride()), strict=True):
        if stride != expected:
            return False
        expected *= max(size, 1)
    return x.storage_offset() == 0


def _empty(shape: Any, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)


def _number(v: Any) -> bool:
    """A Python scalar that never changes a floating tensor's dtype (no bool, no complex)."""
    return type(v) in (int, float)


# ----------------------------------------------------------------- norms
def _stat_dtype(x: torch.Tensor) -> torch.dtype:
    """Norm statistics of half inputs are kept in float32 (as the real kernels do)."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _fast_batch_norm(args: tuple, kwargs: dict) -> tuple | None:
    x, training, running_mean = args[0], args[5], args[3]
    if not (training or running_mean is not None):
        return None
    n, stat = x.shape[1], _stat_dtype(x)
    return meta_like(x), _empty((n,), x, stat), _empty((n,), x, stat)


def _fast_layer_norm(args: tuple, kwargs: dict) -> tuple:
    x, normalized_shape = args[0], args[1]
    axis = x.dim() - len(normalized_shape)
    stat_shape = tuple(x.shape[:axis]) + (1,) * len(normalized_shape)
    stat = _stat_dtype(x)
    return _empty(x.shape, x), _empty(stat_shape, x, stat), _empty(stat_shape, x, stat)


def _fast_group_norm(args: tuple, kwargs: dict) -> tuple:
    x, n, group = args[0], args[3], args[6]
    return _empty(x.shape, x), _empty((n, group), x), _empty((n, group), x)


# ----------------------------------------------------------------- matmuls
def _fast_addmm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """bias + mat1 @ mat2 with a contiguous bias broadcast to (n, m): a contiguous (n, m)."""
    if len(args) != 3 or set(kwargs) - {"beta", "alpha"}:
        return None
    if not all(_number(v) for v in kwargs.values()):
        return None
    bias, a, b = args
    if not (_plain(bias) and type(a) in _TENSORS and type(b) in _TENSORS):
        return None
    if not (a.is_meta and b.is_meta and a.dim() == 2 and b.dim() == 2):
        return None
    if not (a.dtype == b.dtype == bias.dtype and a.shape[1] == b.shape[0]):
        return None
    out = (a.shape[0], b.shape[1])
    if bias.dim() > 2 or any(
        s not in (1, o) for s, o in zip(reversed(bias.shape), reversed(out), strict=False)
    ):
        return None
    return _empty(out, a)


def _fast_mm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """mm/bmm: the meta kernel always allocates a contiguous result."""
    if len(args) != 2 or kwargs:
        return None
    a, b = args
    if type(b) not in _TENSORS or not b.is_meta or a.dtype != b.dtype:
        return None
    if a.dtype not in _FLOATS or a.dim() != b.dim() or a.dim() not in (2, 3):
        return None
    if a.shape[-1] != b.shape[-2]:
        return None
    if a.dim() == 2:
        return _empty((a.shape[0], b.shape[1]), a)
    if a.dim() == 3 and a.shape[0] == b.shape[0]:
        return _empty((a.shape[0], a.shape[1], b.shape[2]), a)
    return None


# ----------------------------------------------------------------- convolution
def _int_list(v: Any, n: int) -> list[int] | None:
    """A conv argument (stride, padding, ...) as `n` ints: a list of n, or of one repeated."""
    if type(v) not in (list, tuple) or not all(type(i) is int for i in v):
        return None
    if len(v) == n:
        return list(v)
    return [v[0]] * n if len(v) == 1 else None


def _fast_convolution(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """aten.convolution of contiguous meta tensors: the meta kernel's shape formula, and a
    contiguous output of the input's dtype (what it allocates); a Python function per call
    otherwise (~100 us, 53 of them in a ResNet-50 forward). Anything it would check and
    refuse (channel mismatch, kernel larger than the padded input) falls through."""
    if len(args) != 9 or kwargs:
        return None
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    if not (_plain(x) and _plain(w) and x.dtype == w.dtype and 3 <= x.dim() <= 5):
        return None
    if w.dim() != x.dim() or type(groups) is not int or groups < 1 or type(transposed) is not bool:
        return None
    if bias is not None and not (_plain(bias) and bias.dim() == 1 and bias.dtype == x.dtype):
        return None
    n = x.dim() - 2
    s, p, d = _int_list(stride, n), _int_list(padding, n), _int_list(dilation, n)
    op = _int_list(output_padding, n) if output_padding else [0] * n
    if s is None or p is None or d is None or op is None or x.shape[1] == 0:
        return None
    k, dims = w.shape[2:], x.shape[2:]
    if transposed:
        if w.shape[0] != x.shape[1]:
            return None
        out_ch = groups * w.shape[1]
        spatial = [(dims[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
                   for i in range(n)]
    else:
        if w.shape[1] * groups != x.shape[1]:
            return None
        if any(dims[i] + 2 * p[i] < d[i] * (k[i] - 1) + 1 for i in range(n)):
            return None
        out_ch = w.shape[0]
        spatial = [(dims[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
    if bias is not None and bias.shape[0] != out_ch:
        return None
    if min(spatial) < 1 or min(s) < 1 or min(d) < 1:
        return None
    return _empty((x.shape[0], out_ch, *spatial), x)


# ----------------------------------------------------------------- pointwise
def _fast_unary(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """A floating pointwise op of a contiguous tensor: same shape, dtype and strides."""
    if len(args) != 1 or kwargs or not _plain(args[0]):
        return None
    return _empty(args[0].shape, args[0])


def _fast_gelu(args: tuple, kwargs: dict) -> torch.Tensor | None:
    approximate = kwargs.get("approximate", "none")  # keyword-only in the schema
    if approximate not in ("none", "tanh") or set(kwargs) - {"approximate"}:
        return None
    return _fast_unary(args, {})


def _fast_binary(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """x (op) y for contiguous same-shape same-dtype tensors, or a tensor and a real scalar."""
    if len(args) != 2 or set(kwargs) - {"alpha"} or not all(_number(v) for v in kwargs.values()):
        return None
    x, y = args
    if not _plain(x):
        return None
    if _number(y):
        return _empty(x.shape, x)
    if _plain(y) and y.dtype == x.dtype and y.shape == x.shape:
        return _empty(x.shape, x)
    return None


def _fast_safe_softmax(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """Softmax of a contiguous tensor keeps its shape, dtype and strides."""
    if len(args) != 2 or kwargs or not _plain(args[0]):
        return None
    dim, ndim = args[1], max(args[0].dim(), 1)
    if type(dim) is not int or not -ndim <= dim < ndim:
        return None
    return _empty(args[0].shape, args[0])


_aten = torch.ops.aten
_UNARY = (
    _aten.relu.default, _aten.silu.default, _aten.sigmoid.default, _aten.tanh.default,
    _aten.hardswish.default, _aten.hardsigmoid.default, _aten.neg.default,
    _aten.exp.default, _aten.rsqrt.default, _aten.sqrt.default,
)  # fmt: skip
_BINARY = (
    _aten.add.Tensor, _aten.sub.Tensor, _aten.mul.Tensor, _aten.div.Tensor,
    _aten.add.Scalar, _aten.sub.Scalar, _aten.mul.Scalar, _aten.div.Scalar,
)  # fmt: skip

_FAST_KERNELS: dict[Any, Callable[[tuple, dict], Any]] = {
    _aten.native_batch_norm.default: _fast_batch_norm,
    _aten.native_layer_norm.default: _fast_layer_norm,
    _aten.native_group_norm.default: _fast_group_norm,
    _aten.addmm.default: _fast_addmm,
    _aten.convolution.default: _fast_convolution,
    _aten.mm.default: _fast_mm,
    _aten.bmm.default: _fast_mm,
    _aten.gelu.default: _fast_gelu,
    _aten._safe_softmax.default: _fast_safe_softmax,
    **dict.fromkeys(_UNARY, _fast_unary),
    **dict.fromkeys(_BINARY, _fast_binary),
}


# ----------------------------------------------------------------- layout memo
_SCALARS = (
    int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout,
)  # fmt: skip


class _LayoutMemo:
    """Output layouts of functional meta ops, keyed by their inputs' full metadata.

    A meta kernel only sees metadata, so the same op on the same shapes, strides, dtypes
    and arguments allocates the same outputs: a model's repeated blocks and the probe's
    repeated forwards then cost one dict lookup. Only ops that neither mutate nor alias
    (by schema and by storage) and return fresh strided tensors are remembered.
    """

    LIMIT = 8192

    def __init__(self) -> None:
        self.layouts: dict[tuple, tuple] = {}
        self.functional: dict[Any, bool] = {}

    def is_functional(self, func: Any) -> bool:
        ok = self.functional.get(func)
        if ok is None:
            ok = self.functional[func] = _is_functional(func)
        return ok

    def call(self, func: Any, args: tuple, kwargs: dict) -> Any:
        ok = self.functional.get(func)
        if ok is None:
            ok = self.functional[func] = _is_functional(func)
        key = _key(func, args, kwargs) if ok else None
        if key is None:
            return func(*args, **kwargs)
        layout = self.layouts.get(key)
        if layout is not None:
            return _rebuild(layout)
        out = func(*args, **kwargs)
        layout = _layout(out, args, kwargs)
        if layout is not None:
            if len(self.layouts) >= self.LIMIT:
                self.layouts.clear()
            self.layouts[key] = layout
        return out


def _is_functional(func: Any) -> bool:
    """Neither mutating nor aliasing by schema, returning only plain tensors."""
    schema = getattr(func, "_schema", None)
    if not isinstance(func, torch._ops.OpOverload) or schema is None or schema.is_mutable:
        return False
    if any(a.alias_info is not None for a in (*schema.arguments, *schema.returns)):
        return False
    if "view" in schema.name:  # _unsafe_view & co. alias without saying so
        return False
    return all(str(r.type) == "Tensor" for r in schema.returns) and len(schema.returns) > 0


def _key_of(v: Any, parts: list) -> bool:
    t = type(v)
    if t in _TENSORS:
        if not v.is_meta or v.layout != torch.strided or v.is_conj() or v.is_neg():
            return False
        parts.append((tuple(v.shape), v.stride(), v.storage_offset(), v.dtype))
        return True
    if t in (list, tuple):
        parts.append((t, len(v)))
        return all(_key_of(x, parts) for x in v)
    if t in _SCALARS:
        parts.append((t, v))
        return True
    return False


def _key(func: Any, args: tuple, kwargs: dict) -> tuple | None:
    """Everything a meta kernel reads; None when that is not certain.

    Factory ops (no tensor input) also read the default device, so they are not keyed;
    the default dtype decides int-tensor-times-float promotion, so it is part of the key.
    """
    if not any(type(a) in _TENSORS or (type(a) in (list, tuple) and a and type(a[0]) in _TENSORS)
               for a in args):  # fmt: skip
        return None
    parts: list = [func, torch.get_default_dtype()]
    if not _key_of(args, parts):
        return None
    for name in sorted(kwargs):
        parts.append(name)
        if not _key_of(kwargs[name], parts):
            return None
    return tuple(parts)


def _layout(out: Any, args: tuple, kwargs: dict) -> tuple | None:
    """(shape, stride, dtype) per output, if every output is a fresh meta tensor."""
    single = type(out) is torch.Tensor
    outs = (out,) if single else out
    if not isinstance(outs, tuple) or not outs:
        return None
    inputs: list = []
    _tensors((args, kwargs), inputs)
    storages = {t.untyped_storage()._cdata for t in inputs}
    layout = []
    for o in outs:
        if type(o) not in _TENSORS or not o.is_meta or o.layout != torch.strided:
            return None
        if o.storage_offset() != 0 or o.is_conj() or o.is_neg():
            return None
        if o.untyped_storage()._cdata in storages:
            return None
        storages.add(o.untyped_storage()._cdata)
        layout.append((tuple(o.shape), o.stride(), o.dtype))
    return (single, tuple(layout))


def _tensors(v: Any, found: list) -> None:
    if isinstance(v, torch.Tensor):
        found.append(v)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _tensors(x, found)
    elif isinstance(v, dict):
        _tensors(tuple(v.values()), found)


def _rebuild(layout: tuple) -> Any:
    single, specs = layout
    outs = tuple(torch.empty_strided(s, st, dtype=d, device="meta") for s, st, d in specs)
    return outs[0] if single else outs


class FastMeta(TorchDispatchMode):
    """No tracing, only `kernels.call`: for the probe's plain meta forwards."""

    def __init__(self, kernels: MetaKernels) -> None:
        super().__init__()
        self.kernels = kernels

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        return self.kernels.call(func, args, kwargs or {})
