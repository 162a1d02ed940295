"""Converters onnx2torch lacks for ops today's exporters emit, added to its registry.

torch's exporters write opset 17-20 graphs; onnx2torch (1.5) stops at older versions of
many ops, so ``ReduceMean``-18 (axes moved from an attribute to an input), ``Reshape``-19
or ``Gelu``-20 are refused although nothing about them is hard. Three kinds are added:

* version bumps that only widened the accepted types (float8, int4, bfloat16): the newest
  onnx2torch converter for the op is reused as is;
* bumps that added an attribute or input: the older converter is reused when the node
  leaves the new feature at its default, otherwise the node is refused with the reason;
* genuinely new forms (Reduce* with axes as an input, Split-18's ``num_outputs``, Gelu):
  small modules of our own.

onnx2torch keeps one registry per process, so registering is a process-wide change: it
happens on the first ONNX load (``ensure_converters``), never at import, adds only entries
onnx2torch does not have (an onnx2torch that gains its own keeps it), and changes nothing
for graphs that onnx2torch could already convert.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

#: op -> [(new version, onnx2torch version it reuses)] for type-only bumps.
_TYPE_ONLY_BUMPS: dict[str, list[tuple[int, int]]] = {
    "Identity": [(19, 16), (21, 16)],
    "Reshape": [(19, 14), (21, 14)],
    "Shape": [(19, 15), (21, 15)],
    "Cast": [(19, 13), (21, 13)],
    "Constant": [(19, 13), (21, 13)],
    "ConstantOfShape": [(20, 9), (21, 9)],
    "Equal": [(19, 13)],
    "Flatten": [(21, 13)],
    "Transpose": [(21, 13)],
    "Unsqueeze": [(21, 13)],
    "GreaterOrEqual": [(16, 12)],
    "LessOrEqual": [(16, 12)],
    "IsInf": [(20, 10)],
    "IsNaN": [(20, 13)],
    # opset 22 added bfloat16 (and float8) to these; semantics unchanged
    **{
        op: [(22, old)]
        for op, old in (
            ("Conv", 11),
            ("ConvTranspose", 11),
            ("MaxPool", 12),
            ("GlobalAveragePool", 1),
            ("HardSigmoid", 6),
            ("HardSwish", 14),
            ("Dropout", 13),
            ("Elu", 6),
            ("Selu", 6),
            ("Softplus", 1),
            ("Softsign", 1),
            ("InstanceNormalization", 6),
            ("Round", 11),
            ("EyeLike", 9),
            ("Acos", 7),
            ("Asin", 7),
            ("Atan", 7),
            ("Cos", 7),
            ("Sin", 7),
            ("Tan", 7),
        )
    },
}

_REDUCE_OPS = (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
)


def ensure_converters() -> list[str]:
    """Register our converters where onnx2torch has none; returns what was added.

    Idempotent: a second call adds nothing.
    """
    from onnx2torch.node_converters.registry import add_converter, get_converter

    added: list[str] = []

    def register(op: str, version: int, converter: Callable[..., Any]) -> None:
        try:
            get_converter(operation_type=op, version=version)
            return  # onnx2torch (or an earlier call) has one
        except NotImplementedError:
            pass
        add_converter(operation_type=op, version=version)(converter)
        added.append(f"{op}-{version}")

    for op, bumps in _TYPE_ONLY_BUMPS.items():
        for new, old in bumps:
            register(op, new, _reuse(op, old))
    for version in (18, 19, 21):
        register("Pad", version, _reuse(op="Pad", old=13, check=_pad_defaults))
    register("AveragePool", 19, _reuse("AveragePool", 11, check=_avgpool_defaults))
    register("AveragePool", 22, _reuse("AveragePool", 11, check=_avgpool_defaults))
    register("Resize", 18, _reuse("Resize", 13, check=_resize_defaults))
    register("Resize", 19, _reuse("Resize", 13, check=_resize_defaults))
    register("ScatterND", 18, _reuse("ScatterND", 16, check=_scatter_defaults))
    for op in _REDUCE_OPS:
        register(op, 18, _convert_reduce)
    register("ReduceMax", 20, _convert_reduce)
    register("ReduceMin", 20, _convert_reduce)
    register("Split", 18, _convert_split18)
    register("Gelu", 20, _convert_gelu)
    return added


# ---------------------------------------------------------------- reusing onnx2torch's


def _reuse(
    op: str, old: int, check: Callable[[Any, Any], str | None] | None = None
) -> Callable[[Any, Any], Any]:
    """A converter that hands the node to onnx2torch's converter for version ``old``."""

    def convert(node: Any, graph: Any) -> Any:
        from onnx2torch.node_converters.registry import get_converter

        if check is not None:
            reason = check(node, graph)
            if reason:
                raise NotImplementedError(f"{op} with {reason} is not supported")
        return get_converter(operation_type=op, version=old)(node, graph)

    return convert


def _input_given(node: Any, index: int) -> bool:
    values = node.input_values
    return len(values) > index and bool(values[index])


def _pad_defaults(node: Any, graph: Any) -> str | None:
    if _input_given(node, 3):
        return "an axes input (opset 18)"
    if node.attributes.get("mode", "constant") == "wrap":
        return "mode='wrap' (opset 19)"
    return None


def _avgpool_defaults(node: Any, graph: Any) -> str | None:
    dilations = node.attributes.get("dilations")
    if dilations and any(d != 1 for d in dilations):
        return f"dilations={list(dilations)} (opset 19)"
    return None


