"""Per-layer before/after printout of a pruning run (Torch-Pruning's print_tool).

`before_pruning(model)` snapshots every leaf module's repr; `after_pruning(model)`
prints (and returns) one line per layer whose repr changed, e.g.
`conv1: Conv2d(3, 64, ...) => Conv2d(3, 32, ...)`.
"""

from __future__ import annotations

import weakref

from torch import nn

_snapshots: weakref.WeakKeyDictionary[nn.Module, dict[str, str]] = weakref.WeakKeyDictionary()


def _leaf_reprs(model: nn.Module) -> dict[str, str]:
    return {name: repr(m) for name, m in model.named_modules() if not list(m.children())}


def before_pruning(model: nn.Module) -> None:
    """Remember the current shape of every layer of `model`."""
    _snapshots[model] = _leaf_reprs(model)


def after_pruning(model: nn.Module, do_print: bool = True) -> str:
    """Lines `name: before => after` for every layer changed since before_pruning(model)."""
    before = _snapshots.get(model)
    if before is None:
        raise ValueError("call print_tool.before_pruning(model) before pruning")
    after = _leaf_reprs(model)
    lines = [f"{n}: {before[n]} => {r}" for n, r in after.items() if n in before and before[n] != r]
    text = "\n".join(lines)
    if do_print:
        print(text)
    return text


__all__ = ["before_pruning", "after_pruning"]
