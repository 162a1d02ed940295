"""Writing models out: full pickle, safe checkpoint, torch.export (.pt2), ONNX.

Every writer goes through ``atomic_write`` so a failed export leaves no
partial file and can never overwrite the model's source file. torch's own
file writers abort the whole process (SIGABRT in C++) when the disk fills up,
so the torch formats are serialized into memory first and written by Python,
where a full disk is an ordinary OSError, reported as an ExportError.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write
from .checkpoint import SafeCheckpoint
from .errors import ExportError, short_reason
from .input_spec import InputSpec
from .onnx_export import ValidationReport, export_onnx

__all__ = [
    "export_pytorch",
    "export_safe_checkpoint",
    "export_pt2",
    "export_onnx",
    "ValidationReport",
]

PathLike = str | os.PathLike[str]


def torch_save_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory (see the module docstring for why not into the file)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def export_pytorch(
    model: nn.Module,
    path: PathLike,
    *,
    source: PathLike | None = None,
    data: bytes | None = None,
) -> Path:
    """Pickle the whole module (reload with ``torch.load(weights_only=False)``, trusted only).

    ``data``: the module already serialized with ``torch_save_bytes`` (callers that check
    the written model unpickle their own bytes, never the file, which others may replace).
    """
    try:
        payload = torch_save_bytes(model) if data is None else data
    except Exception as exc:
        raise ExportError(f"the model cannot be pickled: {short_reason(exc)}") from None
    return _write(path, lambda tmp: _write_bytes(tmp, payload), source, "PyTorch model")


def export_safe_checkpoint(
    model: nn.Module,
    path: PathLike,
    *,
    arch: str,
    pruning_history: Sequence[Any],
    example_input_spec: InputSpec | str | None,
    source: PathLike | None = None,
) -> Path:
    """Write a ``weights_only``-loadable Arborist checkpoint (see ``checkpoint.py``).

    The file is re-read with ``weights_only=True`` before it replaces ``path``,
    so a history holding non-plain objects fails here, not when reopening.
    """
    if isinstance(example_input_spec, str):
        example_input_spec = InputSpec.parse(example_input_spec)
    spec_text = example_input_spec.to_string() if example_input_spec is not None else None
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = SafeCheckpoint(arch, _plain_history(pruning_history), state_dict, spec_text)

    payload = torch_save_bytes(ckpt.to_dict())
    try:
        torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ExportError(
            "checkpoint would not be loadable safely (pruning history not plain data?): "
            f"{short_reason(exc)}"
        ) from None
    return _write(path, lambda tmp: _write_bytes(tmp, payload), source, "safe checkpoint")


def export_pt2(
    model: nn.Module, example_inputs: Any, path: PathLike, *, source: PathLike | None = None
) -> Path:
    """``torch.export`` the model on ``example_inputs`` and save it as ``.pt2``."""
    if isinstance(example_inputs, dict):
        args, kwargs = (), dict(example_inputs)
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}
    try:
        program = torch.export.export(model, args, kwargs=kwargs)
    except Exception as exc:
        raise ExportError(f"torch.export failed: {short_reason(exc)}") from None
    buffer = io.BytesIO()
    try:
        torch.export.save(program, buffer)
    except Exception as exc:
        raise ExportError(f"saving the .pt2 program failed: {short_reason(exc)}") from None
    payload = buffer.getvalue()
    return _write(path, lambda tmp: _write_bytes(tmp, payload), source, ".pt2 program")


def _write_bytes(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)


def _plain_history(history: Sequence[Any]) -> list[Any]:
    """Tuples -> lists recursively; any other object is left for the re-read check."""

    def plain(x: Any) -> Any:
        if isinstance(x, (list, tuple)):
            return [plain(i) for i in x]
        if isinstance(x, torch.Tensor):
            return x.tolist()
        return x

    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise ExportError("pruning_history must be a list of steps")
    return [plain(step) for step in history]


def _write(path: PathLike, write: Any, source: PathLike | None, what: str) -> Path:
    try:
        return atomic_write(path, write, protect=source)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise ExportError(f"not enough memory to write {what} to {path}") from None
    except Exception as exc:
        raise ExportError(f"writing {what} to {path} failed: {short_reason(exc)}") from None
