"""Export a model in the format its file name asks for, then validate the file.

Every writer is atomic (engine.io) and refuses to overwrite the source model. Every
format is read back and run on the example inputs (the CLI's rule, now the GUI's too):
ONNX through ONNX Runtime, .pt2 through engine.io's safe reader, .safe.pt with
weights_only, a pickled .pt from the very bytes written (digest-checked against the file).
The file is staged in a private folder beside the destination and moved into place once
written and checked (a file that fails the check is still moved there, and the report says
why, as the CLI always did); a cancel or an exception never leaves a partial file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..io.errors import ExportError
from ..utils.progress import CancelFn, ProgressFn, check_cancel, never_cancel, no_progress
from .reports import ExportReport

# Longest suffixes first: "x.safe.pt" is the safe checkpoint, not a pickled module.
FORMATS: tuple[tuple[str, str], ...] = (
    (".safe.pt", "safe"),
    (".safe.pth", "safe"),
    (".onnx", "onnx"),
    (".pt2", "pt2"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
)
FORMAT_ALIASES = {"checkpoint": "safe"}  # the GUI's older name for the safe checkpoint
TOLERANCE = 1e-4

NEEDS_ARCH = (
    "a .safe.pt checkpoint stores the architecture spec, and this model has none (only zoo "
    "models, or state dicts loaded with an architecture (--arch), have one); write .pt, .pt2 "
    "or .onnx instead"
)


def output_format(path: str) -> str:
    """The format name for `path`'s suffix; ExportError listing the choices otherwise."""
    lower = str(path).lower()
    for suffix, fmt in FORMATS:
        if lower.endswith(suffix):
            return fmt
    choices = ", ".join(s for s, _ in FORMATS)
    raise ExportError(
        f"cannot tell the output format of {str(path)!r}; end the name with one of {choices}"
    )


def check_format_possible(fmt: str, arch: str | None) -> None:
    if fmt == "safe" and not arch:
        raise ExportError(NEEDS_ARCH)


def export_validated(
    model: Any,
    example_inputs: Any,
    path: str,
    fmt: str | None = None,
    *,
    source: str = "",
    arch: str | None = None,
    history: list[Any] | None = None,
    input_spec: str = "",
    opset: int = 17,
    dynamic_batch: bool = True,
    progress: ProgressFn = no_progress,
    cancel: CancelFn = never_cancel,
) -> ExportReport:
    """Write `model` to `path` (format from `fmt` or the suffix) and validate the file."""
    from ..io.atomic import same_file

    fmt = FORMAT_ALIASES.get(fmt or "", fmt) or output_format(path)
    if fmt not in {f for _, f in FORMATS}:
        raise ExportError(f"unknown export format {fmt!r}")
    check_format_possible(fmt, arch)
    if source and _exists(source) and same_file(path, source):
        raise ExportError(f"{path} is the model's source file; choose another name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportError(f"the folder {folder} does not exist")
    check_cancel(cancel)
    progress(0.1, f"Writing {os.path.basename(path)}…")
    try:
        staging = tempfile.mkdtemp(prefix=".arborist-export-", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        staged = os.path.join(staging, os.path.basename(path))
        report = _write(
            fmt, model, example_inputs, staged, source=source, arch=arch,
            history=list(history or []), input_spec=input_spec, opset=opset,
            dynamic_batch=dynamic_batch,
        )
        check_cancel(cancel)
        progress(0.95, "Moving the file into place…")
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.path = str(path)
    if report.onnx is not None:
        report.onnx.path = str(path)
    progress(1.0, "Exported")
    return report


def _write(
    fmt: str,
    model: Any,
    example_inputs: Any,
    path: str,
    *,
    source: str,
    arch: str | None,
    history: list[Any],
    input_spec: str,
    opset: int,
    dynamic_batch: bool,
) -> ExportReport:
    import torch

    from ..io import call_with, export_onnx, export_pt2, export_pytorch, export_safe_checkpoint

    protect = source if _exists(source) else None
    if fmt == "onnx":
        onnx = export_onnx(
            model, example_inputs, path, opset=opset, dynamic_batch=dynamic_batch, source=protect
        )
        return ExportReport(
            "onnx", str(path), onnx.file_size, onnx.onnx_checker_ok, onnx.outputs_match,
            onnx.max_abs_diff, onnx.tolerance, list(onnx.errors), onnx,
        )
    with torch.no_grad():
        expected = call_with(model, example_inputs)
    written: bytes | None = None
    if fmt == "pt2":
        export_pt2(model, example_inputs, path, source=protect)
    elif fmt == "safe":
        export_safe_checkpoint(
            model, path, arch=arch, pruning_history=history, example_input_spec=input_spec,
            source=protect,
        )
    else:
        from ..io.export import torch_save_bytes

        written = torch_save_bytes(model)
        export_pytorch(model, path, source=protect, data=written)
    return _reload_report(fmt, path, example_inputs, expected, written)


def _exists(path: str) -> bool:
    try:
        return bool(path) and Path(path).exists()
    except OSError:
        return False


def _reload_report(
    fmt: str, path: str, example_inputs: Any, expected: Any, written: bytes | None
) -> ExportReport:
    """Read the written file back the way a user would and compare outputs."""
    import torch

    from ..io import call_with
    from ..io.errors import short_reason

    errors: list[str] = []
    max_diff: float | None = None
    try:
        reloaded = _reload(fmt, path, written)
        with torch.no_grad():
            got = call_with(reloaded, example_inputs)
        max_diff = max_abs_diff(expected, got)
    except Exception as exc:  # the report says what went wrong; the file stays
        errors.append(f"reloading {Path(path).name} failed: {short_reason(exc)}")
    match = max_diff is not None and max_diff <= TOLERANCE
    return ExportReport(
        fmt, str(path), Path(path).stat().st_size, not errors, match, max_diff, TOLERANCE, errors
    )


def _reload(fmt: str, path: str, written: bytes | None) -> Any:
    """Only safe readers: .pt2 with engine.io's own reader, .safe.pt with weights_only; a
    pickled .pt is unpickled from the bytes we wrote (whose digest must match the file),
    never from the destination, which someone else may have replaced."""
    import hashlib
    import io

    import torch

    if fmt == "pt2":
        from ..io.pt2_reader import read_pt2

        return read_pt2(Path(path)).program.module()
    if fmt == "safe":
        from ..io import load_model

        return load_model(path).model
    assert written is not None
    with open(path, "rb") as fh:
        on_disk = hashlib.sha256(fh.read()).digest()
    if on_disk != hashlib.sha256(written).digest():
        raise ValueError(f"{Path(path).name} on disk differs from what was written")
    # our own bytes, pickled a moment ago from the loaded model: no foreign code in them
    model = torch.load(io.BytesIO(written), map_location="cpu", weights_only=False)
    model.eval()
    return model


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest |a - b| over every output tensor; ValueError when the structures differ."""
    from ..io.onnx_export import flatten_outputs

    fa, fb = flatten_outputs(a), flatten_outputs(b)
    if len(fa) != len(fb):
        raise ValueError(f"{len(fb)} outputs after reloading, {len(fa)} before")
    diffs = [0.0]
    for (_, x), (_, y) in zip(fa, fb, strict=True):
        if x.shape != y.shape:
            raise ValueError(
                f"output shape {tuple(y.shape)} after reloading, {tuple(x.shape)} before"
            )
        if x.numel():
            diffs.append(float((x.float() - y.float()).abs().max()))
    return max(diffs)
