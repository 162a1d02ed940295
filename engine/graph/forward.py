"""Running a model the way the graph traces it: inputs, outputs, mode.

Shared by the tracer's caller, the probe, whole-head checks and the pruner, so that
every forward the engine runs treats `example_inputs` (a tensor, positional tuple or
keyword dict), `forward_fn`, outputs and train/eval mode alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten, tree_map

__all__ = [
    "eval_mode",
    "flatten_outputs",
    "output_shapes",
    "run_forward",
    "runner",
    "to_meta",
]


def run_forward(model: nn.Module, inputs: Any, forward_fn: Callable | None = None) -> Any:
    """`forward_fn(model, inputs)`, else `model(**inputs)` / `model(*inputs)` / `model(inputs)`."""
    if forward_fn is not None:
        return forward_fn(model, inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def runner(forward_fn: Callable | None, output_transform: Callable | None) -> Callable:
    """A `run(model, inputs)` that applies `forward_fn` and then `output_transform`."""

    def run(model: nn.Module, inputs: Any) -> Any:
        out = run_forward(model, inputs, forward_fn)
        return output_transform(out) if output_transform is not None else out

    return run


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """Every tensor of a (nested) model output, dataclass and HF ModelOutput included."""
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        out = [getattr(out, f.name) for f in dataclasses.fields(out)]
    elif hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)]


def output_shapes(out: Any) -> list[tuple[int, ...]]:
    return [tuple(o.shape) for o in flatten_outputs(out)]


def to_meta(obj: Any) -> Any:
    """The same structure with every tensor moved to the meta device."""
    return tree_map(lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x, obj)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run `model` in eval mode and give every module its own mode back afterwards.

    Tracing and checks must not depend on the mode a user left the model in: a
    BatchNorm1d in training mode refuses a batch of one ("Expected more than 1 value per
    channel when training") and dropout would make forwards random. Torch-Pruning also
    traces in eval mode.
    """
    modes = [(m, m.training) for m in model.modules()]
    if not any(flag for _, flag in modes):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag
