"""Channel-flow rules for ATen ops.

Each rule reads the annotations of an op's inputs, writes those of its outputs,
and unites or locks slots. The rules are deliberately conservative: an op we do
not understand locks the channels that flow into it, so the worst case is a
channel we could have pruned and did not, never a broken model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from .annotation import EMPTY, Annotation, Axis, axis_at, shift
from .flatten import dispatch_tensors

if TYPE_CHECKING:
    from .tracer import ChannelTracer

Rule = Callable[["ChannelTracer", Any, tuple, dict, Any], None]
RULES: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn

    return deco


def apply(t: ChannelTracer, name: str, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    fn = RULES.get(name)
    if fn is None:
        if "batch_norm" in name:
            fn = RULES["native_batch_norm"]
        elif "scaled_dot_product" in name:
            fn = RULES["_sdpa"]
        elif "convolution" in name and "backward" not in name:
            fn = RULES["convolution"]
        else:
            fn = generic
    fn(t, func, args, kwargs, out)


def owning_layer(t: ChannelTracer, tensors: Sequence[torch.Tensor]) -> nn.Module | None:
    for x in tensors:
        p = t.param_of(x)
        if p is not None:
            owner = t.params[id(p)].owner
            if t.is_port_module(owner):
                return owner
    return None


# ----------------------------------------------------------------- helpers
def _tensors(obj: Any) -> list[torch.Tensor]:
    return dispatch_tensors(obj)


def lock_everything(t: ChannelTracer, args: tuple, kwargs: dict, out: Any, reason: str) -> None:
    for x in _tensors((args, kwargs)):
        t.lock_ann(t.ann(x), reason)
    for o in _tensors(out):
        t.set_ann(o, EMPTY)


def _norm_dim(d: int, nd: int) -> int:
    return d % nd if nd else 0


def merge_broadcast(
    t: ChannelTracer, out_shape: Sequence[int], inputs: Sequence[torch.Tensor], reason: str
) -> Annotation:
    """Elementwise ops with broadcasting: axes on the same dims are united.

    A channel dim that meets a same-sized dim without channels (a constant made
    in forward, the model's input) is locked: pruning it would break the op.
    """
    nd = len(out_shape)
    placed: list[Axis] = []
    shapes: list[tuple[int, ...]] = []
    anns: list[Annotation] = []
    strides: list[tuple[int, ...]] = []
    for x in inputs:
        shape = tuple(x.shape)
        ann = t.ann(x)
        shapes.append(shape)
        strides.append(tuple(x.stride()) if x.layout == torch.strided else (1,) * x.dim())
        anns.append(ann)
        off = nd - len(shape)
        if off < 0:
            t.lock_ann(ann, reason)
            continue
        for ax in ann:
            if all(shape[d] == out_shape[d + off] for d in ax.dims):
                placed.append(shift((ax,), off)[0])
            else:
                t.slots.lock(ax.slots, f"{reason}: channel dim changes size")
    result: list[Axis] = []
    dead: set[int] = set()
    for ax in placed:
        merged = False
        for k, other in enumerate(result):
            if k in dead or not set(ax.dims) & set(other.dims):
                continue
            if set(ax.dims) == set(other.dims) and ax.free == other.free:
                perm = [ax.dims.index(d) for d in other.dims]
                t.slots.unite(other.slots, np.transpose(ax.slots, perm))
            elif (joint := _absorb_single(t, ax, other, reason)) is not None:
                result[k] = joint
            else:
                t.slots.lock(ax.slots, f"{reason}: incompatible channel layouts")
                t.slots.lock(other.slots, f"{reason}: incompatible channel layouts")
                dead.add(k)
            merged = True
            break
        if not merged:
            result.append(ax)
    final = [ax for k, ax in enumerate(result) if k not in dead]
    # channel dims that meet unannotated dims of the same size must stay as they are
    kept: list[Axis] = []
    for ax in final:
        clash: set[int] = set()
        for shape, ann, stride in zip(shapes, anns, strides, strict=True):
            off = nd - len(shape)
            for d in ax.dims:
                di = d - off
                if di < 0 or shape[di] == 1 or stride[di] == 0:
                    continue  # broadcast or expanded (F.normalize's norm): one value
                if axis_at(ann, di) is None:
                    clash.add(d)
        if clash and len(ax.dims) > 1:
            # a joint axis (heads x head_dim) times a fixed tensor (RoPE's cos/sin): the
            # clashing dims keep their size, whole slices across them may still go
            for d in sorted(clash):
                _keep_size(t, ax, d)
            kept.append(ax)
        elif clash:
            t.slots.lock(ax.slots, f"{reason}: channels meet a fixed-size tensor")
        else:
            kept.append(ax)
    return tuple(kept)


def _keep_size(t: ChannelTracer, ax: Axis, dim: int) -> None:
    """Dim `dim` of joint axis `ax` must keep its size: unite the slots along it, so only
    whole slices across it (whole heads, when `dim` is head_dim) form removable units."""
    rows = np.moveaxis(ax.slots, ax.dims.index(dim), 0)
    t.slots.unite(rows, rows[0:1])


def head_representatives(joint: Axis, dim: int) -> np.ndarray:
    """The slots of a joint (heads x head_dim) axis along `dim`, taken at position 0 of
    every other dim: one slot per head, which stands for that whole head."""
    arr = np.moveaxis(joint.slots, joint.dims.index(dim), 0)
    return arr.reshape(arr.shape[0], -1)[:, 0]


def _absorb_single(t: ChannelTracer, a: Axis, b: Axis, reason: str) -> Axis | None:
    """A joint axis meeting a 1-dim axis on its free dim (q * cos, where cos comes from
    RoPE's inv_freq buffer): the joint axis keeps that dim's size, the 1-dim one is locked.
    On its heads dim instead (attention probabilities, whose heads axis `_contract` made
    of head representatives, times v): the per-head slots join each head's first dim."""
    for joint, single in ((a, b), (b, a)):
        if len(joint.dims) > 1 and single.dims == (joint.free,):
            _keep_size(t, joint, joint.free)
            t.slots.lock(single.slots, f"{reason}: sized by a joint channel layout")
            return joint
        if (len(joint.dims) == 2 and len(single.dims) == 1 and single.dims[0] in joint.dims
                and single.dims[0] != joint.free
                and single.slots.shape[0] == joint.slots.shape[joint.dims.index(single.dims[0])]):
            t.slots.unite(single.slots, head_representatives(joint, single.dims[0]))
            return joint
    return None


def generic(t: ChannelTracer, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Unknown op: treat as elementwise when shapes allow, otherwise lock."""
    name = func.overloadpacket.__name__
    ins = _tensors((args, kwargs))
    outs = _tensors(out)
    if not outs:
        for x in ins:
            t.lock_ann(t.ann(x), f"{name} consumes channels")
        return
    annotated = [x for x in ins if t.ann(x)]
    if not annotated:
        for o in outs:
            t.set_ann(o, EMPTY)
        return
    for o in outs:
        if o.dim() == 0:
            continue
        if any(x.dim() > o.dim() for x in annotated):
            for x in annotated:
                t.lock_ann(t.ann(x), f"{name} reduces rank")
            for o2 in outs:
                t.set_ann(o2, EMPTY)
            return
    for o in outs:
        t.set_ann(o, merge_broadcast(t, tuple(o.shape), ins, name) if o.dim() else EMPTY)


# --------------------------------------------------------- shape/layout ops
def reshape_annotation(
    t: ChannelTracer, in_shape: Sequence[int], out_shape: Sequence[int], ann: Annotation
) -> Annotation:
    """Carry slots through view/reshape exactly, chunk by chunk of equal products."""
    if not ann:
        return EMPTY
    if int(np.prod(in_shape)) == 0:
        return EMPTY
    in_nz = [d for d, s in enumerate(in_shape) if s != 1]
    out_nz = [d for d, s in enumerate(out_shape) if s != 1]
    chunks: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(in_nz) and j < len(out_nz):
        cin, cout = [in_nz[i]], [out_nz[j]]
        pi, pj = in_shape[in_nz[i]], out_shape[out_nz[j]]
        i += 1
        j += 1
        while pi != pj:
            if pi < pj:
                cin.append(in_nz[i])
                pi *= in_shape[in_nz[i]]
                i += 1
            else:
                cout.append(out_nz[j])
                pj *= out_shape[out_nz[j]]
                j += 1
        chunks.append((cin, cout))
    chunk_of = {d: k for k, (cin, _) in enumerate(chunks) for d in cin}
    per_chunk: dict[int, list[Axis]] = {}
    result: list[Axis] = []
    for ax in (_drop_unit_dims(a, in_shape) for a in ann):
        ks = {chunk_of.get(d) for d in ax.dims}
        if None in ks:
            t.slots.lock(ax.slots, "reshape: channel dim of size 1")
            continue
        if len(ks) == 1:
            per_chunk.setdefault(ks.pop(), []).append(ax)
            continue
        if all(len(chunks[k][0]) == 1 and len(chunks[k][1]) == 1 for k in ks):
            result.append(
                ax.remap({chunks[chunk_of[d]][0][0]: chunks[chunk_of[d]][1][0] for d in ax.dims})
            )
            continue
        joint = _reshape_joint(t, ax, sorted(ks), chunks, chunk_of, in_shape, out_shape)
        if joint is None:
            t.slots.lock(ax.slots, "reshape mixes a joint channel axis")
        else:
            result.append(joint)
    for k, axes in per_chunk.items():
        cin, cout = chunks[k]
        if len(axes) > 1:
            for ax in axes:
                t.slots.lock(ax.slots, "reshape merges two channel axes")
            continue
        ax = axes[0]
        if len(cin) == 1 and len(cout) == 1:
            result.append(ax.remap({cin[0]: cout[0]}))
            continue
        dims_sorted, arr = ax.in_tensor_order()
        index = tuple(slice(None) if d in dims_sorted else None for d in cin)
        comp = np.broadcast_to(arr[index], [in_shape[d] for d in cin])
        comp = np.ascontiguousarray(comp).reshape([out_shape[d] for d in cout])
        cout = list(cout)
        for i in reversed(range(len(cout) - 1)):
            # an out dim along which the slots repeat is a broadcast (bmm's (B * H) batch
            # split back into (B, H)): it carries no channel of its own
            if (comp == comp.take([0], axis=i)).all():
                comp = comp.take(0, axis=i)
                del cout[i]
        if len(cout) > 1:
            # only the innermost dim may shrink; the outer ones are structural
            rows = comp.reshape(-1, comp.shape[-1])
            t.slots.unite(rows, rows[0:1], structural=True)
        result.append(Axis(tuple(cout), comp, cout[-1]))
    return tuple(result)


def _drop_unit_dims(ax: Axis, shape: Sequence[int]) -> Axis:
    """A joint axis without its size-1 structural dims (multi-query attention's single
    KV head, `(B, N, 1, D)`): one slot along them, so they carry nothing. The free dim stays."""
    keep = [i for i, d in enumerate(ax.dims) if shape[d] != 1]
    if len(keep) in (0, len(ax.dims)) or shape[ax.free] == 1:
        return ax
    index = tuple(slice(None) if i in keep else 0 for i in range(len(ax.dims)))
    return Axis(tuple(ax.dims[i] for i in keep), ax.slots[index], ax.free)


def _reshape_joint(
    t: ChannelTracer,
    ax: Axis,
    ks: list[int],
    chunks: list[tuple[list[int], list[int]]],
    chunk_of: dict[int, int],
    in_shape: Sequence[int],
    out_shape: Sequence[int],
) -> Axis | None:
    """A joint axis reshaped together with broadcast dims, e.g. GQA's
    `k[:, :, None].expand(B, Hkv, rep, N, D).reshape(B, Hkv * rep, N, D)` or a
    `(B * H, N, D)` batched matmul: exact while the free dim stays innermost.
    Out dims along which the slots do not vary (pure broadcast) are dropped."""
    cin_f, cout_f = chunks[chunk_of[ax.free]]
    if cin_f[-1] != ax.free:
        return None
    in_dims = [d for k in ks for d in chunks[k][0]]
    out_dims = [d for k in ks for d in chunks[k][1]]
    if int(np.prod([in_shape[d] for d in in_dims])) > 4_000_000:
        return None
    dims_sorted, arr = ax.in_tensor_order()
    index = tuple(slice(None) if d in dims_sorted else None for d in in_dims)
    comp = np.broadcast_to(arr[index], [in_shape[d] for d in in_dims])
    comp = np.ascontiguousarray(comp).reshape([out_shape[d] for d in out_dims])
    free = cout_f[-1]
    for i in reversed(range(len(out_dims))):
        if out_dims[i] != free and (comp == comp.take([0], axis=i)).all():
            comp = comp.take(0, axis=i)
            del out_dims[i]
    fpos = out_dims.index(free)
    rows = np.moveaxis(comp, fpos, -1).reshape(-1, comp.shape[fpos])
    t.slots.unite(rows, rows[0:1], structural=True)
    return Axis(tuple(out_dims), comp, free)


@rule(
    "view",
    "_unsafe_view",
    "reshape",
    "_reshape_alias",
    "unsqueeze",
    "squeeze",
    "view_copy",
    "_reshape_copy",
    "flatten",
    "unflatten",
    "unsqueeze_",
    "squeeze_",
    "view_as",
)
def _view(t, func, args, kwargs, out):
    x = args[0]
    t.set_ann(out, reshape_annotation(t, tuple(x.shape), tuple(out.shape), t.ann(x)))


@rule("permute", "permute_copy")
def _permute(t, func, args, kwargs, out):
    x, dims = args[0], args[1]
    nd = x.dim()
    mapping = {_norm_dim(d, nd): i for i, d in enumerate(dims)}
    t.set_ann(out, tuple(ax.remap(mapping) for ax in t.ann(x)))


@rule("transpose", "transpose_", "t", "t_", "transpose_copy", "swapaxes", "swapdims")
def _transpose(t, func, args, kwargs, out):
    x = args[0]
    nd = x.dim()
    if nd < 2:
        t.set_ann(out, t.ann(x))
        return
    d0, d1 = (args[1], args[2]) if len(args) >= 3 else (0, 1)
    d0, d1 = _norm_dim(d0, nd), _norm_dim(d1, nd)
    mapping = {d: d for d in range(nd)}
    mapping[d0], mapping[d1] = d1, d0
    t.set_ann(out, tuple(ax.remap(mapping) for ax in t.ann(x)))


@rule("expand", "expand_copy")
def _expand(t, func, args, kwargs, out):
    x = args[0]
    t.set_ann(out, shift(t.ann(x), out.dim() - x.dim()))


@rule(
    "alias",
    "detach",
    "clone",
    "contiguous",
    "_to_copy",
    "to",
    "lift_fresh",
    "lift_fresh_copy",
    "dropout",
    "native_dropout",
    "_to_dense",
    "detach_",
    "type_as",
)
def _same(t, func, args, kwargs, out):
    x = args[0]
    for o in _tensors(out):
        if tuple(o.shape) == tuple(x.shape):
            t.set_ann(o, t.ann(x))
        else:
            t.set_ann(o, EMPTY)


@rule("flip")
def _flip(t, func, args, kwargs, out):
    x, dims = args[0], [_norm_dim(d, args[0].dim()) for d in args[1]]
    res = []
    for ax in t.ann(x):
        arr = ax.slots
        for d in dims:
            if d in ax.dims:
                arr = np.flip(arr, axis=ax.dims.index(d))
        res.append(Axis(ax.dims, np.ascontiguousarray(arr), ax.free))
    t.set_ann(out, tuple(res))


@rule("roll", "sort", "argsort", "topk", "kthvalue", "msort", "cummax", "cummin")
def _order_sensitive(t, func, args, kwargs, out):
    """Ops that reorder elements along a dim: fine on spatial dims, locked on channels."""
    x = args[0]
    ann = t.ann(x)
    if func.overloadpacket.__name__ == "roll":
        dims = args[2] if len(args) > 2 else kwargs.get("dims", [])
        dims = list(range(x.dim())) if not dims else [_norm_dim(d, x.dim()) for d in dims]
    else:
        dim = args[1] if len(args) > 1 and isinstance(args[1], int) else kwargs.get("dim", -1)
        if func.overloadpacket.__name__ in ("topk", "kthvalue"):
            dim = args[2] if len(args) > 2 else kwargs.get("dim", -1)
        dims = [_norm_dim(dim, x.dim())]
    kept = []
    for ax in ann:
        if set(ax.dims) & set(dims):
            t.slots.lock(ax.slots, f"{func.overloadpacket.__name__} along a channel dim")
        else:
            kept.append(ax)
    for o in _tensors(out):
        t.set_ann(o, tuple(kept) if tuple(o.shape)[: x.dim()] and o.dim() == x.dim() else EMPTY)


@rule("cat", "concat", "concatenate")
def _cat(t, func, args, kwargs, out):
    tensors = [x for x in args[0] if x.numel() > 0 or x.dim() > 1]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    nd = out.dim()
    dim = _norm_dim(dim, nd)
    joint = _cat_joint(t, tensors, dim)
    if joint is not None:
        others = [a for x in tensors for a in t.ann(x) if dim not in a.dims]
        t.set_ann(out, tuple(_merge_axes(t, others, "cat")) + (joint,))
        return
    pieces: list[np.ndarray] = []
    any_ann = False
    others: list[Axis] = []
    for x in tensors:
        ann = t.ann(x)
        ax = axis_at(ann, dim)
        if ax is not None and ax.dims != (dim,):
            t.slots.lock(ax.slots, "cat along a joint channel axis")
            ax = None
        if ax is not None:
            pieces.append(ax.slots)
            any_ann = True
        else:
            pieces.append(np.full(x.shape[dim], -1, dtype=np.int64))
        others.extend(a for a in ann if dim not in a.dims)
    # the other dims behave like an elementwise op between the inputs
    rest = _merge_axes(t, others, "cat")
    res = list(rest)
    if any_ann:
        res.append(Axis.single(dim, np.concatenate(pieces)))
    t.set_ann(out, tuple(res))


def _cat_joint(t: ChannelTracer, tensors: Sequence[torch.Tensor], dim: int) -> Axis | None:
    """cat of equally laid out joint axes along one of their dims (RoPE's
    cat((-x2, x1), -1) inside every head): the slot arrays concatenate exactly."""
    axes = [axis_at(t.ann(x), dim) for x in tensors]
    if not axes or any(a is None or len(a.dims) < 2 for a in axes):
        return None
    first = axes[0]
    if any(a.dims != first.dims or a.free != first.free for a in axes):
        return None
    try:
        slots = np.concatenate([a.slots for a in axes], axis=first.dims.index(dim))
    except ValueError:
        return None
    return Axis(first.dims, slots, first.free)


def _heads_meet_joint(a: Axis, b: Axis) -> Axis | None:
    """The joint axis, if one of `a`, `b` is a 1-dim axis on the other's heads dim."""
    for joint, single in ((a, b), (b, a)):
        if (len(joint.dims) == 2 and len(single.dims) == 1 and single.dims[0] in joint.dims
                and single.dims[0] != joint.free
                and single.slots.shape[0] == joint.slots.shape[joint.dims.index(single.dims[0])]):
            return joint
    return None


def _merge_axes(t: ChannelTracer, axes: list[Axis], reason: str) -> list[Axis]:
    result: list[Axis] = []
    for ax in axes:
        for other in result:
            if set(ax.dims) & set(other.dims):
                if set(ax.dims) == set(other.dims) and ax.slots.size == other.slots.size:
                    perm = [ax.dims.index(d) for d in other.dims]
                    t.slots.unite(other.slots, np.transpose(ax.slots, perm))
                elif (joint := _heads_meet_joint(ax, other)) is not None:
                    # probabilities (one representative slot per head, see _contract) @ v:
                    # the heads are already tied to q/k upstream; v keeps its own layout
                    result[result.index(other)] = joint
                else:
                    t.slots.lock(ax.slots, reason)
                    t.slots.lock(other.slots, reason)
                break
        else:
            result.append(ax)
    return result


@rule("stack")
def _stack(t, func, args, kwargs, out):
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    dim = _norm_dim(dim, out.dim())
    axes = []
    for x in tensors:
        for ax in t.ann(x):
            axes.append(ax.remap({d: (d if d < dim else d + 1) for d in ax.dims}))
    t.set_ann(out, tuple(_merge_axes(t, axes, "stack")))


def _slice_axis(ax: Axis, dim: int, sl: slice | int) -> Axis | None:
    """Slice a joint axis along one of its structural dims (or drop it for an int)."""
    pos = ax.dims.index(dim)
    index = [slice(None)] * len(ax.dims)
    index[pos] = sl
    arr = ax.slots[tuple(index)]
    if isinstance(sl, int):
        dims = tuple(d for d in ax.dims if d != dim)
        dims = tuple(d - 1 if d > dim else d for d in dims)
        free = ax.free - 1 if ax.free > dim else ax.free
        return Axis(dims, arr, free) if dims else None
    return Axis(ax.dims, arr, ax.free)


def _split_like(t, x: torch.Tensor, outs: list[torch.Tensor], dim: int, drop_dim: bool, name: str):
    nd = x.dim()
    dim = _norm_dim(dim, nd)
    ann = t.ann(x)
    sizes = [o.shape[dim] if not drop_dim else 1 for o in outs]
    offsets = np.cumsum([0] + sizes[:-1])
    ax = axis_at(ann, dim)
    rest = [a for a in ann if a is not ax]

    def moved(a: Axis) -> Axis:
        return a.remap({d: (d - 1 if drop_dim and d > dim else d) for d in a.dims})

    piece_axes: list[Axis | None] = [None] * len(outs)
    if ax is not None:
        if ax.free != dim:  # structural dim of a joint axis: exact and always valid
            for k in range(len(outs)):
                sl: slice | int = (
                    int(offsets[k])
                    if drop_dim
                    else slice(int(offsets[k]), int(offsets[k] + sizes[k]))
                )
                piece_axes[k] = _slice_axis(ax, dim, sl)
        elif ax.dims == (dim,) and not drop_dim and len(set(sizes)) == 1:
            # equal chunks (torch.chunk): each chunk must lose the same positions
            parts = [ax.slots[int(o) : int(o) + s] for o, s in zip(offsets, sizes, strict=True)]
            for p in parts[1:]:
                t.slots.unite(parts[0], p)
            piece_axes = [Axis.single(dim, p) for p in parts]
        elif len(ax.dims) > 1 and not drop_dim:
            # RoPE by halves of every head (GPT-OSS: torch.chunk(x, 2, dim=-1)), as
            # rotate_half's slices: head_dim keeps its size, whole heads may still go
            _keep_size(t, ax, dim)
            for k in range(len(outs)):
                piece = slice(int(offsets[k]), int(offsets[k] + sizes[k]))
                piece_axes[k] = _slice_axis(ax, dim, piece)
        else:
            t.slots.lock(ax.slots, f"{name} of a channel dim into fixed pieces")
    for k, o in enumerate(outs):
        res = [moved(a) for a in rest]
        if piece_axes[k] is not None:
            res.append(piece_axes[k])
        t.set_ann(o, tuple(res))


@rule(
    "split",
    "split_with_sizes",
    "unsafe_split",
    "split_copy",
    "split_with_sizes_copy",
    "unsafe_split_with_sizes",
    "chunk",
    "tensor_split",
)
def _split(t, func, args, kwargs, out):
    x = args[0]
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    _split_like(t, x, list(out), dim, False, func.overloadpacket.__name__)


@rule("unbind", "unbind_copy")
def _unbind(t, func, args, kwargs, out):
    x = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    _split_like(t, x, list(out), dim, True, "unbind")


@rule("slice", "slice_copy")
def _slice(t, func, args, kwargs, out):
    x = args[0]
    nd = x.dim()
    dim = _norm_dim(args[1] if len(args) > 1 else kwargs.get("dim", 0), nd)
    size = x.shape[dim]
    start = args[2] if len(args) > 2 else kwargs.get("start", None)
    end = args[3] if len(args) > 3 else kwargs.get("end", None)
    step = args[4] if len(args) > 4 else kwargs.get("step", 1)
    start, end, step = slice(start, end, step).indices(size)
    ann = t.ann(x)
    if start == 0 and end >= size and step == 1:
        t.set_ann(out, ann)
        return
    res = []
    for ax in ann:
        if dim not in ax.dims:
            res.append(ax)
        elif ax.free != dim:
            res.append(_slice_axis(ax, dim, slice(start, end, step)))
        elif len(ax.dims) > 1:  # RoPE's rotate_half: x[..., : head_dim // 2] of every head
            _keep_size(t, ax, dim)
            res.append(_slice_axis(ax, dim, slice(start, end, step)))
        else:
            t.slots.lock(ax.slots, "slice of a channel dim with fixed bounds")
    t.set_ann(out, tuple(res))


@rule("select", "select_copy")
def _select(t, func, args, kwargs, out):
    x = args[0]
    nd = x.dim()
    dim = _norm_dim(args[1], nd)
    index = args[2] % x.shape[dim]
    res = []
    for ax in t.ann(x):
        if dim not in ax.dims:
            res.append(ax.remap({d: (d - 1 if d > dim else d) for d in ax.dims}))
        elif ax.free != dim:
            a = _slice_axis(ax, dim, index)
            if a is not None:
                res.append(a)
        else:
            t.slots.lock(ax.slots, "select of one channel")
    t.set_ann(out, tuple(res))


@rule("index_select", "gather", "take_along_dim")
def _index_dim(t, func, args, kwargs, out):
    x = args[0]
    dim = _norm_dim(args[1], x.dim())
    res = []
    for ax in t.ann(x):
        if dim in ax.dims:
            t.slots.lock(ax.slots, "indexing a channel dim")
        else:
            res.append(ax)
    same_rank = out.dim() == x.dim()
    t.set_ann(out, tuple(res) if same_rank else EMPTY)


@rule("index", "_unsafe_index")
def _index(t, func, args, kwargs, out):
    x, indices = args[0], list(args[1])
    lead = 0
    while lead < len(indices) and indices[lead] is not None:
        lead += 1
    if any(i is not None for i in indices[lead:]):
        lock_everything(t, args, kwargs, out, "advanced indexing")
        return
    idx_nd = out.dim() - (x.dim() - lead)
    res = []
    for ax in t.ann(x):
        if any(d < lead for d in ax.dims):
            t.slots.lock(ax.slots, "indexing a channel dim")
        else:
            res.append(ax.remap({d: d - lead + idx_nd for d in ax.dims}))
    t.set_ann(out, tuple(res))


@rule(
    "repeat",
    "tile",
    "repeat_interleave",
    "pixel_shuffle",
    "pixel_unshuffle",
    "im2col",
    "col2im",
    "unfold",
    "as_strided",
    "index_put",
    "index_put_",
    "scatter",
    "scatter_",
    "scatter_add",
    "masked_scatter",
    "copy_",
    "_local_scalar_dense",
    "nonzero",
    "bincount",
    "diagonal",
    "diag_embed",
    "tril",
    "triu",
    "cross",
    "embedding_bag",
    "_embedding_bag",
)
def _lock(t, func, args, kwargs, out):
    name = func.overloadpacket.__name__
    if name in ("copy_",) and tuple(args[0].shape) == tuple(args[1].shape):
        t.set_ann(out, merge_broadcast(t, tuple(args[0].shape), [args[0], args[1]], name))
        return
    if name in ("tril", "triu") and all(ax.dims[0] < args[0].dim() - 2 for ax in t.ann(args[0])):
        t.set_ann(out, t.ann(args[0]))
        return
    lock_everything(t, args, kwargs, out, f"{name} is not channel-aware")


# ------------------------------------------------------------- reductions
@rule(
    "sum",
    "mean",
    "amax",
    "amin",
    "max",
    "min",
    "var",
    "std",
    "var_mean",
    "std_mean",
    "prod",
    "logsumexp",
    "norm",
    "linalg_vector_norm",
    "argmax",
    "argmin",
    "any",
    "all",
    "nansum",
    "nanmean",
    "median",
    "mode",
)
def _reduce(t, func, args, kwargs, out):
    x = args[0]
    nd = x.dim()
    outs = _tensors(out)
    dims: Any = None
    if len(args) > 1 and not isinstance(args[1], torch.Tensor):
        dims = args[1]
    dims = kwargs.get("dim", dims)
    if func.overloadpacket.__name__ in ("norm", "linalg_vector_norm") and len(args) > 2:
        dims = args[2]
    if isinstance(dims, int):
        dims = [dims]
    if not dims:
        if len(args) > 1 and not isinstance(args[1], (int, list, tuple)) and not outs:
            pass
        if any(o.dim() == nd for o in outs) and not dims and outs and outs[0].dim() == nd:
            # elementwise overload (torch.max(a, b)) shares the name
            generic(t, func, args, kwargs, out)
            return
        dims = list(range(nd))
    red = {_norm_dim(d, nd) for d in dims}
    keep = outs[0].dim() == nd if outs else False
    res = []
    for ax in t.ann(x):
        inter = set(ax.dims) & red
        if not inter:
            mapping = {d: d if keep else d - sum(1 for r in red if r < d) for d in ax.dims}
            res.append(ax.remap(mapping))
        elif ax.free not in red and len(ax.dims) > 1:
            # reduced a structural dim: the free dim keeps its (already united) channels
            pos = ax.dims.index(ax.free)
            arr = np.moveaxis(ax.slots, pos, -1).reshape(-1, ax.slots.shape[pos])[0]
            d = ax.free
            res.append(Axis.single(d if keep else d - sum(1 for r in red if r < d), arr))
        elif red & set(ax.dims) == {ax.free} and len(ax.dims) == 2:
            # reduced head_dim of (heads x head_dim), e.g. the norm in F.normalize(q): one
            # value per head remains, carried by the head representatives (as in _contract)
            (d,) = [x for x in ax.dims if x != ax.free]
            res.append(Axis.single(d if keep else d - sum(1 for r in red if r < d),
                                   head_representatives(ax, d)))
        # channels reduced away: pruning them changes values, not structure
    for o in outs:
        t.set_ann(o, tuple(res) if o.dim() == (nd if keep else nd - len(red)) else EMPTY)


# ------------------------------------------------------------ layer ops
def _channel_axis(t: ChannelTracer, x: torch.Tensor, dim: int, what: str) -> np.ndarray | None:
    """Slots of dim `dim` of `x`, or None; joint axes there are locked."""
    ax = axis_at(t.ann(x), dim)
    if ax is None:
        return None
    if ax.dims != (dim,):
        t.slots.lock(ax.slots, f"{what}: channels arrive in a joint layout")
        return None
    return ax.slots


def _fresh_or(slots: np.ndarray | None, t: ChannelTracer, n: int) -> np.ndarray:
    return slots if slots is not None else t.slots.new((n,))


@rule("convolution", "_convolution", "conv2d", "conv1d", "conv3d", "convolution_overrideable")
def _conv(t, func, args, kwargs, out):
    x, w, b = args[0], args[1], args[2] if len(args) > 2 else None
    transposed = bool(args[6]) if len(args) > 6 else False
    groups = int(args[8]) if len(args) > 8 else 1
    cdim = 1 if x.dim() == w.dim() else 0
    xs = _channel_axis(t, x, cdim, "conv")
    w0 = t.param_dim_slots(w, 0) if t.param_of(w) is w else _axis_slots(t, w, 0)
    w1 = t.param_dim_slots(w, 1) if t.param_of(w) is w else _axis_slots(t, w, 1)
    cin = x.shape[cdim]
    cout = out.shape[cdim]
    owner = owning_layer(t, [w])
    rest = [a for a in t.ann(x) if cdim not in a.dims and a.dims and all(d < cdim for d in a.dims)]
    if not transposed:
        w0 = _fresh_or(w0, t, w.shape[0])
        per_in = cin // groups
        per_out = cout // groups
        if groups == 1:
            w1 = _fresh_or(w1, t, w.shape[1])
            if xs is not None:
                t.slots.unite(xs, w1)
            else:
                t.slots.lock(w1, "conv input channels are fixed")
            out_slots, in_slots = w0, w1
        elif per_in == 1:  # depthwise (optionally with a channel multiplier)
            grid = w0.reshape(groups, per_out)
            if xs is not None:
                t.slots.unite(grid, xs[:, None])
            else:
                t.slots.lock(w0, "depthwise conv input channels are fixed")
            out_slots, in_slots = w0, None
        else:  # grouped: every group keeps the same within-group positions
            w1 = _fresh_or(w1, t, w.shape[1])
            grid_in = (xs if xs is not None else np.full(cin, -1)).reshape(groups, per_in)
            t.slots.unite(grid_in, w1[None, :])
            if xs is None:
                t.slots.lock(w1, "conv input channels are fixed")
            grid_out = w0.reshape(groups, per_out)
            t.slots.unite(grid_out, grid_out[0:1])
            out_slots, in_slots = w0, (xs if xs is not None else np.tile(w1, groups))
    else:
        w0 = _fresh_or(w0, t, w.shape[0])
        w1 = _fresh_or(w1, t, w.shape[1])
        per_in = cin // groups
        if groups == 1:
            if xs is not None:
                t.slots.unite(xs, w0)
            else:
                t.slots.lock(w0, "conv input channels are fixed")
            out_slots, in_slots = w1, w0
        elif per_in == 1 and w.shape[1] == 1:
            if xs is not None:
                t.slots.unite(xs, w0)
            out_slots, in_slots = w0, None
        else:
            grid_in = w0.reshape(groups, per_in)
            t.slots.unite(grid_in, grid_in[0:1])
            if xs is not None:
                t.slots.unite(xs, w0)
            else:
                t.slots.lock(w0, "conv input channels are fixed")
            out_slots, in_slots = np.tile(w1, groups), w0
    if isinstance(b, torch.Tensor):
        bs = _axis_slots(t, b, 0)
        if bs is not None:
            t.slots.unite(bs, out_slots)
    if owner is not None:
        t.add_port(owner, "out", out_slots)
        if in_slots is not None:
            t.add_port(owner, "in", in_slots)
    t.set_ann(out, tuple(rest) + (Axis.single(cdim, out_slots),))


def _axis_slots(t: ChannelTracer, x: torch.Tensor, dim: int) -> np.ndarray | None:
    ax = axis_at(t.ann(x), dim % max(x.dim(), 1))
    return ax.slots if ax is not None and len(ax.dims) == 1 else None


def _contract(t: ChannelTracer, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor,
              scores_seen: bool = True) -> Annotation:
    """Batched matrix product a @ b: unite the contracted dims, carry the rest."""
    ra, rb, ro = a.dim(), b.dim(), out.dim()
    ann_a, ann_b = t.ann(a), t.ann(b)
    ka, kb = ra - 1, rb - 2 if rb >= 2 else 0

    def a_to_out(d: int) -> int | None:
        if d == ka:
            return None
        return d + (ro - ra)

    def b_to_out(d: int) -> int | None:
        if d == kb:
            return None
        if rb == 1:
            return None
        return d + (ro - rb)

    def a_to_b(d: int) -> int | None:
        if d == ka:
            return kb
        if rb <= 2:
            return None
        o = d + (ro - ra)
        return o - (ro - rb)

    out_axes: list[Axis] = []
    matched_b: set[int] = set()
    for ax in ann_a:
        if ka not in ax.dims:
            out_axes.append(ax.remap({d: a_to_out(d) for d in ax.dims}))
            continue
        mapped = [a_to_b(d) for d in ax.dims]
        partner = None
        if None not in mapped:
            for k, bx in enumerate(ann_b):
                if set(bx.dims) == set(mapped):
                    partner = (k, bx)
                    break
        if partner is None:
            kb_ax = axis_at(ann_b, kb)
            if kb_ax is None and b.shape[kb] == 1:
                continue
            t.slots.lock(ax.slots, "matmul: contracted channels meet fixed ones")
            if kb_ax is not None:
                t.slots.lock(kb_ax.slots, "matmul: contracted channels meet fixed ones")
            continue
        k, bx = partner
        matched_b.add(k)
        perm = [bx.dims.index(m) for m in mapped]
        t.slots.unite(ax.slots, np.transpose(bx.slots, perm))
        rest = [d for d in ax.dims if d != ka]
        if ax.free == ka and len(rest) == 1 and a_to_out(rest[0]) is not None:
            # q @ k^T over head_dim: the scores keep a heads axis, one representative slot
            # per head, so per-head tensors added to them (Swin's relative position bias)
            # follow whole heads
            reps = head_representatives(ax, rest[0])
            if scores_seen:  # (fused sdpa never shows its scores to per-head tensors)
                t.head_reps.append(reps)
            out_axes.append(Axis.single(a_to_out(rest[0]), reps))
    for k, bx in enumerate(ann_b):
        if k in matched_b:
            continue
        if kb in bx.dims:
            if axis_at(ann_a, ka) is None and a.shape[ka] > 1:
                t.slots.lock(bx.slots, "matmul: contracted channels meet fixed ones")
            continue
        if None in [b_to_out(d) for d in bx.dims]:
            continue
        out_axes.append(bx.remap({d: b_to_out(d) for d in bx.dims}))
    return tuple(_merge_axes(t, out_axes, "matmul batch dims"))


def _register_linear(t: ChannelTracer, weight_like: torch.Tensor, transposed: bool) -> None:
    p = t.param_of(weight_like)
    if p is None or p.dim() != 2:
        return
    owner = owning_layer(t, [weight_like])
    if owner is None or isinstance(owner, nn.Embedding):
        return  # a tied head (F.linear(x, embedding.weight)) is coupled by the weight's slots
    w0, w1 = t.param_dim_slots(p, 0), t.param_dim_slots(p, 1)
    if transposed and weight_like is p:  # x @ W with W stored (in, out), e.g. HF Conv1D
        w0, w1 = w1, w0
    if w0 is not None:
        t.add_port(owner, "out", w0)
    if w1 is not None:
        t.add_port(owner, "in", w1)


@rule("mm", "bmm", "matmul", "_weight_int8pack_mm")
def _mm(t, func, args, kwargs, out):
    a, b = args[0], args[1]
    _register_linear(t, b, True)
    t.set_ann(out, _contract(t, a, b, out))


@rule("addmm", "baddbmm", "addbmm")
def _addmm(t, func, args, kwargs, out):
    bias, a, b = args[0], args[1], args[2]
    _register_linear(t, b, True)
    prod = _contract(t, a, b, out)
    # only the shape matters for merging: a meta placeholder carries the product's annotation
    shaped = torch.empty(out.shape, device="meta")
    t.set_ann(shaped, prod)
    t.set_ann(out, merge_broadcast(t, tuple(out.shape), [shaped, bias], "addmm bias"))


@rule("linear")
def _linear(t, func, args, kwargs, out):
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else kwargs.get("bias")
    _register_linear(t, w, False)
    wt = torch.empty(tuple(reversed(w.shape)), device="meta")
    t.set_ann(wt, tuple(ax.remap({0: 1, 1: 0}) for ax in t.ann(w)))
    prod = _contract(t, x, wt, out)
    shaped = torch.empty(out.shape, device="meta")
    t.set_ann(shaped, prod)
    ins = [shaped] + ([b] if isinstance(b, torch.Tensor) else [])
    t.set_ann(out, merge_broadcast(t, tuple(out.shape), ins, "linear bias"))


@rule("embedding")
def _embedding(t, func, args, kwargs, out):
    w = args[0]
    p = t.param_of(w)
    w1 = t.param_dim_slots(p, 1) if p is not None else _axis_slots(t, w, 1)
    w0 = _axis_slots(t, w, 0)
    if w0 is not None:
        t.slots.lock(w0, "embedding rows are indexed")
    owner = owning_layer(t, [w])
    if w1 is None:
        t.set_ann(out, EMPTY)
        return
    if owner is not None:
        t.add_port(owner, "out", w1)
    t.set_ann(out, (Axis.single(out.dim() - 1, w1),))


def _norm_op(
    t: ChannelTracer, x: torch.Tensor, cdim: int, params: list[Any], out: Any, groups: int = 1
) -> None:
    """Norm layers: the scale/shift/statistics share the input's channel slots."""
    outs = _tensors(out)
    xs = _channel_axis(t, x, cdim, "norm")
    ps = [p for p in params if isinstance(p, torch.Tensor) and p.dim() == 1 and p.shape[0] > 1]
    if xs is None and ps:
        xs = _axis_slots(t, ps[0], 0)
        if xs is not None and axis_at(t.ann(x), cdim) is None and x.shape[cdim] > 1:
            t.slots.lock(xs, "norm over fixed input channels")
    for p in ps:
        s = _axis_slots(t, p, 0)
        if s is not None and xs is not None:
            t.slots.unite(s, xs)
    if xs is not None and groups > 1:
        grid = xs.reshape(groups, -1)
        t.slots.unite(grid, grid[0:1])
    owner = owning_layer(t, ps) or (
        t.current_module()
        if t.current_module() is not None and t.is_port_module(t.current_module())
        else None
    )
    if owner is not None and xs is not None:
        t.add_port(owner, "out", xs)
    rest = tuple(a for a in t.ann(x) if cdim not in a.dims)
    first = rest + ((Axis.single(cdim, xs),) if xs is not None else ())
    t.set_ann(outs[0], first)
    for o in outs[1:]:
        t.set_ann(o, EMPTY)


@rule(
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "batch_norm",
    "_batch_norm_impl_index",
    "cudnn_batch_norm",
    "_native_batch_norm_legit_functional",
)
def _batch_norm(t, func, args, kwargs, out):
    x = args[0]
    params = [a for a in args[1:] if isinstance(a, torch.Tensor)]
    _norm_op(t, x, 1 if x.dim() > 1 else 0, params, out)


@rule("native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm")
def _layer_norm(t, func, args, kwargs, out):
    x, shape = args[0], args[1]
    params = [a for a in args[2:] if isinstance(a, torch.Tensor)]
    if len(shape) > 1:
        if any(d >= x.dim() - len(shape) for ax in t.ann(x) for d in ax.dims):
            lock_everything(t, args, kwargs, out, "layer norm over several channel dims")
            return
    _norm_op(t, x, x.dim() - 1, params, out)


@rule("native_group_norm", "group_norm")
def _group_norm(t, func, args, kwargs, out):
    x = args[0]
    params = [a for a in args[1:3] if isinstance(a, torch.Tensor)]
    groups = int(args[6]) if len(args) > 6 else 1
    _norm_op(t, x, 1, params, out, groups=groups)


@rule("_prelu_kernel", "prelu")
def _prelu(t, func, args, kwargs, out):
    x, w = args[0], args[1]
    if w.numel() == 1:
        t.set_ann(out, t.ann(x))
        return
    _norm_op(t, x, 1 if x.dim() > 1 else 0, [w], out)


def _repeat_kv_heads(t: ChannelTracer, x: torch.Tensor, heads: int) -> torch.Tensor:
    """sdpa's enable_gqa: KV head g serves q heads g*rep .. (g+1)*rep-1, as repeat_kv's
    expand + reshape would; a stand-in whose heads dim is repeated, slots and all."""
    nd, hd = x.dim(), x.dim() - 3
    if nd < 3 or x.shape[hd] == heads or heads % x.shape[hd]:
        return x
    rep = heads // x.shape[hd]
    shape = list(x.shape)
    shape[hd] = heads
    stand_in = torch.empty(shape, device="meta")
    axes = []
    for ax in t.ann(x):
        if hd in ax.dims:
            ax = Axis(ax.dims, np.repeat(ax.slots, rep, axis=ax.dims.index(hd)), ax.free)
        axes.append(ax)
    t.set_ann(stand_in, tuple(axes))
    return stand_in


@rule("_sdpa")
def _sdpa(t, func, args, kwargs, out):
    q, k, v = args[0], args[1], args[2]
    nd = q.dim()
    if nd >= 3:  # grouped-query attention without repeat_kv (enable_gqa=True)
        k, v = _repeat_kv_heads(t, k, q.shape[-3]), _repeat_kv_heads(t, v, q.shape[-3])
    _contract(t, q, _transposed_view(t, k), q, scores_seen=False)  # unites q's and k's channels
    outs = _tensors(out)
    v_ann = tuple(ax for ax in t.ann(v) if nd - 2 not in ax.dims)
    t.set_ann(outs[0], v_ann)
    for o in outs[1:]:
        t.set_ann(o, EMPTY)
    for x in _tensors((args[3:], kwargs)):
        t.lock_ann(t.ann(x), "attention mask over channels")


def _transposed_view(t: ChannelTracer, k: torch.Tensor) -> torch.Tensor:
    nd = k.dim()
    shape = list(k.shape)
    shape[-1], shape[-2] = shape[-2], shape[-1]
    kt = torch.empty(shape, device="meta")
    mapping = {d: d for d in range(nd)}
    mapping[nd - 1], mapping[nd - 2] = nd - 2, nd - 1
    t.set_ann(kt, tuple(ax.remap(mapping) for ax in t.ann(k)))
    return kt


RULES["scaled_dot_product_attention"] = _sdpa
