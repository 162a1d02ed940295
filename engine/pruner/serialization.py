"""Saving pruned models as (weights, pruning history), like Torch-Pruning's tp.state_dict.

A pruned model's state_dict no longer fits its class's constructor. Storing the
history of group removals lets `load_state_dict` rebuild the pruned structure
from a freshly constructed ORIGINAL model, then load the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

HISTORY_ATTR = "_arborist_pruning_history"


def state_dict(model: nn.Module) -> dict[str, Any]:
    """{"full_state_dict": weights, "pruning_history": [(root name, is_out, idxs), ...]}."""
    history = getattr(model, HISTORY_ATTR, [])
    return {
        "full_state_dict": model.state_dict(),
        "pruning_history": [(n, bool(o), list(i)) for n, o, i in history],
    }


def load_state_dict(
    model: nn.Module,
    state_dict: dict[str, Any],
    example_inputs: Any = None,
    forward_fn: Callable | None = None,
    output_transform: Callable | None = None,
    unwrapped_parameters: dict | None = None,
    customized_pruners: dict | None = None,
) -> nn.Module:
    """Replay the saved history on `model` (the ORIGINAL architecture), then load weights."""
    if "full_state_dict" not in state_dict:
        raise ValueError("not an engine.state_dict() checkpoint: 'full_state_dict' is missing")
    history = [(n, bool(o), list(i)) for n, o, i in state_dict.get("pruning_history", [])]
    if history:
        if example_inputs is None:
            raise ValueError("replaying a pruning history traces the model: pass example_inputs=")
        from ..graph import DependencyGraph

        dg = DependencyGraph().build_dependency(
            model, example_inputs, forward_fn=forward_fn, output_transform=output_transform,
            unwrapped_parameters=unwrapped_parameters, customized_pruners=customized_pruners,
        )
        dg.load_pruning_history(history)
    model.load_state_dict(state_dict["full_state_dict"])
    model.__dict__[HISTORY_ATTR] = history
    return model
