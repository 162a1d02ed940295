"""ONNX export followed by validation against ONNX Runtime.

An ONNX file that loads is not necessarily correct (unsupported ops silently
approximated, dynamic axes baked in), so every export is checked with
``onnx.checker`` and run through ONNX Runtime on the example inputs; the
largest difference from the PyTorch output goes into a ValidationReport.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .errors import ExportError, short_reason
from .input_spec import call_with
from .noise import captured_noise

PathLike = str | os.PathLike[str]
ATOL = 1e-4


@dataclass
class TensorInfo:
    """Name, shape (ints, or strings for symbolic dims) and dtype of a graph value."""

    name: str
    shape: list[int | str]
    dtype: str


@dataclass
class ValidationReport:
    """Outcome of ``export_onnx``; ``outputs_match`` is the verdict to show users."""

    path: str
    opset: int
    exporter: str
    file_size: int
    onnx_checker_ok: bool
    outputs_match: bool
    max_abs_diff: float | None
    tolerance: float
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def ok(self) -> bool:
        return self.onnx_checker_ok and self.outputs_match

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flatten_outputs(out: Any, prefix: str = "output") -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs in the order the ONNX exporter flattens outputs."""
    if isinstance(out, torch.Tensor):
        return [(prefix, out)]
    if isinstance(out, dict):
        items = [(f"{k}", v) for k, v in out.items()]
    elif isinstance(out, (tuple, list)):
        items = [(f"{prefix}_{i}", v) for i, v in enumerate(out)]
    else:
        return []  # None / numbers are not graph outputs
    flat: list[tuple[str, torch.Tensor]] = []
    for name, value in items:
        flat.extend(flatten_outputs(value, _sanitize(name)))
    return flat


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "output"


def _input_names(example_inputs: Any) -> list[str]:
    if isinstance(example_inputs, dict):
        return [_sanitize(str(k)) for k in example_inputs]
    if isinstance(example_inputs, (tuple, list)):
        return [f"input_{i}" for i in range(len(example_inputs))]
    return ["input"]


