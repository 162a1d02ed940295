"""Saving pruned models as data, like Torch-Pruning's tp.state_dict / tp.load_state_dict.

A pruned model's state_dict no longer fits its class's constructor. `state_dict(model)`
therefore stores, next to the weights, each module's plain attributes (`in_channels`,
`num_heads`, ...) and the pruning history. `load_state_dict(original, state_dict=sd)`
rebuilds the pruned structure on a freshly constructed ORIGINAL model:

* without example inputs (Torch-Pruning's way): every parameter and buffer takes its
  saved shape in place (objects keep their identity), the saved attributes are set, and
  what forward reads from widths (HF config, head counts) is refreshed from the shapes;
* with `example_inputs=`: the history is replayed on a traced graph, so whole-head
  removals and coupled layers are redone by the engine itself, then weights are loaded.

Checkpoints written by Torch-Pruning 1.6.1 itself (per-module `__dict__`s) load too.
Everything is plain data except what the model's modules hold; no code is unpickled here
(reading the file is the caller's `torch.load`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..function.base import set_leaf_data

HISTORY_ATTR = "_arborist_pruning_history"
_PLAIN = (int, float, bool, str, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return False


def module_attributes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per module name, its public plain-data attributes (widths, counts, flags)."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        attrs = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(m).items()
                 if not k.startswith("_") and k != "training" and _plain(v)}
        if attrs:
            out[name] = attrs
    return out


def state_dict(model: nn.Module) -> dict[str, Any]:
    """{"full_state_dict": weights, "attributions": {module: {attr: value}},
    "pruning_history": [(root name, is_out, idxs), ...]}."""
    history = getattr(model, HISTORY_ATTR, [])
    return {
        "full_state_dict": model.state_dict(),
        "attributions": module_attributes(model),
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
    """Give `model` (the ORIGINAL architecture) the saved pruned structure and weights."""
    if "full_state_dict" not in state_dict:
        raise ValueError("not a state_dict() checkpoint: 'full_state_dict' is missing")
    full = state_dict["full_state_dict"]
    if full and all(isinstance(v, Mapping) for v in full.values()):
        return _load_torch_pruning_format(model, full, state_dict.get("attributions", {}))
    history = [(n, bool(o), list(i)) for n, o, i in state_dict.get("pruning_history", [])]
    if history and example_inputs is not None:
        from ..graph import DependencyGraph

        dg = DependencyGraph().build_dependency(
            model, example_inputs, forward_fn=forward_fn, output_transform=output_transform,
            unwrapped_parameters=unwrapped_parameters, customized_pruners=customized_pruners,
        )
        dg.load_pruning_history(history)
    else:
        _take_saved_shapes(model, full)
        _set_attributes(model, state_dict.get("attributions", {}))
        from ..function.attributes import refresh_attributes

        refresh_attributes(model)
    model.load_state_dict(full)
    model.__dict__[HISTORY_ATTR] = history
    return model


def _take_saved_shapes(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Resize every parameter and buffer named in `weights` to the saved shape, in place."""
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(dict(model.named_buffers(remove_duplicate=False)))
    unknown = [k for k in weights if k not in tensors]
    if unknown:
        raise ValueError(f"the checkpoint has tensors this model does not: {unknown[:5]} "
                         "(was it saved from another architecture?)")
    for name, saved in weights.items():
        t = tensors[name]
        if not isinstance(saved, torch.Tensor) or tuple(t.shape) == tuple(saved.shape):
            continue
        with torch.no_grad():
            set_leaf_data(t, torch.empty(saved.shape, dtype=t.dtype, device=t.device))
        t.grad = None


def _set_attributes(model: nn.Module, attributions: Mapping[str, Mapping[str, Any]]) -> None:
    modules = dict(model.named_modules())
    for name, attrs in attributions.items():
        m = modules.get(name)
        if m is None:
            continue
        for key, value in attrs.items():
            if key in vars(m) and vars(m)[key] != value:
                setattr(m, key, tuple(value) if isinstance(vars(m)[key], tuple) else value)


def _load_torch_pruning_format(model: nn.Module, full: Mapping[str, Mapping[str, Any]],
                               attributions: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """Torch-Pruning 1.6.1's checkpoint: each module's `__dict__` and public attributes."""
    for name, m in model.named_modules():
        saved = full.get(name)
        if saved is not None:
            m.__dict__.update(saved)
        for key, value in attributions.get(name, {}).items():
            setattr(m, key, value)
    return model
