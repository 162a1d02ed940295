"""Reload a torch.save(model) file in a fresh interpreter: the pickled class names must
resolve there too (lifted experts live in modules a new process has not imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]


def experts_class_after_reload(model: nn.Module, folder: Path) -> str:
    """Save ``model`` whole, load it in a new process, and return the class name of
    ``model.layers[0].mlp.experts`` there (the process's stderr on failure)."""
    path = str(folder / "m.pt")
    torch.save(model, path)
    code = (f"import torch; m = torch.load({path!r}, weights_only=False); "
            "print(type(m.model.layers[0].mlp.experts).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()