def _input_tensors(example_inputs: Any) -> list[torch.Tensor]:
    if isinstance(example_inputs, dict):
        return list(example_inputs.values())
    if isinstance(example_inputs, (tuple, list)):
        return list(example_inputs)
    return [example_inputs]


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: PathLike,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    source: PathLike | None = None,
) -> ValidationReport:
    """Export to ONNX (atomically), then check and compare with ONNX Runtime."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = flatten_outputs(call_with(model, example_inputs))
        if not reference:
            raise ExportError("the model returned no tensors; nothing to export to ONNX")
        in_names = _input_names(example_inputs)
        out_names = _unique([n for n, _ in reference])
        dynamic_axes = (
            _dynamic_axes(example_inputs, in_names, reference, out_names) if dynamic_batch else None
        )
        exporter = {"name": ""}

        def write(tmp: Path) -> None:
            exporter["name"] = _run_exporter(
                model, example_inputs, tmp, opset, in_names, out_names, dynamic_axes
            )

        try:
            atomic_write(path, write, protect=source)
        except ExportError:
            raise
        except OSError as exc:
            raise ExportError(f"cannot write ONNX file {path}: {exc.strerror or exc}") from None
    finally:
        model.train(was_training)
    return validate_onnx(
        Path(path),
        example_inputs,
        [t for _, t in reference],
        opset=opset,
        exporter=exporter["name"],
    )


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n] - 1}")
    return out


def _dynamic_axes(
    example_inputs: Any,
    in_names: list[str],
    reference: list[tuple[str, torch.Tensor]],
    out_names: list[str],
) -> dict[str, dict[int, str]]:
    tensors = _input_tensors(example_inputs)
    axes = {n: {0: "batch"} for n, t in zip(in_names, tensors, strict=True) if t.dim() >= 1}
    batch = tensors[0].shape[0] if tensors and tensors[0].dim() >= 1 else None
    for name, (_, t) in zip(out_names, reference, strict=True):
        if t.dim() >= 1 and t.shape[0] == batch:
            axes[name] = {0: "batch"}
    return axes


def _run_exporter(
    model: nn.Module,
    example_inputs: Any,
    tmp: Path,
    opset: int,
    in_names: list[str],
    out_names: list[str],
    dynamic_axes: dict | None,
) -> str:
    """Legacy (TorchScript) exporter first: it needs no onnxscript; dynamo as fallback."""
    if isinstance(example_inputs, dict):
        args: tuple = ()
        kwargs: dict | None = dict(example_inputs)
    else:
        args = (
            tuple(example_inputs)
            if isinstance(example_inputs, (tuple, list))
            else (example_inputs,)
        )
        kwargs = None
    common = dict(
        opset_version=opset, input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(tmp), kwargs=kwargs, dynamo=False, **common)
        return "torchscript"
    except OSError as exc:  # a full disk is no reason to try the other exporter
        raise exc from None
    except Exception as legacy_exc:
        if isinstance(legacy_exc.__context__, OSError):
            raise legacy_exc.__context__ from None
        legacy = short_reason(legacy_exc)
    try:
        with captured_noise():  # the dynamo exporter logs its own tracebacks
            program = torch.onnx.export(model, args, kwargs=kwargs, dynamo=True, **common)
            program.save(str(tmp))
        return "dynamo"
    except OSError:
        raise
    except ImportError as exc:
        raise ExportError(
            f"ONNX export failed ({legacy}); the dynamo exporter needs onnxscript: "
            f"pip install onnxscript ({exc})"
        ) from None
    except Exception as exc:
        raise ExportError(
            f"ONNX export failed: legacy exporter: {legacy}; dynamo exporter: {short_reason(exc)}"
        ) from None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_infos(values: Any) -> list[TensorInfo]:
    from onnx import helper

    infos = []
    for v in values:
        tt = v.type.tensor_type
        shape: list[int | str] = [
            d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in tt.shape.dim
        ]
        try:
            dtype = str(np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)))
        except Exception:
            dtype = str(tt.elem_type)
        infos.append(TensorInfo(v.name, shape, dtype))
    return infos


def validate_onnx(
    path: Path,
    example_inputs: Any,
    reference: list[torch.Tensor],
    *,
    opset: int,
    exporter: str = "",
    atol: float = ATOL,
) -> ValidationReport:
    """Check ``path`` with onnx.checker and compare ONNX Runtime with ``reference`` outputs."""
    import onnx

    report = ValidationReport(
        str(path), opset, exporter, path.stat().st_size, False, False, None, atol
    )
    try:
        onnx.checker.check_model(str(path))
        report.onnx_checker_ok = True
    except Exception as exc:
        report.errors.append(f"onnx.checker: {_first_line(exc)}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        inits = {i.name for i in proto.graph.initializer}
        report.inputs = _value_infos([v for v in proto.graph.input if v.name not in inits])
        report.outputs = _value_infos(proto.graph.output)
    except Exception as exc:
        report.errors.append(f"onnx.load: {_first_line(exc)}")
    try:
        got = run_onnxruntime(path, example_inputs)
    except Exception as exc:
        report.errors.append(f"onnxruntime: {short_reason(exc)}")
        return report
    if len(got) != len(reference):
        report.errors.append(f"ONNX Runtime gave {len(got)} outputs, PyTorch {len(reference)}")
        return report
    diffs, match = [], True
    for ref, out in zip(reference, got, strict=True):
        ref_np = ref.detach().cpu().float().numpy()
        if ref_np.shape != out.shape:
            report.errors.append(f"output shape {out.shape} differs from PyTorch {ref_np.shape}")
            return report
        diff = float(np.max(np.abs(ref_np - out.astype(np.float32)))) if ref_np.size else 0.0
        scale = max(1.0, float(np.max(np.abs(ref_np)))) if ref_np.size else 1.0
        diffs.append(diff)
        match = match and diff <= atol * scale
    report.max_abs_diff = max(diffs) if diffs else 0.0
    report.outputs_match = match
    return report


def run_onnxruntime(path: PathLike, example_inputs: Any) -> list[np.ndarray]:
    """Run an ONNX file on CPU with ONNX Runtime; feeds only the inputs the graph kept."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = _input_names(example_inputs)
    arrays = {
        n: t.detach().cpu().numpy()
        for n, t in zip(names, _input_tensors(example_inputs), strict=False)
    }
    wanted = [i.name for i in session.get_inputs()]
    if set(wanted) - set(arrays):
        # Graph inputs named differently (e.g. a foreign exporter): feed positionally.
        feed = {w: a for w, a in zip(wanted, arrays.values(), strict=False)}
    else:
        feed = {w: arrays[w] for w in wanted}
    return [np.asarray(o) for o in session.run(None, feed)]
