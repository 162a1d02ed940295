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


def check_writable(
    path: str, source: str, *, inputs: tuple[str, ...] = (), flag: str = "-o"
) -> None:
    """Fail before the (long) pruning when the output path is unusable.

    Never an input (the model, a plan file); the folder must exist and take a small
    probe file (so a read-only folder, even for root, or a full disk shows now, not
    after the model was written); names too long for the file system are refused.
    """
    from engine.io.atomic import same_file

    shown = path if len(path) <= 120 else path[:117] + "..."
    out = Path(path)
    try:
        if source and Path(source).exists() and same_file(out, source):
            raise CliError(
                f"refusing to overwrite the source model {source}; choose another {flag} path"
            )
        for given in inputs:
            if given and Path(given).exists() and same_file(out, given):
                raise CliError(
                    f"refusing to overwrite the input file {given} with {flag}; "
                    "Arborist never overwrites its inputs, choose another path"
                )
        if out.is_dir():
            raise CliError(f"output path {shown} is a directory; give a file name")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise CliError(f"output directory {parent} does not exist")
        _probe(parent, out.name)
    except OSError as exc:
        raise CliError(f"cannot write {shown} ({flag}): {exc.strerror or exc}") from None


def _probe(folder: Path, name: str) -> None:
    """Create, fill and remove a small temporary file where ``name`` will go."""
    import os
    import tempfile

    max_name = os.pathconf(folder, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(name.encode()) > max_name:
        raise OSError(36, f"File name too long ({len(name.encode()):,} bytes, limit {max_name})")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".arborist-probe-")
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)


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

    protect = source if _exists(source) else None
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
    written: bytes | None = None
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
        from engine.io.export import torch_save_bytes

        written = torch_save_bytes(model)
        export_pytorch(model, path, source=protect, data=written)
    return _reload_report(fmt, path, example_inputs, expected, written)


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except OSError:
        return False


_NEEDS_ARCH = (
    "a .safe.pt checkpoint stores the architecture spec, and this model has none (only zoo "
    "models or state dicts loaded with --arch do); write .pt, .pt2 or .onnx instead"
)


def check_format_possible(fmt: str, arch: str | None) -> None:
    if fmt == "safe" and not arch:
        raise CliError(_NEEDS_ARCH)


def _reload_report(
    fmt: str, path: str, example_inputs: Any, expected: Any, written: bytes | None
) -> dict[str, Any]:
    """Read the written file back the way a user would and compare outputs.

    Only through safe readers: .pt2 with engine.io's own reader, .safe.pt with
    weights_only; a pickled .pt is unpickled from the bytes we wrote (whose digest must
    match the file), never from the destination, which someone else may have replaced.
    """
    import torch

    errors: list[str] = []
    max_diff: float | None = None
    try:
        reloaded = _reload(fmt, path, written)
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


def _reload(fmt: str, path: str, written: bytes | None) -> Any:
    import hashlib
    import io

    import torch

    if fmt == "pt2":
        from engine.io.pt2_reader import read_pt2

        return read_pt2(Path(path)).program.module()
    if fmt == "safe":
        from engine.io import load_model

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
