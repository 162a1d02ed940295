"""Gradient-based criteria: first-order Taylor and diagonal-Hessian (OBD) saliency."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .base import DEFAULT_TARGET_TYPES, GroupScorer
from .slices import channel_rows


class GroupTaylorImportance(GroupScorer):
    """|w * dL/dw| summed per channel; needs `.grad` from the caller's backward pass.

    `multivariable=True` takes |sum(w * grad)| instead (the joint first-order
    change in loss when the whole channel is removed).
    """

    def __init__(
        self,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        multivariable: bool = False,
        bias: bool = False,
        target_types: Sequence[type] = DEFAULT_TARGET_TYPES,
    ) -> None:
        super().__init__(group_reduction, normalizer, bias, target_types)
        self.multivariable = multivariable

    def _saliency(self, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (w * g).sum(1).abs() if self.multivariable else (w * g).abs().sum(1)

    def _grad(self, p: torch.Tensor) -> torch.Tensor | None:
        return p.grad

    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        out = []
        names = ("weight", "bias") if self.bias else ("weight",)
        for name in names:
            p = getattr(layer, name, None)
            if not isinstance(p, torch.Tensor) or (name == "bias" and not is_out):
                continue
            g = self._grad(p)
            if g is None:
                continue
            if name == "bias":
                w, gg = p.detach()[idxs].unsqueeze(1), g[idxs].unsqueeze(1)
            else:
                w = channel_rows(layer, p.detach(), is_out, idxs)
                gg = channel_rows(layer, g, is_out, idxs)
                if w is None:
                    continue
            out.append(self._saliency(w, gg))
        return out

    def __call__(self, group):
        scores = super().__call__(group)
        if scores is None and any(
            isinstance(getattr(it.dep.target.module, "weight", None), torch.Tensor)
            for it in group
        ):
            raise ValueError(
                f"{type(self).__name__} needs gradients: run loss.backward() before scoring "
                f"(no .grad on any layer of the group rooted at {group[0].dep.target.name})"
            )
        return scores


class GroupHessianImportance(GroupTaylorImportance):
    """Optimal Brain Damage saliency w^2 * H, with H ~ mean of per-sample grad^2 (Fisher).

    Call `accumulate_grad(model)` after each single-sample backward pass; `zero_grad()`
    clears the running sums (needed after pruning changes shapes).
    """

    def __init__(self, group_reduction: str | None = "mean",
                 normalizer: str | Callable | None = "mean",
                 bias: bool = False,
                 target_types: Sequence[type] = DEFAULT_TARGET_TYPES) -> None:
        super().__init__(group_reduction, normalizer, False, bias, target_types)
        self._accu: dict[int, torch.Tensor] = {}
        self._count: dict[int, int] = {}

    def accumulate_grad(self, model: nn.Module) -> None:
        for p in model.parameters():
            if p.grad is None:
                continue
            sq = p.grad.detach().pow(2)
            key = id(p)
            if key in self._accu and self._accu[key].shape == sq.shape:
                self._accu[key] += sq
                self._count[key] += 1
            else:
                self._accu[key], self._count[key] = sq.clone(), 1

    def zero_grad(self) -> None:
        self._accu.clear()
        self._count.clear()

    def _grad(self, p: torch.Tensor) -> torch.Tensor | None:
        acc = self._accu.get(id(p))
        if acc is not None:
            if acc.shape != p.shape:
                raise ValueError("accumulated gradients predate pruning: call zero_grad() and "
                                 "accumulate again")
            return acc / self._count[id(p)]
        return None if p.grad is None else p.grad.pow(2)

    def _saliency(self, w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return (w.pow(2) * h).sum(1)


class TaylorImportance(GroupTaylorImportance):
    """Torch-Pruning's name for the group Taylor criterion."""


class HessianImportance(GroupHessianImportance):
    """Torch-Pruning's name for the group Hessian criterion."""
