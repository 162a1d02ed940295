"""Pruners that also sparsify during training: call `regularize(model)` after
`loss.backward()` and before `optimizer.step()`, then `step()` removes what went small.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..graph import Group
from ..importance.magnitude import GroupMagnitudeImportance
from ..importance.slices import flat_positions
from .base_pruner import BasePruner, _root_key

_SCALED = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm)


class MagnitudePruner(BasePruner):
    """BasePruner under Torch-Pruning's name for magnitude pruning."""


def _member_coef(group: Group, k: int, gamma: torch.Tensor) -> torch.Tensor:
    """gamma (one per root channel) expanded to member k's indices."""
    pos = {r: i for i, r in enumerate(group[0].idxs)}
    item = group[k]
    roots = item.root_idxs if item.root_idxs is not None else item.idxs
    return gamma[torch.as_tensor([pos[r] for r in roots], dtype=torch.long)]


@torch.no_grad()
def add_scaled_weight_to_grad(
    layer: nn.Module, is_out: bool, idxs: list[int], coef: torch.Tensor, bias: bool = False
) -> None:
    """grad[entries of channel i] += coef[i] * weight[entries of channel i] (an L2 pull)."""
    names = ("weight", "bias") if bias and is_out else ("weight",)
    for name in names:
        p = getattr(layer, name, None)
        if not isinstance(p, torch.Tensor) or p.grad is None:
            continue
        if name == "bias":
            pos = torch.as_tensor(idxs, dtype=torch.long, device=p.device).unsqueeze(1)
        else:
            pos = flat_positions(layer, p, is_out, idxs)
            if pos is None:
                continue
        c = coef.to(p.device, p.dtype).reshape(-1, 1).expand_as(pos)
        flat_w = p.detach().reshape(-1)
        grad = p.grad
        upd = torch.zeros(p.numel(), dtype=grad.dtype, device=grad.device)
        upd.index_add_(0, pos.reshape(-1), (c * flat_w[pos]).reshape(-1))
        grad.add_(upd.view_as(grad))


def _regularize_group(group: Group, gamma: torch.Tensor, bias: bool) -> None:
    for k, item in enumerate(group):
        layer = item.dep.target.module
        if isinstance(layer, _SCALED):
            add_scaled_weight_to_grad(layer, item.dep.kind == "out", item.idxs,
                                      _member_coef(group, k, gamma), bias)


class BNScalePruner(BasePruner):
    """Network Slimming: L1 on BatchNorm gammas (or group lasso on them), then prune small ones."""

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Any,
                 reg: float = 1e-5, group_lasso: bool = False, **kwargs: Any) -> None:
        super().__init__(model, example_inputs, importance, **kwargs)
        self.reg = reg
        self.group_lasso = group_lasso
        self._l2 = GroupMagnitudeImportance(p=2, normalizer=None,
                                            target_types=(nn.modules.batchnorm._BatchNorm,))
        self._reg_groups = self._groups()

    def update_regularizer(self) -> None:
        self._reg_groups = self._groups()

    @torch.no_grad()
    def regularize(self, model: nn.Module, reg: float | None = None, bias: bool = False) -> None:
        reg = self.reg if reg is None else reg
        ignored = {id(m) for layer in self.ignored_layers for m in layer.modules()}
        if not self.group_lasso:
            for m in model.modules():
                if (isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine
                        and id(m) not in ignored and m.weight.grad is not None):
                    m.weight.grad.add_(reg * torch.sign(m.weight.detach()))
            return
        for group in self._reg_groups:
            sq = self._l2(group)
            if sq is None:
                continue
            gamma = reg / (sq + 1e-9).sqrt()
            for k, item in enumerate(group):
                layer = item.dep.target.module
                if isinstance(layer, nn.modules.batchnorm._BatchNorm) and id(layer) not in ignored:
                    add_scaled_weight_to_grad(layer, True, item.idxs, _member_coef(group, k, gamma))


class GroupNormPruner(BasePruner):
    """DepGraph's group-level sparsity: pull every coupled weight of weak channels to zero.

    Channel i of a group gets grad += reg * alpha**s_i * w, where s_i in [0, 1] is 1 for
    the group's weakest channel and 0 for its strongest (scores from `importance`).
    """

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Any,
                 reg: float = 1e-4, alpha: float = 4, **kwargs: Any) -> None:
        super().__init__(model, example_inputs, importance, **kwargs)
        self.reg = reg
        self.alpha = alpha
        self._reg_groups = self._groups()
        self.cnt = 0

    def update_regularizer(self) -> None:
        self._reg_groups = self._groups()

    @torch.no_grad()
    def regularize(self, model: nn.Module, alpha: float = 2**4, bias: bool = False) -> None:
        for group in self._reg_groups:
            imp = self.estimate_importance(group)
            if imp is None:
                continue
            imp = imp.detach().to("cpu", torch.float64).sqrt()
            if torch.isnan(imp).any():
                continue
            span = imp.max() - imp.min()
            rel = (imp.max() - imp) / span if span > 0 else torch.zeros_like(imp)
            _regularize_group(group, self.reg * alpha ** rel, bias)
        self.cnt += 1


class GrowingRegPruner(BasePruner):
    """Growing regularization (Wang et al., ICLR 2021): per-channel L2 strength that grows
    faster for weaker channels each time `update_reg()` is called."""

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Any,
                 reg: float = 1e-5, delta_reg: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(model, example_inputs, importance, **kwargs)
        self.base_reg = reg
        self.delta_reg = delta_reg
        self.update_regularizer()

    def update_regularizer(self) -> None:
        """Re-read the groups (after pruning) and restart every strength at `reg`."""
        self._reg_groups = self._groups()
        self.group_reg = {
            _root_key(g): torch.full((len(g[0].idxs),), float(self.base_reg), dtype=torch.float64)
            for g in self._reg_groups
        }

    @torch.no_grad()
    def update_reg(self) -> None:
        for group in self._reg_groups:
            imp = self.estimate_importance(group)
            if imp is None:
                continue
            imp = imp.detach().to("cpu", torch.float64)
            rel = (imp.max() - imp) / (imp.max() - imp.min() + 1e-8)
            key = _root_key(group)
            self.group_reg[key] = self.group_reg[key] + self.delta_reg * rel

    @torch.no_grad()
    def regularize(self, model: nn.Module, bias: bool = False) -> None:
        for group in self._reg_groups:
            gamma = self.group_reg.get(_root_key(group))
            if gamma is None or gamma.numel() != len(group[0].idxs):
                continue
            _regularize_group(group, gamma, bias)
