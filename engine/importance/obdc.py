"""OBDC: Optimal Brain Damage with an empirical Fisher from per-sample gradients.

Wang et al., "EigenDamage: Structured Pruning in the Kronecker-Factored Eigenbasis",
ICML 2019 (the OBD-C baseline). The saliency of removing output channel c is
sum over its weights of w^2 * F, with F the diagonal of the empirical Fisher: the mean
over samples of the squared per-sample gradient. Per-sample gradients come from each
layer's input and output gradient (Linear: go^T x per sample; Conv2d: the same on
unfolded patches), so one batch backward gives B samples. Torch-Pruning 1.6.1's
interface, used like this:

    imp = tp.importance.OBDCImportance(num_classes=10)
    pruner = tp.pruner.BasePruner(model, x, imp, ...)
    imp._prepare_model(model, pruner)           # hooks on the groups' conv/Linear layers
    for xb, yb in batches:
        model.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        imp.step()                              # accumulate the Fisher of this batch
    pruner.step()                               # adjusts the Fisher to what it prunes
    imp._rm_hooks(model); imp._clear_buffer()

Linear layers with `num_classes` outputs (classifiers) are not scored, as in
Torch-Pruning. Conv layers other than Conv2d are left to the other members of a group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import GroupScorer

OBDC_TYPES: tuple[type, ...] = (nn.Conv2d, nn.Linear)
_CHUNK = 1 << 24  # per-sample gradient entries per chunk (64 MB in float32)


def per_sample_grads(layer: nn.Module, x: torch.Tensor, go: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Squared per-sample weight (and bias) gradients, summed over the batch:
    (out, in/groups * k) and (out,). `go` is dLoss/dOutput of the whole batch."""
    if isinstance(layer, nn.Linear):
        b = x.shape[0]
        xs = x.reshape(b, -1, x.shape[-1]).to(torch.float32)
        gs = go.reshape(b, -1, go.shape[-1]).to(torch.float32)
        return _squared_sum(gs, xs, 1, b), (gs.sum(1) * b).pow(2).sum(0)
    # Conv2d: per-sample grad = go (out x positions) @ patches (positions x in*k*k)
    b, groups = x.shape[0], layer.groups
    patches = F.unfold(x.to(torch.float32), layer.kernel_size, layer.dilation,
                       layer.padding, layer.stride)  # (b, in*k*k, L)
    gs = go.to(torch.float32).reshape(b, go.shape[1], -1)  # (b, out, L)
    xs = patches.transpose(1, 2)  # (b, L, in*k*k)
    gs = gs.transpose(1, 2)  # (b, L, out)
    bias = (gs.sum(1) * b).pow(2).sum(0) if layer.bias is not None else None
    return _squared_sum(gs, xs, groups, b), bias


