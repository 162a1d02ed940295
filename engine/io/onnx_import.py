"""ONNX file -> ``nn.Module`` via onnx2torch, with example inputs from the graph.

ONNX graphs declare their inputs' shapes and dtypes, so unlike a pickled
module we know what to feed; symbolic (dynamic) dimensions become 1.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .errors import InputSpecError, ModelLoadError, short_reason
from .input_spec import InputSpec, TensorSpec, parse_dtype

# ONNX TensorProto.DataType -> input-spec dtype name.
_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}


def onnx_input_spec(model_proto: onnx.ModelProto) -> InputSpec:  # type: ignore[name-defined] # noqa: F821
    """Spec of the graph's real inputs (initializers excluded); dynamic dims -> 1."""
    initializers = {init.name for init in model_proto.graph.initializer}
    specs = []
    for value in model_proto.graph.input:
        if value.name in initializers:
            continue
        ttype = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise ModelLoadError(
                f"ONNX input {value.name!r} is not a tensor; only tensor inputs are supported"
            )
        dtype = _ONNX_DTYPES.get(ttype.elem_type)
        if dtype is None:
            raise ModelLoadError(
                f"ONNX input {value.name!r} has unsupported element type {ttype.elem_type}"
            )
        shape = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
            for d in ttype.shape.dim
        )
        specs.append(TensorSpec(shape or (1,), parse_dtype(dtype)))
    if not specs:
        raise ModelLoadError("ONNX graph declares no inputs")
    return InputSpec(tuple(specs))


def load_onnx(path: Path, spec_override: InputSpec | None = None) -> tuple[nn.Module, InputSpec]:
    """Convert ``path`` to a torch module (eval mode) plus its input spec.

    The graph's declared inputs give the spec unless ``spec_override`` is given; declared
    shapes over the input-size limits are refused before anything is allocated.
    """
    try:
        import onnx
    except ImportError:
        raise ModelLoadError(
            "loading .onnx files needs the onnx package; pip install onnx onnx2torch"
        ) from None
    try:
        proto = onnx.load(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"not an ONNX file or corrupt: {path.name} ({short_reason(exc, 120)})"
        ) from None
    if len(proto.graph.node) == 0:
        raise ModelLoadError(f"not an ONNX file or corrupt: {path.name} has an empty graph")
    try:
        spec = spec_override or onnx_input_spec(proto)
    except InputSpecError as exc:
        raise ModelLoadError(
            f"{path.name}: its declared inputs are unusable ({exc}); pass an input spec "
            "(--input-shape)"
        ) from None
    try:
        from onnx2torch import convert
    except ImportError:
        raise ModelLoadError(
            "converting ONNX to PyTorch needs the onnx2torch package; pip install onnx2torch"
        ) from None
    try:
        module = convert(proto)
    except Exception as exc:
        raise ModelLoadError(
            f"onnx2torch cannot convert {path.name}: {short_reason(exc)}"
        ) from None
    return module.eval(), spec
