"""Gradients for gradient-based criteria (taylor, hessian).

A plan is data, so the loss that fills `.grad` must come from the caller
(`calibration(model) -> loss`). Without one we fall back to a fixed-seed random
batch shaped like the example inputs (with a warning): the preview and the real
run then see identical gradients, so the preview still equals the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

Calibration = Callable[[nn.Module], torch.Tensor]

_SEED = 0


def _random_like(x: Any, gen: torch.Generator) -> Any:
    if not isinstance(x, torch.Tensor):
        return x
    if x.is_floating_point():
        return torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    if x.dtype == torch.bool:
        return x.clone()
    high = int(x.max()) + 1 if x.numel() else 1  # stay inside an embedding's vocabulary
    return torch.randint(0, max(high, 1), x.shape, generator=gen, dtype=x.dtype).to(x.device)


def random_calibration(example_inputs: Any) -> Calibration:
    """Loss = mean square of the outputs on a fixed-seed random batch like example_inputs."""

    def loss(model: nn.Module) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_SEED)
        inputs = tree_map(lambda x: _random_like(x, gen), example_inputs)
        if isinstance(inputs, dict):
            out = model(**inputs)
        elif isinstance(inputs, (tuple, list)):
            out = model(*inputs)
        else:
            out = model(inputs)
        leaves = [o for o in tree_flatten(out)[0]
                  if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if not leaves:
            raise ValueError("the model returned no floating-point tensor to build a "
                             "calibration loss from; pass calibration=(model) -> loss")
        return sum(o.float().pow(2).mean() for o in leaves)

    return loss


def resolve(calibration: Calibration | None, example_inputs: Any, criterion: str) -> Calibration:
    if calibration is not None:
        return calibration
    warnings.warn(f"importance {criterion!r} needs gradients and no calibration was given: "
                  "using a fixed-seed random batch shaped like the example inputs (scores will "
                  "not reflect real data; pass calibration=(model) -> loss)", stacklevel=3)
    return random_calibration(example_inputs)


def compute_grads(model: nn.Module, calibration: Calibration) -> None:
    """Fill `.grad` of every parameter from one backward pass (eval mode: no BN stat updates)."""
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for p in model.parameters():
            p.grad = None
        with torch.enable_grad():
            loss = calibration(model)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("calibration must return a scalar loss tensor")
            loss.backward()
    finally:
        for m, flag in training.items():
            m.training = flag


def clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None
