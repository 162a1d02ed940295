"""Writing the pruned model in the format OUT's suffix names, then checking the file.

Every writer is atomic (engine.io) and refuses to overwrite the source model.
Each written file is read back and run on the example inputs: a report of the
largest output difference is what tells a user the file is really usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CliError

# Longest suffixes first: "x.safe.pt" is the safe checkpoint, not a pickled module.
FORMATS: tuple[tuple[str, str], ...] = (
    (".safe.pt", "safe"),
    (".safe.pth", "safe"),
    (".onnx", "onnx"),
    (".pt2", "pt2"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
)
TOLERANCE = 1e-4


def output_format(path: str) -> str:
    """The format name for ``path``'s suffix; CliError listing the choices otherwise."""
    lower = path.lower()
    for suffix, fmt in FORMATS:
        if lower.endswith(suffix):
            return fmt
    choices = ", ".join(s for s, _ in FORMATS)
    raise CliError(f"cannot tell the output format of {path!r}; end the name with one of {choices}")


def check_writable(path: str, source: str) -> None:
    """Fail before the (long) pruning when the output path is unusable."""
    from engine.io.atomic import same_file

    out = Path(path)
    if Path(source).exists() and same_file(out, source):
        raise CliError(f"refusing to overwrite the source model {source}; choose another -o path")
    if out.is_dir():
        raise CliError(f"output path {path} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"output directory {parent} does not exist")


def write_model(
    fmt: str,
    model: Any,
    example_inputs: Any,
    path: str,
    *,
    source: str,
    arch: str | None,
    history: list[Any],
    input_spec: str,
) -> dict[str, Any]:
    """Write ``model`` to ``path``; returns the validation report as plain data."""
    import torch

    from engine.io import export_onnx, export_pt2, export_pytorch, export_safe_checkpoint

    protect = source if Path(source).exists() else None
    if fmt == "onnx":
        report = export_onnx(model, example_inputs, path, source=protect)
        data = report.to_dict()
        data["format"] = "onnx"
        if not report.ok:
            problems = "; ".join(report.errors) or f"max abs diff {report.max_abs_diff}"
            data["problem"] = f"ONNX file written but failed validation: {problems}"
        return data
    with torch.no_grad():
        expected = _call(model, example_inputs)
    if fmt == "pt2":
        export_pt2(model, example_inputs, path, source=protect)
    elif fmt == "safe":
        if not arch:
            raise CliError(_NEEDS_ARCH)
        export_safe_checkpoint(
            model,
            path,
            arch=arch,
            pruning_history=history,
            example_input_spec=input_spec,
            source=protect,
        )
    else:
        export_pytorch(model, path, source=protect)
    return _reload_report(fmt, path, example_inputs, expected)


_NEEDS_ARCH = (
    "a .safe.pt checkpoint stores the architecture spec, and this model has none (only zoo "
    "models or state dicts loaded with --arch do); write .pt, .pt2 or .onnx instead"
)


def check_format_possible(fmt: str, arch: str | None) -> None:
    if fmt == "safe" and not arch:
        raise CliError(_NEEDS_ARCH)


def _reload_report(fmt: str, path: str, example_inputs: Any, expected: Any) -> dict[str, Any]:
    """Read the written file back the way a user would and compare outputs."""
    import torch

    errors: list[str] = []
    max_diff: float | None = None
    try:
        reloaded = _reload(fmt, path)
        with torch.no_grad():
            got = _call(reloaded, example_inputs)
        max_diff = _max_abs_diff(expected, got)
    except Exception as exc:  # the report says what went wrong; the file stays
        from engine.io.errors import short_reason

        errors.append(f"reloading {Path(path).name} failed: {short_reason(exc)}")
    match = max_diff is not None and max_diff <= TOLERANCE
    return {
        "format": fmt,
        "path": str(path),
        "file_size": Path(path).stat().st_size,
        "reloaded": not errors,
        "outputs_match": match,
        "max_abs_diff": max_diff,
        "tolerance": TOLERANCE,
        "errors": errors,
    }


def _reload(fmt: str, path: str) -> Any:
    import torch

    if fmt == "pt2":
        return torch.export.load(path).module()
    if fmt == "safe":
        from engine.io import load_model

        return load_model(path).model
    # We wrote this pickle a moment ago from an already-loaded model: trusted.
    model = torch.load(path, map_location="cpu", weights_only=False)
    model.eval()
    return model


def _call(model: Any, inputs: Any) -> Any:
    from engine.io import call_with

    return call_with(model, inputs)


def _max_abs_diff(a: Any, b: Any) -> float:
    from engine.io.onnx_export import flatten_outputs

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
