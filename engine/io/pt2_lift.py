"""Lift a torch.export program back into prunable layers.

``ExportedProgram.module()`` is a flat fx graph calling ATen ops (``aten.conv2d``,
``aten.linear``, ``aten.batch_norm`` ...) on parameters fetched with ``get_attr``.
The pruning engine works on ``nn.Module`` layers, so such a graph has nothing to
prune. ``lift_exported_program`` rewrites each of those op calls into a call of a
real ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d`` ... holding the very same
Parameters and buffers, named after the original module path. Every other node is
kept as is. The result is checked numerically against the unlifted module; on any
doubt the unlifted module is returned with a warning, never a different model.
"""

from __future__ import annotations

import contextlib
import copy
import keyword
import math
import operator
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree

__all__ = ["LiftReport", "Pt2LiftWarning", "is_lifted", "lift_exported_program", "lift_with_report"]

aten = torch.ops.aten
LIFTED_ATTR = "_arborist_lifted_layers"
TOLERANCE = 1e-6


class Pt2LiftWarning(UserWarning):
    """The program could not be lifted safely; the flat (unprunable) module is used."""


@dataclass
class LiftReport:
    """What the lift did: lifted layer names, or why it fell back."""

    module: nn.Module
    lifted: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    max_abs_diff: float | None = None


@dataclass
class _Site:
    """One liftable op call: the module it becomes and how to call it."""

    node: fx.Node
    key: tuple[Any, ...]
    build: Callable[[], nn.Module]
    inputs: tuple[fx.Node, ...]
    state: dict[str, fx.Node]  # module attribute -> get_attr node it takes over
    owner_hint: str  # original module path suggested by the weight's name
    tuple_output: bool = False  # _native_batch_norm_legit_no_training returns (out, ...)
    absorbed: tuple[fx.Node, ...] = ()  # helper nodes only this op uses (weight transpose)


def is_lifted(module: Any) -> bool:
    """True for a module produced by a successful lift (it has real layers)."""
    return bool(getattr(module, LIFTED_ATTR, None))


def lift_exported_program(program: Any, example_inputs: Any = None) -> nn.Module:
    """An equivalent module with real layers, or the unlifted one (with a warning).

    The layers hold the program's own tensors, and a program exported in memory shares
    them with the model it came from: pruning (in place, ``.data``) changes both, so
    lift a deep copy of the program when the original must survive.
    """
    return lift_with_report(program, example_inputs).module


def lift_with_report(program: Any, example_inputs: Any = None) -> LiftReport:
    """Lift ``program`` and verify it on ``example_inputs`` (default: the saved ones).

    ``example_inputs`` is ``(args, kwargs)``; when omitted the program's saved
    example inputs are used, else random tensors shaped like its inputs.
    """
    try:
        gm = program.module(check_guards=False)
        lifted, names = _lift_graph_module(gm)
    except Exception as exc:  # any unexpected graph shape: keep the exact program
        return _fallback(program, f"lifting failed ({_brief(exc)})")
    if not names:
        return LiftReport(program.module(), [], None)
    inputs = example_inputs if example_inputs is not None else _example_inputs(program)
    if inputs is None:
        return _fallback(program, "no example inputs to verify the lifted model on")
    reference = program.module()
    try:
        diff = _max_output_diff(lifted, reference, inputs)
    except Exception as exc:
        return _fallback(program, f"the lifted model failed to run ({_brief(exc)})")
    if diff is None or diff > TOLERANCE:
        return _fallback(program, f"the lifted model's outputs differ (max abs diff {diff})")
    setattr(lifted, LIFTED_ATTR, list(names))
    return LiftReport(lifted, list(names), None, diff)


