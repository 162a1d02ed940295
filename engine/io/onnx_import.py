"""ONNX file -> ``nn.Module`` via onnx2torch, with example inputs from the graph.

ONNX graphs declare their inputs' shapes and dtypes, so unlike a pickled
module we know what to feed; symbolic (dynamic) dimensions become 1.
Graphs are cleaned first (``onnx_clean``: onnxslim, Identity/Constant passes) and
onnx2torch gets the converters it lacks for today's opsets (``onnx_converters``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class OnnxImport:
    """A converted ONNX graph: the module, its inputs and what cleaning did."""

    module: nn.Module
    spec: InputSpec
    opset: int
    cleaning: list[str] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0

    def describe(self, name: str) -> str:
        return (
            f"{name} (ONNX opset {self.opset}, {self.nodes_before} nodes cleaned to "
            f"{self.nodes_after}, converted with onnx2torch)"
        )


def load_onnx(path: Path, spec_override: InputSpec | None = None) -> tuple[nn.Module, InputSpec]:
    """Convert ``path`` to a torch module (eval mode) plus its input spec."""
    imported = import_onnx(path, spec_override)
    return imported.module, imported.spec


def import_onnx(path: Path, spec_override: InputSpec | None = None) -> OnnxImport:
    """Clean and convert ``path``; see the module docstring.

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
    return convert_onnx_proto(proto, path.name, spec_override)


def convert_onnx_proto(
    proto: onnx.ModelProto,  # type: ignore[name-defined] # noqa: F821
    name: str,
    spec_override: InputSpec | None = None,
) -> OnnxImport:
    """Clean and convert an in-memory ONNX model; ``name`` is what messages call it."""
    try:
        spec = spec_override or onnx_input_spec(proto)
    except InputSpecError as exc:
        raise ModelLoadError(
            f"{name}: its declared inputs are unusable ({exc}); pass an input spec (--input-shape)"
        ) from None
    try:
        from onnx2torch import convert
    except ImportError:
        raise ModelLoadError(
            "converting ONNX to PyTorch needs the onnx2torch package; pip install onnx2torch"
        ) from None
    from .onnx_clean import clean_onnx
    from .onnx_converters import ensure_converters

    ensure_converters()
    try:
        report = clean_onnx(proto)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot clean the ONNX graph of {name}: {short_reason(exc)}"
        ) from None
    try:
        module = convert(report.model)
    except Exception as exc:
        raise ModelLoadError(f"onnx2torch cannot convert {name}: {short_reason(exc)}") from None
    from .onnx_fx import make_meta_friendly

    rewrites = make_meta_friendly(module)
    if rewrites["linear"]:
        report.steps.append(f"{rewrites['linear']} MatMul(+Add) by constants made Linear")
    if rewrites["baked"] or rewrites["shape"]:
        report.steps.append(
            f"{rewrites['baked']} nodes got their integer constants baked, "
            f"{rewrites['shape']} Shape nodes made meta-safe"
        )
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxImport(
        module.eval(), spec, opset, report.steps, report.nodes_before, report.nodes_after
    )
