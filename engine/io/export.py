"""Writing models out: full pickle, safe checkpoint, torch.export (.pt2), ONNX.

Every writer goes through ``atomic_write`` so a failed export leaves no
partial file and can never overwrite the model's source file.
"""

from __future__ import annotations

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


def export_pytorch(model: nn.Module, path: PathLike, *, source: PathLike | None = None) -> Path:
    """Pickle the whole module (reload with ``torch.load(weights_only=False)``, trusted only)."""

    def write(tmp: Path) -> None:
        torch.save(model, tmp)

    return _write(path, write, source, "PyTorch model")


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

    def write(tmp: Path) -> None:
        torch.save(ckpt.to_dict(), tmp)
        try:
            torch.load(tmp, weights_only=True, map_location="cpu")
        except Exception as exc:
            raise ExportError(
                "checkpoint would not be loadable safely (pruning history not plain data?): "
                f"{short_reason(exc)}"
            ) from None

    return _write(path, write, source, "safe checkpoint")


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

    def write(tmp: Path) -> None:
        torch.export.save(program, tmp)

    return _write(path, write, source, ".pt2 program")


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
    except Exception as exc:
        raise ExportError(f"writing {what} to {path} failed: {short_reason(exc)}") from None
