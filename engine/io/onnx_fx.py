"""Make onnx2torch's module run on the meta device, so it traces and probes like any model.

onnx2torch keeps every initializer as a buffer, the integer ones too: a Reshape's target
shape, a Slice's starts, a Gather's index. On a weightless (meta) copy those buffers hold
no values, so ``torch.Size(shape)`` fails and the engine falls back to tracing for real,
without the probe that locks groups whose pruning the graph cannot absorb (a Reshape to a
constant ``[1, 512]`` after the last conv). Two rewrites of the fx graph fix that:

* integer constants feeding a node are baked into the node (``BakedConstants``) as Python
  values and rebuilt as tensors per call: on the CPU when the data is on the meta device
  (they become Python ints at once), otherwise beside the node's first tensor input;
* ``Shape`` on a meta tensor gives a CPU tensor (``MetaSafeShape``), so the shape arithmetic
  that follows it (Gather, Concat, Reshape) runs on values, as it does on a real device.

Float constants (biases, scales, embeddings) stay buffers: they are data, and meta tensors
carry their shapes. One exception: ``MatMul`` by a constant 2-D matrix (and an ``Add`` of a
constant bias right after it) is how both exporters write ``nn.Linear`` on 3-D inputs;
onnx2torch keeps the matrix as a buffer, which no pruner sees, so it becomes an
``nn.Linear`` again (``_matmuls_to_linear``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

#: Integer constants larger than this stay buffers (an index table, not a shape).
MAX_BAKED_ELEMENTS = 4096


class BakedConstants(nn.Module):
    """Calls ``inner`` with integer constants rebuilt from Python values at their positions."""

    def __init__(
        self,
        inner: nn.Module,
        n_args: int,
        baked: dict[int, tuple[Any, torch.dtype]],
        baked_kwargs: dict[str, tuple[Any, torch.dtype]],
    ) -> None:
        super().__init__()
        self.inner = inner
        self.n_args = n_args
        self.baked = baked
        self.baked_kwargs = baked_kwargs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        device = _device_for(args, kwargs)
        rest = iter(args)
        full = [
            _rebuild(self.baked[i], device) if i in self.baked else next(rest)
            for i in range(self.n_args)
        ]
        full.extend(rest)
        for name, value in self.baked_kwargs.items():
            kwargs[name] = _rebuild(value, device)
        return self.inner(*full, **kwargs)

    def extra_repr(self) -> str:
        return f"baked={sorted(self.baked)}{sorted(self.baked_kwargs) or ''}"


def _device_for(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.device:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return torch.device("cpu") if value.is_meta else value.device
    return torch.device("cpu")


def _rebuild(value: tuple[Any, torch.dtype], device: torch.device) -> torch.Tensor:
    data, dtype = value
    return torch.tensor(data, dtype=dtype, device=device)


class MetaSafeShape(nn.Module):
    """ONNX Shape: the input's shape as int64, on the CPU for meta inputs."""

    def __init__(self, start: int | None = None, end: int | None = None) -> None:
        super().__init__()
        self.start = start
        self.end = end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = torch.device("cpu") if x.is_meta else x.device
        return torch.tensor(x.shape[self.start : self.end], dtype=torch.int64, device=device)


def make_meta_friendly(gm: fx.GraphModule) -> dict[str, int]:
    """Apply the rewrites to ``gm`` in place; returns how many nodes each touched."""
    linear = _matmuls_to_linear(gm)
    shapes = _replace_shapes(gm)
    baked = _bake_integer_constants(gm)
    if shapes or baked or linear:
        gm.graph.lint()
        gm.recompile()
    return {"linear": linear, "shape": shapes, "baked": baked}


