"""Atomic, resumable recovery checkpoints.

A checkpoint holds everything the next step depends on: weights, optimizer moments,
the step/epoch/batch position in the shuffled data, the curve so far, the best
weights and the random-number states, so a run killed with SIGKILL and resumed ends
where an uninterrupted run would. Written to a temporary sibling and `os.replace`d:
the file on disk is always the previous complete checkpoint or the new one.
Loaded with weights_only=True (plain tensors and containers only).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "arborist-recovery-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot resume this run (other model shapes, unreadable file)."""


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": _plain(random.getstate()),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def shapes_of(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """torch.save to a temporary file in the same folder, then os.replace over `path`."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module) -> dict[str, Any]:
    """The saved state, after checking it was made for a model of these shapes."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise CheckpointError(f"cannot read the recovery checkpoint {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an Arborist recovery checkpoint")
    if state["shapes"] != shapes_of(model):
        raise CheckpointError(
            f"the recovery checkpoint {path} was made for a model of other shapes (another "
            "plan or model); start without --resume or give another --checkpoint"
        )
    return state