def _brief(exc: Exception) -> str:
    """First line of an error, bounded: fx errors can print a whole graph."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _fallback(program: Any, reason: str) -> LiftReport:
    warnings.warn(
        f"could not lift the .pt2 program into layers: {reason}; using the flat exported "
        f"module, which has no prunable layers",
        Pt2LiftWarning,
        stacklevel=3,
    )
    return LiftReport(program.module(), [], reason)


# --- graph rewriting -------------------------------------------------------------------


def _lift_graph_module(gm: fx.GraphModule) -> tuple[fx.GraphModule, list[str]]:
    graph = copy.deepcopy(gm.graph)  # unowned: new layers live in a fresh root module
    sites = [s for s in (_site_for(n, gm) for n in graph.nodes) if s is not None]
    sites = _safe_sites(graph, sites)
    names = _assign_names(graph, sites)
    root = nn.Module()
    modules: dict[tuple[Any, ...], nn.Module] = {}
    absorbed: set[str] = set()
    replaced: dict[fx.Node, fx.Node] = {}
    for site in sites:
        name = names[site.key]
        if site.key not in modules:
            module = site.build()
            _take_state(module, site, gm)
            _set_path(root, name, module)
            modules[site.key] = module
        _replace(graph, site, name, replaced)
        absorbed.update(str(n.target) for n in site.state.values())
    _drop_absorbed_get_attrs(graph, absorbed)
    _free_flatten_views(graph)
    for node in graph.nodes:
        if node.op in ("get_attr", "call_module") and str(node.target) not in names.values():
            _copy_path(gm, root, str(node.target))
    graph.lint()
    lifted = fx.GraphModule(root, graph, class_name="LiftedExportedProgram")
    lifted.eval()
    return lifted, sorted(set(names.values()))


def _safe_sites(graph: fx.Graph, sites: list[_Site]) -> list[_Site]:
    """Keep sites whose parameters are used only by sites building the same module.

    A weight also used elsewhere (tied embeddings, a functional op) stays a get_attr:
    pruning one user would silently break the other.
    """
    users: dict[str, set[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            users.setdefault(str(node.target), set()).update(node.users)
    key_of = {n: s.key for s in sites for n in (s.node, *s.absorbed)}
    keep = []
    for site in sites:
        ok = all(set(n.users) == {site.node} for n in site.absorbed) and all(
            all(key_of.get(u) == site.key for u in users.get(str(n.target), ()))
            for n in site.state.values()
        )
        if ok and site.tuple_output:
            ok = all(
                u.op == "call_function" and u.target is operator.getitem and u.args[1] == 0
                for u in site.node.users
            )
        if ok:
            keep.append(site)
    kept_keys = {s.key for s in keep}
    dropped = {s.key for s in sites} - kept_keys
    return [s for s in keep if s.key not in dropped]


def _replace(graph: fx.Graph, site: _Site, name: str, replaced: dict[fx.Node, fx.Node]) -> fx.Node:
    """Swap the op call for a call of layer ``name``; ``replaced`` maps earlier swaps."""
    node = site.node
    inputs = tuple(replaced.get(n, n) for n in site.inputs)
    with graph.inserting_before(node):
        new = graph.call_module(name, inputs)
    new.meta = dict(node.meta)
    if site.tuple_output:
        for user in list(node.users):
            if "val" in user.meta:
                new.meta["val"] = user.meta["val"]
            user.replace_all_uses_with(new)
            replaced[user] = new
            graph.erase_node(user)
    else:
        node.replace_all_uses_with(new)
    replaced[node] = new
    graph.erase_node(node)
    for extra in site.absorbed:  # e.g. the weight transpose of a decomposed linear
        if not extra.users:
            graph.erase_node(extra)
    return new


_VIEWS = {aten.view.default, aten.reshape.default, aten._unsafe_view.default}


def _free_flatten_views(graph: fx.Graph) -> None:
    """``view(x, [1, 32])`` flattening trailing dims -> ``view(x, [1, -1])``.

    Decomposed programs spell ``flatten`` as a view with the export-time sizes baked
    in, which pins the channel count and locks every group upstream. With ``-1`` the
    op computes the same thing at the exported shape and follows pruned widths.
    """
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in _VIEWS or len(node.args) != 2:
            continue
        src, shape = node.args
        val = src.meta.get("val") if isinstance(src, fx.Node) else None
        if not isinstance(val, torch.Tensor) or not isinstance(shape, (list, tuple)):
            continue
        if not all(type(d) is int and d >= 0 for d in shape):
            continue
        dims = list(val.shape)
        if not all(type(d) is int for d in dims):  # symbolic sizes: leave the view alone
            continue
        keep = len(shape) - 1
        if 0 < len(shape) < len(dims) and 0 not in dims and list(shape[:keep]) == dims[:keep]:
            if shape[-1] == math.prod(dims[keep:]):
                node.args = (src, [*shape[:keep], -1])


def _drop_absorbed_get_attrs(graph: fx.Graph, absorbed: set[str]) -> None:
    """Remove get_attrs of the state now held by layers (and BN's num_batches_tracked)."""
    absorbed = absorbed | _trackers(absorbed)
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users and str(node.target) in absorbed:
            graph.erase_node(node)


def _trackers(targets: set[str]) -> set[str]:
    """BN's num_batches_tracked next to absorbed running stats (unused by the graph)."""
    return {
        t.rpartition(".")[0] + ".num_batches_tracked" for t in targets if t.endswith("running_mean")
    }


# --- one op call -> one layer ----------------------------------------------------------


def _site_for(node: fx.Node, gm: nn.Module) -> _Site | None:
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    builder = _BUILDERS.get(node.target)
    if builder is None:
        return None
    bound = _bind(node)
    if bound is None:
        return None
    try:
        return builder(node, bound, gm)
    except _Skip:
        return None


class _Skip(Exception):
    """This op call is not liftable (non-constant args, non-parameter weight ...)."""


def _bind(node: fx.Node) -> dict[str, Any] | None:
    schema = node.target._schema  # type: ignore[union-attr]
    bound: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            bound[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            bound[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            bound[arg.name] = arg.default_value
        else:
            return None
    return bound


def _const(value: Any) -> Any:
    """A hashable plain constant; nodes or symbolic values are not liftable."""
    if isinstance(value, (list, tuple)):
        return tuple(_const(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Skip


def _param_node(value: Any, gm: nn.Module, *, parameter: bool = True) -> fx.Node:
    if not isinstance(value, fx.Node) or value.op != "get_attr":
        raise _Skip
    obj = _get_path(gm, str(value.target))
    if parameter and not isinstance(obj, nn.Parameter):
        raise _Skip
    if not parameter and (not isinstance(obj, torch.Tensor) or isinstance(obj, nn.Parameter)):
        raise _Skip
    return value


def _input_node(value: Any) -> fx.Node:
    if not isinstance(value, fx.Node):
        raise _Skip
    return value


def _shape(node: fx.Node, gm: nn.Module) -> tuple[int, ...]:
    return tuple(_get_path(gm, str(node.target)).shape)


def _owner(node: fx.Node) -> str:
    """Original module path suggested by a weight's name: a.b.weight -> a.b."""
    head, _, attr = str(node.target).rpartition(".")
    if attr == "weight":
        return head
    stem = attr[: -len("_weight")] if attr.endswith("_weight") else attr
    return f"{head}.{stem}" if head else stem


def _state(bound: dict[str, Any], gm: nn.Module, **names: str) -> dict[str, fx.Node]:
    """attr -> get_attr node for the optional parameters present in ``bound``."""
    present = {attr: bound[arg] for attr, arg in names.items() if bound[arg] is not None}
    return {attr: _param_node(value, gm) for attr, value in present.items()}


def _key(node: fx.Node, state: dict[str, fx.Node], *consts: Any) -> tuple[Any, ...]:
    targets = tuple(sorted((k, str(v.target)) for k, v in state.items()))
    return (str(node.target), targets, tuple(_const(c) for c in consts))


def _conv(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    transposed = bool(b.get("transposed", node.target in _CONV_T))
    weight = _param_node(b["weight"], gm)
    state = {"weight": weight, **_state(b, gm, bias="bias")}
    shape = _shape(weight, gm)
    dims = len(shape) - 2
    stride, padding, dilation = (_const(b[k]) for k in ("stride", "padding", "dilation"))
    groups = _const(b["groups"])
    output_padding = _const(b.get("output_padding", 0))
    if dims not in (1, 2, 3) or not isinstance(groups, int):
        raise _Skip
    padding = padding if isinstance(padding, str) else tuple(padding)
    has_bias = "bias" in state

    def build() -> nn.Module:
        if transposed:
            cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]
            return cls(
                shape[0],
                shape[1] * groups,
                shape[2:],
                stride,
                padding,
                output_padding,
                groups,
                has_bias,
                dilation,
                device="meta",
            )
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        return cls(
            shape[1] * groups,
            shape[0],
            shape[2:],
            stride,
            padding,
            dilation,
            groups,
            has_bias,
            device="meta",
        )

    key = _key(node, state, transposed, stride, padding, dilation, groups, output_padding)
    return _Site(node, key, build, (_input_node(b["input"]),), state, _owner(weight))


def _linear(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    weight = _param_node(b["weight"], gm)
    state = {"weight": weight, **_state(b, gm, bias="bias")}
    out_f, in_f = _shape(weight, gm)
    has_bias = "bias" in state
    return _Site(
        node,
        _key(node, state),
        lambda: nn.Linear(in_f, out_f, has_bias, device="meta"),
        (_input_node(b["input"]),),
        state,
        _owner(weight),
    )


def _matmul_linear(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    """Decomposed linear: ``addmm(bias, x, w.t())`` or ``mm(x, w.t())`` (inference IR)."""
    if b.get("beta", 1) != 1 or b.get("alpha", 1) != 1:
        raise _Skip
    x, wt = (b["mat1"], b["mat2"]) if "mat1" in b else (b["self"], b["mat2"])
    is_t = (
        isinstance(wt, fx.Node)
        and wt.op == "call_function"
        and (
            wt.target in (aten.t.default, aten.numpy_T.default)
            or (wt.target == aten.permute.default and list(wt.args[1]) == [1, 0])
        )
    )
    if not is_t:
        raise _Skip
    weight = _param_node(wt.args[0], gm)
    state = {"weight": weight}
    if "mat1" in b:
        state["bias"] = _param_node(b["self"], gm)
    out_f, in_f = _shape(weight, gm)
    if "bias" in state and _shape(state["bias"], gm) != (out_f,):
        raise _Skip  # a broadcast bias is not nn.Linear's
    has_bias = "bias" in state
    return _Site(
        node,
        _key(node, state),
        lambda: nn.Linear(in_f, out_f, has_bias, device="meta"),
        (_input_node(x),),
        state,
        _owner(weight),
        absorbed=(wt,),
    )


def _batch_norm(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    if b.get("training", False) is not False:
        raise _Skip  # training-mode programs update statistics: not a plain eval layer
    if b["running_mean"] is None or b["running_var"] is None:
        raise _Skip
    if (b["weight"] is None) != (b["bias"] is None):
        raise _Skip
    state = _state(b, gm, weight="weight", bias="bias")
    mean = _param_node(b["running_mean"], gm, parameter=False)
    var = _param_node(b["running_var"], gm, parameter=False)
    state.update(running_mean=mean, running_var=var)
    val = _input_node(b["input"]).meta.get("val")
    rank = val.dim() if isinstance(val, torch.Tensor) else -1
    classes = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    if rank not in classes:
        raise _Skip
    (channels,) = _shape(mean, gm)
    eps, momentum = _const(b["eps"]), _const(b["momentum"])
    affine = "weight" in state

    def build() -> nn.Module:
        return classes[rank](channels, eps, momentum, affine, True, device="meta")

    key = _key(node, state, eps, momentum, rank)
    tuple_out = node.target == aten._native_batch_norm_legit_no_training.default
    owner = str(mean.target).rpartition(".")[0] or "bn"
    return _Site(node, key, build, (b["input"],), state, owner, tuple_out)


def _layer_norm(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    if b["weight"] is None:
        raise _Skip
    state = _state(b, gm, weight="weight", bias="bias")
    shape, eps = _const(b["normalized_shape"]), _const(b["eps"])
    has_bias = "bias" in state

    def build() -> nn.Module:
        return nn.LayerNorm(shape, eps, True, has_bias, device="meta")

    return _Site(
        node,
        _key(node, state, shape, eps),
        build,
        (_input_node(b["input"]),),
        state,
        _owner(state["weight"]),
    )


def _group_norm(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    if b["weight"] is None or b["bias"] is None:
        raise _Skip
    state = _state(b, gm, weight="weight", bias="bias")
    groups, eps = _const(b["num_groups"]), _const(b["eps"])
    (channels,) = _shape(state["weight"], gm)

    def build() -> nn.Module:
        return nn.GroupNorm(groups, channels, eps, True, device="meta")

    return _Site(
        node,
        _key(node, state, groups, eps),
        build,
        (_input_node(b["input"]),),
        state,
        _owner(state["weight"]),
    )


def _embedding(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
    weight = _param_node(b["weight"], gm)
    state = {"weight": weight}
    num, dim = _shape(weight, gm)
    pad, scale, sparse = (_const(b[k]) for k in ("padding_idx", "scale_grad_by_freq", "sparse"))
    padding_idx = None if pad == -1 else pad
    if padding_idx is not None and padding_idx < 0:
        raise _Skip  # nn.Embedding would normalise it differently

    def build() -> nn.Module:
        return nn.Embedding(
            num, dim, padding_idx, scale_grad_by_freq=scale, sparse=sparse, device="meta"
        )

    key = _key(node, state, pad, scale, sparse)
    return _Site(node, key, build, (_input_node(b["indices"]),), state, _owner(weight))


def _called_in(node: fx.Node, cls: type[nn.Module]) -> str:
    """Path of the ``cls`` module whose forward issued this op (nn_module_stack), else skip."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        raise _Skip
    path, kind = list(stack.values())[-1][:2]
    name = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    if name != f"{cls.__module__}.{cls.__qualname__}":
        raise _Skip
    return str(path)


def _stateless(
    cls: type[nn.Module], *arg_names: str, tuple_output: bool = False, **fixed: Any
) -> Callable[..., _Site]:
    """Builder for a parameter-free layer (activation, pooling) the original model called.

    Lifting them keeps MAC counts equal to the eager model's: the counter, like
    Torch-Pruning's, counts these module types and not the bare ATen ops.
    """

    def builder(node: fx.Node, b: dict[str, Any], gm: nn.Module) -> _Site:
        path = _called_in(node, cls)
        kwargs = {k: _const(b[a]) for k, a in zip(_CTOR_ARGS[cls], arg_names, strict=True)}
        kwargs.update(fixed)
        if kwargs.get("stride") == ():
            kwargs["stride"] = None  # ATen's "default to kernel_size"
        key = (str(node.target), path, tuple(sorted(kwargs.items())))
        inputs = (_input_node(b["self"]),)
        return _Site(node, key, lambda: cls(**kwargs), inputs, {}, path, tuple_output)

    return builder


_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_CTOR_ARGS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.ReLU: (),
    nn.GELU: ("approximate",),
    nn.LeakyReLU: ("negative_slope",),
    nn.MaxPool1d: _POOL,
    nn.MaxPool2d: _POOL,
    nn.MaxPool3d: _POOL,
    nn.AvgPool1d: _AVG[:5],
    nn.AvgPool2d: _AVG,
    nn.AvgPool3d: _AVG,
    nn.AdaptiveAvgPool1d: ("output_size",),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.AdaptiveAvgPool3d: ("output_size",),
}
_STATELESS: dict[Any, Callable[..., _Site]] = {
    aten.relu.default: _stateless(nn.ReLU, inplace=False),
    aten.relu_.default: _stateless(nn.ReLU, inplace=True),
    aten.gelu.default: _stateless(nn.GELU, "approximate"),
    aten.leaky_relu.default: _stateless(nn.LeakyReLU, "negative_slope", inplace=False),
    aten.leaky_relu_.default: _stateless(nn.LeakyReLU, "negative_slope", inplace=True),
    aten.max_pool1d.default: _stateless(nn.MaxPool1d, *_POOL),
    aten.max_pool2d.default: _stateless(nn.MaxPool2d, *_POOL),
    aten.max_pool3d.default: _stateless(nn.MaxPool3d, *_POOL),
    aten.max_pool2d_with_indices.default: _stateless(nn.MaxPool2d, *_POOL, tuple_output=True),
    aten.avg_pool1d.default: _stateless(nn.AvgPool1d, *_AVG[:5]),
    aten.avg_pool2d.default: _stateless(nn.AvgPool2d, *_AVG),
    aten.avg_pool3d.default: _stateless(nn.AvgPool3d, *_AVG),
    aten.adaptive_avg_pool1d.default: _stateless(nn.AdaptiveAvgPool1d, "output_size"),
    aten.adaptive_avg_pool2d.default: _stateless(nn.AdaptiveAvgPool2d, "output_size"),
    aten.adaptive_avg_pool3d.default: _stateless(nn.AdaptiveAvgPool3d, "output_size"),
}

_CONV_T = {aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input}
_BUILDERS: dict[Any, Callable[[fx.Node, dict[str, Any], nn.Module], _Site]] = {
    aten.conv1d.default: _conv,
    aten.conv2d.default: _conv,
    aten.conv3d.default: _conv,
    aten.conv1d.padding: _conv,
    aten.conv2d.padding: _conv,
    aten.conv3d.padding: _conv,
    aten.convolution.default: _conv,
    **dict.fromkeys(_CONV_T, _conv),
    aten.linear.default: _linear,
    aten.addmm.default: _matmul_linear,
    aten.mm.default: _matmul_linear,
    aten.batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm,
    aten.layer_norm.default: _layer_norm,
    aten.group_norm.default: _group_norm,
    aten.embedding.default: _embedding,
    **_STATELESS,
}


def _take_state(module: nn.Module, site: _Site, gm: nn.Module) -> None:
    """Give the new layer the program's own Parameters/buffers (no copies)."""
    for attr, node in site.state.items():
        value = _get_path(gm, str(node.target))
        if attr in module._buffers:
            module._buffers[attr] = value
        else:
            setattr(module, attr, value)
    if "num_batches_tracked" in module._buffers:
        head = str(site.state["running_mean"].target).rpartition(".")[0]
        tracked = _get_path(gm, f"{head}.num_batches_tracked") if head else None
        if not isinstance(tracked, torch.Tensor):
            tracked = torch.tensor(0, dtype=torch.long)
        module._buffers["num_batches_tracked"] = tracked
    meta = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if meta:
        raise RuntimeError(f"{site.owner_hint}: no program state for {meta}")
    module.eval()


# --- names -----------------------------------------------------------------------------

_RESERVED = set(dir(fx.GraphModule)) | {"graph", "code", "training"}


def _assign_names(graph: fx.Graph, sites: list[_Site]) -> dict[tuple[Any, ...], str]:
    """One unique, valid module path per lifted layer, after the original module."""
    absorbed = {str(v.target) for s in sites for v in s.state.values()}
    absorbed |= _trackers(absorbed)
    taken = {
        str(n.target)
        for n in graph.nodes
        if n.op in ("get_attr", "call_module") and str(n.target) not in absorbed
    }
    names: dict[tuple[Any, ...], str] = {}
    for site in sites:
        if site.key in names:
            continue
        for candidate in _candidates(site):
            if _free(candidate, taken):
                names[site.key] = candidate
                taken.add(candidate)
                break
    return names


def _candidates(site: _Site) -> list[str]:
    stack = site.node.meta.get("nn_module_stack") or {}
    paths = [_clean(site.owner_hint)]
    if stack:
        paths.append(_clean(str(list(stack.values())[-1][0])))
    paths.append(_clean(site.node.name))
    out = []
    for path in paths:
        out += [path, *(f"{path}_{i}" for i in range(1, 100))]
        flat = path.replace(".", "_")
        out += [flat, *(f"{flat}_{i}" for i in range(1, 100))]
    return out


def _clean(path: str) -> str:
    parts = [re.sub(r"\W", "_", p) or "m" for p in path.split(".") if p]
    parts = [p if not keyword.iskeyword(p) else p + "_" for p in parts] or ["layer"]
    if parts[0] in _RESERVED:  # digits are fine: fx emits getattr(self, "0")
        parts[0] = "m_" + parts[0]
    return ".".join(parts)


def _free(name: str, taken: set[str]) -> bool:
    return all(
        name != t and not t.startswith(name + ".") and not name.startswith(t + ".") for t in taken
    )


# --- attribute paths -------------------------------------------------------------------


def _get_path(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(root: nn.Module, target: str, module: nn.Module) -> None:
    *prefix, last = target.split(".")
    parent = root
    for part in prefix:
        child = getattr(parent, part, None)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(last, module)


def _copy_path(src: nn.Module, dst: nn.Module, target: str) -> None:
    """Copy ``src.<target>`` (a kept get_attr/call_module) keeping buffer/param kinds."""
    *prefix, last = target.split(".")
    for part in prefix:
        src = getattr(src, part)
        child = getattr(dst, part, None)
        if child is None:
            child = nn.Module()
            dst.add_module(part, child)
        dst = child
    value = getattr(src, last)
    if isinstance(value, nn.Module):
        dst.add_module(last, value)
    elif isinstance(value, nn.Parameter):
        dst.register_parameter(last, value)
    elif isinstance(value, torch.Tensor) and last in src._buffers:
        dst.register_buffer(last, value, persistent=last not in src._non_persistent_buffers_set)
    else:
        setattr(dst, last, value)


# --- verification ----------------------------------------------------------------------


def _example_inputs(program: Any) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    saved = getattr(program, "example_inputs", None)
    if saved:
        return saved
    user_inputs = set(program.graph_signature.user_inputs)
    args = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor):
                return None
            shape = [int(d) for d in val.shape]
            if val.dtype.is_floating_point:
                args.append(torch.randn(shape, dtype=val.dtype))
            else:
                args.append(torch.zeros(shape, dtype=val.dtype))
    return tuple(args), {}


def _max_output_diff(lifted: nn.Module, reference: nn.Module, inputs: Any) -> float | None:
    """Largest output difference; None when the output structures differ.

    Both modules share the program's tensors: buffers a training-mode program updates
    (BN statistics) are restored after each run, and each run gets fresh input copies.
    """
    with _restored_buffers(lifted, reference), torch.no_grad():
        got = _run(lifted, inputs)
    with _restored_buffers(lifted, reference), torch.no_grad():
        want = _run(reference, inputs)
    got_leaves, got_spec = pytree.tree_flatten(got)
    want_leaves, want_spec = pytree.tree_flatten(want)
    if got_spec != want_spec:
        return None
    worst = 0.0
    for a, b in zip(got_leaves, want_leaves, strict=True):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape or a.dtype != b.dtype:
                return None
            if a.numel():
                worst = max(worst, (a.double() - b.double()).abs().max().item())
        elif a != b:
            return None
    return worst


def _run(module: nn.Module, inputs: Any) -> Any:
    args, kwargs = pytree.tree_map_only(torch.Tensor, torch.clone, inputs)
    return module(*args, **kwargs)


@contextlib.contextmanager
def _restored_buffers(*modules: nn.Module) -> Iterator[None]:
    saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in modules:
        for buf in module.buffers():
            saved.setdefault(id(buf), (buf, buf.detach().clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, copy_ in saved.values():
                buf.copy_(copy_)
