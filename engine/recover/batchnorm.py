"""Re-estimate batch-norm statistics on the user's data after pruning.

Pruning removes channels, so every BN layer downstream sees inputs whose
statistics no longer match its running mean/var. Re-estimating them (no gradient,
no weight change) often wins back much of the accuracy by itself, which is why the
recovery curve reports it as its own point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..data.batch import as_batch
from ..io import call_with

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    max_batches: int = 50,
    to_device: Callable[[Any], Any] | None = None,
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """Reset and re-estimate running statistics from up to `max_batches`; returns batches used.

    Statistics are cumulative averages (momentum None), so the result does not depend
    on batch order. Only BN layers run in training mode: dropout stays off. `average`
    (e.g. a cross-process mean) is applied to each statistic at the end so that every
    data-parallel process ends with the same ones.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    used = 0
    try:
        for item in batches:
            if used >= max_batches:
                break
            batch = as_batch(item)
            if to_device is not None:
                batch = to_device(batch)
            call_with(model, batch.inputs)
            used += 1
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    if average is not None:
        for m in layers:
            m.running_mean.copy_(average(m.running_mean))
            m.running_var.copy_(average(m.running_var))
    return used


def freeze_batchnorm(model: nn.Module) -> None:
    """Put BN layers in eval mode (running statistics fixed) while the rest trains."""
    for m in batchnorm_layers(model):
        m.eval()
