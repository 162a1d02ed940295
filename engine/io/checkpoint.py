"""The Arborist safe checkpoint format.

A pruned model cannot be rebuilt from a state dict alone (layer shapes
changed), and pickling the whole module makes the file unsafe to open.  So we
store the original architecture spec plus the pruning history, which replays
the pruning on a fresh model, and the pruned weights.  Everything is plain
containers and tensors, hence loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ModelLoadError

FORMAT_KEY = "arborist_format"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SafeCheckpoint:
    """Parsed contents of a safe checkpoint."""

    arch: str
    pruning_history: list[Any]
    state_dict: dict[str, torch.Tensor]
    example_input_spec: str | None
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            FORMAT_KEY: self.version,
            "arch": self.arch,
            "pruning_history": self.pruning_history,
            "state_dict": self.state_dict,
            "example_input_spec": self.example_input_spec,
        }


def is_safe_checkpoint(obj: Any) -> bool:
    return isinstance(obj, Mapping) and FORMAT_KEY in obj


def parse_safe_checkpoint(obj: Mapping[str, Any], *, what: str) -> SafeCheckpoint:
    """Validate a loaded dict; ModelLoadError naming the first problem."""
    version = obj.get(FORMAT_KEY)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{what} has Arborist format {version!r}; this version reads up to "
            f"{FORMAT_VERSION}, please upgrade"
        )
    arch = obj.get("arch")
    if not isinstance(arch, str) or not arch:
        raise ModelLoadError(f"{what} is an Arborist checkpoint without an 'arch' entry")
    history = obj.get("pruning_history") or []
    if not isinstance(history, (list, tuple)):
        raise ModelLoadError(
            f"{what}: 'pruning_history' is a {type(history).__name__}, expected a list"
        )
    sd = obj.get("state_dict")
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelLoadError(f"{what}: 'state_dict' is missing or holds non-tensors")
    spec = obj.get("example_input_spec")
    return SafeCheckpoint(
        arch, list(history), dict(sd), spec if isinstance(spec, str) else None, version
    )