def _resize_defaults(node: Any, graph: Any) -> str | None:
    attrs = node.attributes
    if attrs.get("antialias", 0):
        return "antialias=1 (opset 18)"
    if attrs.get("axes"):
        return "an axes attribute (opset 18)"
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r} (opset 18)"
    if attrs.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        return "coordinate_transformation_mode='half_pixel_symmetric' (opset 19)"
    return None


def _scatter_defaults(node: Any, graph: Any) -> str | None:
    reduction = node.attributes.get("reduction", "none")
    return f"reduction={reduction!r} (opset 18)" if reduction in ("max", "min") else None


# ------------------------------------------------------------------ our own modules


def _const_ints(name: str, graph: Any) -> list[int] | None:
    """The integer list a constant input holds, or None when it is computed at run time."""
    from onnx2torch.utils.common import get_const_value

    try:
        value = get_const_value(name, graph)
    except KeyError:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def _mapping(node: Any, inputs: Sequence[str]) -> Any:
    from onnx2torch.utils.common import OnnxMapping

    return OnnxMapping(inputs=tuple(inputs), outputs=node.output_values)


_REDUCERS: dict[str, Callable[[torch.Tensor, list[int], bool], torch.Tensor]] = {
    "ReduceL1": lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "ReduceMean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "ReduceProd": lambda x, d, k: _prod(x, d, k),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k),
}


def _prod(x: torch.Tensor, dims: list[int], keepdim: bool) -> torch.Tensor:
    for dim in sorted((d % x.dim() for d in dims), reverse=True):  # torch.prod takes one dim
        x = torch.prod(x, dim=dim, keepdim=keepdim)
    return x


class OnnxReduce(nn.Module):
    """ONNX Reduce* from opset 18 on: the axes are an input (here fixed when converting).

    ``axes=None`` reduces over every dimension, as ONNX does with the axes input absent.
    """

    def __init__(self, operation: str, axes: list[int] | None, keepdims: bool) -> None:
        super().__init__()
        self.operation = operation
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(x.dim())) if self.axes is None else list(self.axes)
        return _REDUCERS[self.operation](x, dims, self.keepdims)

    def extra_repr(self) -> str:
        return f"{self.operation}, axes={self.axes}, keepdims={self.keepdims}"


#: What each Reduce* does per element when it reduces over no axis (ONNX Runtime's reading
#: of ``noop_with_empty_axes=1``: the elementwise part of the op still applies).
_NO_AXIS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ReduceL1": torch.abs,
    "ReduceL2": torch.abs,
    "ReduceLogSum": torch.log,
    "ReduceSumSquare": lambda x: x * x,
}


class OnnxReduceNoAxis(nn.Module):
    """A Reduce* whose axes are empty with ``noop_with_empty_axes=1``: nothing is reduced."""

    def __init__(self, operation: str) -> None:
        super().__init__()
        self.operation = operation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        elementwise = _NO_AXIS.get(self.operation)
        return x if elementwise is None else elementwise(x)


def _convert_reduce(node: Any, graph: Any) -> Any:
    from onnx2torch.utils.common import OperationConverterResult

    attrs = node.attributes
    keepdims = bool(attrs.get("keepdims", 1))
    noop = bool(attrs.get("noop_with_empty_axes", 0))
    if _input_given(node, 1):
        axes = _const_ints(node.input_values[1], graph)
        if axes is None:
            raise NotImplementedError(
                f"{node.operation_type} with axes computed at run time is not supported"
            )
    else:
        axes = []
    if not axes:
        module: nn.Module = (
            OnnxReduceNoAxis(node.operation_type)
            if noop
            else OnnxReduce(node.operation_type, None, keepdims)
        )
    else:
        module = OnnxReduce(node.operation_type, axes, keepdims)
    return OperationConverterResult(module, _mapping(node, node.input_values[:1]))


class OnnxSplitEven(nn.Module):
    """ONNX Split-18 with ``num_outputs``: chunks of ceil(n / outputs), the last smaller."""

    def __init__(self, axis: int, num_outputs: int) -> None:
        super().__init__()
        self.axis = axis
        self.num_outputs = num_outputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = math.ceil(x.shape[self.axis] / self.num_outputs)
        return tuple(torch.split(x, size, dim=self.axis))


class OnnxSplitSizes(nn.Module):
    """ONNX Split with constant sizes."""

    def __init__(self, axis: int, sizes: list[int]) -> None:
        super().__init__()
        self.axis = axis
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(x, self.sizes, dim=self.axis))


def _convert_split18(node: Any, graph: Any) -> Any:
    from onnx2torch.utils.common import OperationConverterResult

    axis = int(node.attributes.get("axis", 0))
    if _input_given(node, 1):
        sizes = _const_ints(node.input_values[1], graph)
        if sizes is None:
            raise NotImplementedError("Split with sizes computed at run time is not supported")
        module: nn.Module = OnnxSplitSizes(axis, sizes)
    else:
        outputs = int(node.attributes.get("num_outputs", len(node.output_values)))
        module = OnnxSplitEven(axis, outputs)
    return OperationConverterResult(module, _mapping(node, node.input_values[:1]))


def _convert_gelu(node: Any, graph: Any) -> Any:
    from onnx2torch.utils.common import OperationConverterResult

    approximate = node.attributes.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise NotImplementedError(f"Gelu with approximate={approximate!r} is not supported")
    return OperationConverterResult(
        nn.GELU(approximate=approximate), _mapping(node, node.input_values)
    )