def _matmuls_to_linear(gm: fx.GraphModule) -> int:
    """``MatMul(x, W)`` (+ ``Add(·, b)``) with constant W (in, out) and b (out,) -> Linear."""
    try:
        from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation
        from onnx2torch.node_converters.matmul import OnnxMatMul
    except ImportError:
        return 0
    done = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or len(node.args) != 2 or node.kwargs:
            continue
        if not isinstance(gm.get_submodule(node.target), OnnxMatMul):
            continue
        x, w_arg = node.args
        weight = _float_constant(gm, w_arg)
        if weight is None or weight.dim() != 2 or _float_constant(gm, x) is not None:
            continue
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False, dtype=weight.dtype)
        linear.weight = nn.Parameter(weight.detach().t().contiguous().clone())
        add, bias = _bias_add(gm, node, weight.shape[1], OnnxBinaryMathOperation)
        if add is not None and bias is not None:
            linear.bias = nn.Parameter(bias.detach().clone())
            add.replace_all_uses_with(node)
            gm.graph.erase_node(add)
        _set_submodule(gm, node.target, linear)
        node.args = (x,)
        done += 1
    if done:
        _drop_unused_constants(gm)
    return done


def _bias_add(
    gm: fx.GraphModule, node: fx.Node, width: int, binary: type
) -> tuple[fx.Node | None, torch.Tensor | None]:
    """The Add that is ``node``'s only user and adds a constant (width,) vector, if any."""
    if len(node.users) != 1:
        return None, None
    (user,) = node.users
    if user.op != "call_module" or len(user.args) != 2 or user.kwargs:
        return None, None
    module = gm.get_submodule(user.target)
    if not isinstance(module, binary) or module.math_op_function is not torch.add:
        return None, None
    if getattr(module, "broadcast", None) or getattr(module, "axis", None) is not None:
        return None, None  # opset < 7 broadcasting rules
    other = user.args[1] if user.args[0] is node else user.args[0]
    bias = _float_constant(gm, other)
    if bias is None or tuple(bias.shape) != (width,):
        return None, None
    return user, bias


def _float_constant(gm: fx.GraphModule, arg: Any) -> torch.Tensor | None:
    if not isinstance(arg, fx.Node) or arg.op != "get_attr":
        return None
    try:
        value = _fetch(gm, arg.target)
    except AttributeError:
        return None
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value
    return None


def _replace_shapes(gm: fx.GraphModule) -> int:
    try:
        from onnx2torch.node_converters.shape import OnnxShape
    except ImportError:  # another onnx2torch layout: leave the graph alone
        return 0
    done = 0
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        module = gm.get_submodule(node.target)
        if isinstance(module, OnnxShape):
            start = getattr(module, "_start", None)
            end = getattr(module, "_end", None)
            _set_submodule(gm, node.target, MetaSafeShape(start, end))
            done += 1
    return done


def _bake_integer_constants(gm: fx.GraphModule) -> int:
    done = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        baked = {i: c for i, a in enumerate(node.args) if (c := _int_constant(gm, a)) is not None}
        baked_kw = {k: c for k, a in node.kwargs.items() if (c := _int_constant(gm, a)) is not None}
        if not baked and not baked_kw:
            continue
        inner = gm.get_submodule(node.target)
        _set_submodule(gm, node.target, BakedConstants(inner, len(node.args), baked, baked_kw))
        node.args = tuple(a for i, a in enumerate(node.args) if i not in baked)
        node.kwargs = {k: a for k, a in node.kwargs.items() if k not in baked_kw}
        done += 1
    _drop_unused_constants(gm)
    return done


def _int_constant(gm: fx.GraphModule, arg: Any) -> tuple[Any, torch.dtype] | None:
    if not isinstance(arg, fx.Node) or arg.op != "get_attr":
        return None
    try:
        value = _fetch(gm, arg.target)
    except AttributeError:
        return None
    if (
        not isinstance(value, torch.Tensor)
        or value.is_floating_point()
        or value.is_complex()
        or value.numel() > MAX_BAKED_ELEMENTS
        or value.is_meta
    ):
        return None
    return value.tolist(), value.dtype


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    owner, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, name)


def _drop_unused_constants(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op == "get_attr" and not node.users:
            owner, _, name = node.target.rpartition(".")
            gm.graph.erase_node(node)
            holder = gm.get_submodule(owner) if owner else gm
            if name in getattr(holder, "_buffers", {}) and not _still_read(gm, node.target):
                del holder._buffers[name]


def _still_read(gm: fx.GraphModule, target: str) -> bool:
    return any(n.op == "get_attr" and n.target == target for n in gm.graph.nodes)


def _set_submodule(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    owner, _, name = target.rpartition(".")
    setattr(gm.get_submodule(owner) if owner else gm, name, module)
