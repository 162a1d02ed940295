"""Activation importance: how strongly each channel is used on real data.

A channel that carries small activations contributes little downstream (Minitron's
activation-based width importance; Wanda-sp's structured variant weighs the same
statistic). Usage, as in Torch-Pruning 1.6.1:

    imp = tp.importance.ActivationImportance()
    with imp.compute_importance(model):
        for x in calibration_batches:
            model(x)
    pruner = tp.pruner.BasePruner(model, example_inputs, imp, ...)

Inside the context every conv/Linear records the mean |input| of each of its input
channels, averaged over all samples and positions of all forwards (Torch-Pruning keeps
only the last forward, summed over tokens for Linear layers). A group is scored through
the members whose IN channels it removes: the statistics of the activations those
channels carry. Statistics describe one structure: after pruning, collect them again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..function.hf_conv1d import lazy_types
from .base import GroupScorer

ACTIVATION_TYPES: tuple[type, ...] = (nn.modules.conv._ConvNd, nn.Linear)


def _in_width(layer: nn.Module) -> int:
    """Input channels of a conv, Linear or HF Conv1D, read from its weight."""
    w = layer.weight
    if isinstance(layer, nn.modules.conv._ConvNd):
        return w.shape[0] if layer.transposed else w.shape[1] * layer.groups
    if isinstance(layer, nn.Linear):
        return w.shape[1]
    return w.shape[0]  # HF Conv1D stores (in, out)


class ActivationImportance(GroupScorer):
    """Mean |activation| per channel, collected by `compute_importance(model)`."""

    def __init__(
        self,
        p: float = 2,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        bias: bool = False,
        target_types: Sequence[type] = ACTIVATION_TYPES,
    ) -> None:
        super().__init__(group_reduction, normalizer, bias, target_types)
        self.p = p  # Torch-Pruning's signature; activations are averaged as |x|
        # id(layer) -> (layer, sum of |x| per input channel, number of positions)
        self._stats: dict[int, tuple[nn.Module, torch.Tensor, int]] = {}

    @contextlib.contextmanager
    def compute_importance(self, model: nn.Module) -> Iterator[ActivationImportance]:
        """Record input statistics of `model`'s layers during the forwards run inside.

        Statistics from earlier contexts are replaced, so each pruning step can collect
        fresh ones for the current structure.
        """
        self._stats.clear()
        types = tuple(self.target_types) + (lazy_types() if self._hf_conv1d else ())
        handles = [m.register_forward_pre_hook(self._record) for m in model.modules()
                   if isinstance(m, types)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def has_statistics(self, layer: nn.Module) -> bool:
        return id(layer) in self._stats

    def statistics(self, layer: nn.Module) -> torch.Tensor | None:
        """Mean |input| per input channel of `layer`, or None if it never ran."""
        hit = self._stats.get(id(layer))
        if hit is None or hit[0] is not layer:
            return None
        return hit[1] / max(hit[2], 1)

    @torch.no_grad()
    def _record(self, layer: nn.Module, args: tuple) -> None:
        if not args or not isinstance(args[0], torch.Tensor) or args[0].is_meta:
            return
        x = args[0].detach()
        if isinstance(layer, nn.modules.conv._ConvNd):
            if x.dim() < 2:
                return
            channels = x.movedim(1, -1) if x.dim() > 2 else x
        else:  # Linear, HF Conv1D: features are the last dim
            channels = x
        flat = channels.reshape(-1, channels.shape[-1]).abs().to(torch.float64)
        total = flat.sum(0)
        prev = self._stats.get(id(layer))
        if prev is not None and prev[0] is layer and prev[1].shape == total.shape:
            self._stats[id(layer)] = (layer, prev[1] + total, prev[2] + flat.shape[0])
        else:
            self._stats[id(layer)] = (layer, total, flat.shape[0])

    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        if is_out:
            return []
        stats = self.statistics(layer)
        if stats is None:
            return []
        if stats.numel() != _in_width(layer):
            raise ValueError(
                f"activation statistics of a {type(layer).__name__} have {stats.numel()} "
                "channels but the layer was pruned since: collect them again with "
                "`with imp.compute_importance(model): model(x)`")
        return [stats[torch.as_tensor(idxs, dtype=torch.long)]]

    def __call__(self, group):  # noqa: ANN001, ANN204
        if not self._stats:
            raise ValueError("ActivationImportance has no statistics: run the model inside "
                             "`with imp.compute_importance(model): ...` first")
        return super().__call__(group)