def _squared_sum(gs: torch.Tensor, xs: torch.Tensor, groups: int, scale: int) -> torch.Tensor:
    """sum_n (scale * gs[n]^T xs[n])^2 per group block, over batch chunks: (out, in/g)."""
    b, _, out = gs.shape
    width = xs.shape[-1] // groups
    result = torch.zeros(out, width, dtype=torch.float32, device=gs.device)
    per_out = out // groups
    step = max(1, _CHUNK // max(out * width, 1))
    for i in range(0, b, step):
        g, x = gs[i:i + step], xs[i:i + step]
        for k in range(groups):
            rows = slice(k * per_out, (k + 1) * per_out)
            cols = slice(k * width, (k + 1) * width)
            grad = torch.einsum("blo,bli->boi", g[..., rows], x[..., cols]) * scale
            result[rows] += grad.pow(2).sum(0)
    return result


class OBDCImportance(GroupScorer):
    """Torch-Pruning's `OBDCImportance(group_reduction, normalizer, bias, target_types,
    num_classes)`; see the module doc for the accumulate-then-prune protocol."""

    def __init__(
        self,
        group_reduction: str | None = "mean",
        normalizer: str | Callable | None = "mean",
        bias: bool = False,
        target_types: Sequence[type] = OBDC_TYPES,
        num_classes: int = 100,
    ) -> None:
        super().__init__(group_reduction, normalizer, bias, target_types)
        self.num_classes = num_classes
        self.eps = 1e-10
        self.steps = 0
        self.modules: list[nn.Module] = []
        self.Fisher: dict[nn.Module, torch.Tensor] = {}  # noqa: N815  (Torch-Pruning's name)
        self._bias_fisher: dict[nn.Module, torch.Tensor] = {}
        self._seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles: list[Any] = []

    # ------------------------------------------------------------ collection
    def _prepare_model(self, model: nn.Module, pruner: Any) -> None:
        """Hook the conv/Linear layers whose out channels the pruner's groups remove."""
        self._rm_hooks(model)
        wanted: dict[int, nn.Module] = {}
        for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                              root_module_types=pruner.root_module_types):
            for item in group:
                layer = item.dep.target.module
                if (item.dep.kind == "out" and isinstance(layer, tuple(self.target_types))
                        and isinstance(layer, OBDC_TYPES)):
                    wanted[id(layer)] = layer
        self.modules = list(wanted.values())
        for layer in self.modules:
            self._handles.append(layer.register_forward_hook(self._save))

    def _save(self, layer: nn.Module, args: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return
        if not output.requires_grad or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0].detach()

        def keep_grad(go: torch.Tensor) -> None:
            self._seen[layer] = (x, go.detach())

        output.register_hook(keep_grad)

    def step(self) -> None:
        """Add the squared per-sample gradients of the last backward to the Fisher."""
        with torch.no_grad():
            for layer, (x, go) in self._seen.items():
                weight, bias = per_sample_grads(layer, x, go)
                old = self.Fisher.get(layer)
                if old is None or old.shape != weight.shape:  # new, or pruned since
                    self.Fisher[layer] = weight
                    if bias is not None:
                        self._bias_fisher[layer] = bias
                else:
                    self.Fisher[layer] = old + weight
                    if bias is not None and layer in self._bias_fisher:
                        self._bias_fisher[layer] = self._bias_fisher[layer] + bias
        self._seen.clear()
        self.steps += 1

    def _rm_hooks(self, model: nn.Module | None = None) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _clear_buffer(self) -> None:
        self.Fisher = {}
        self._bias_fisher = {}
        self._seen.clear()
        self.modules = []
        self.steps = 0

    def adjust_fisher(self, group: Any, idxs: Sequence[int]) -> None:
        """Cut the Fisher of every member as pruning `idxs` of `group`'s root will cut its
        weights (the pruner calls this before each prune), so scores stay aligned."""
        idxs = [int(i) for i in idxs]
        if list(group[0].idxs) != idxs:
            root = group[0].dep
            group = group.graph.get_pruning_group(root.target.module, root.handler, idxs)
        for item in group:
            layer = item.dep.target.module
            fisher = self.Fisher.get(layer)
            if fisher is None or not item.idxs:
                continue
            if item.dep.kind == "out":
                keep = _complement(fisher.shape[0], item.idxs)
                self.Fisher[layer] = fisher[keep]
                if layer in self._bias_fisher:
                    self._bias_fisher[layer] = self._bias_fisher[layer][keep]
            else:
                per = fisher.shape[1] // max(_in_per_group(layer), 1)  # kernel entries
                cols = torch.as_tensor([c % _in_per_group(layer) for c in item.idxs])
                cols = torch.unique(cols)
                drop = (cols[:, None] * per + torch.arange(per)).reshape(-1)
                keep = _complement(fisher.shape[1], drop.tolist())
                self.Fisher[layer] = fisher[:, keep]

    # ------------------------------------------------------------------ score
    def _member_scores(
        self, layer: nn.Module, is_out: bool, idxs: np.ndarray
    ) -> list[torch.Tensor]:
        if not is_out or not isinstance(layer, OBDC_TYPES):
            return []
        if isinstance(layer, nn.Linear) and layer.out_features == self.num_classes:
            return []
        fisher = self.Fisher.get(layer)
        if fisher is None or self.steps == 0:
            return []
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        if fisher.shape != w.shape:
            raise ValueError(
                f"OBDC statistics of a {type(layer).__name__} have shape {tuple(fisher.shape)}"
                f" but its weight is now {tuple(w.shape)}: accumulate them again "
                "(backward + imp.step()) after pruning")
        index = torch.as_tensor(idxs, dtype=torch.long)
        diag = fisher[index] / self.steps + self.eps
        out = [(w[index].to(torch.float32).pow(2) * diag).sum(1)]
        if self.bias and layer.bias is not None and layer in self._bias_fisher:
            fb = self._bias_fisher[layer][index] / self.steps + self.eps
            out.append(layer.bias.detach()[index].to(torch.float32).pow(2) * fb)
        return out


def _in_per_group(layer: nn.Module) -> int:
    return layer.weight.shape[1]  # conv: in/groups; Linear: in


def _complement(n: int, drop: Sequence[int]) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[torch.as_tensor(list(drop), dtype=torch.long)] = False
    return torch.nonzero(mask).reshape(-1)
