"""Mixture-of-experts MLPs whose experts live in fused 3-D tensors (transformers 5.x).

Mixtral-style `experts` modules hold `gate_up_proj` (E, 2I, H) and `down_proj`
(E, H, I) as raw parameters and route tokens with data-dependent indexing (or
`torch._grouped_mm`), which neither a meta trace nor a channel rule can follow. So:

- the module is lifted (its class swapped for a subclass, state dict unchanged) into a
  leaf of the dependency graph with `FusedExpertsPruner`: the residual width H enters
  through `gate_up_proj`'s last dim and leaves through `down_proj`'s dim 1; on meta
  tensors its forward only returns the output's shape;
- each expert's intermediate width I is internal to the leaf: `prune_expert_widths`
  removes the same number of channels from every expert (the tensors stay 3-D), each
  expert choosing its own least important channels (L2 norm of its gate row, up row and
  down column). The router and the expert count are never touched.
Recognised by attribute names and shapes; transformers is not imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from ..function.base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

EXPERTS_PREFIX = "experts:"  # pruning-history entries: per-expert removed channels

__all__ = ["EXPERTS_PREFIX", "FusedExperts", "FusedExpertsPruner", "expert_width",
           "is_fused_experts",
           "lift_experts", "prune_expert_widths", "replay_experts"]


def is_fused_experts(m: nn.Module) -> bool:
    gu, down = getattr(m, "gate_up_proj", None), getattr(m, "down_proj", None)
    return (isinstance(gu, torch.Tensor) and isinstance(down, torch.Tensor)
            and gu.dim() == 3 and down.dim() == 3 and gu.shape[0] == down.shape[0]
            and gu.shape[1] == 2 * down.shape[2] and gu.shape[2] == down.shape[1])


def expert_width(m: nn.Module) -> int | None:
    """Intermediate width of every expert of a fused experts module."""
    return int(m.down_proj.shape[2]) if is_fused_experts(m) else None


def grouped_mm_aligned(m: nn.Module) -> bool:
    """transformers' default CPU/GPU experts kernel (`torch._grouped_mm`) needs every row
    stride to be a multiple of 16 bytes: widths pruned to e.g. 45 floats break it."""
    size = m.gate_up_proj.element_size()
    return all(w * size % 16 == 0 for w in (m.gate_up_proj.shape[2], m.down_proj.shape[2]))


class FusedExperts(nn.Module):
    """Mixin of lifted experts modules: a leaf whose forward on meta returns the shape, and
    that runs transformers' eager loop where pruned widths break `grouped_mm`."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):  # type: ignore[override]
        if hidden_states.is_meta:  # routing needs values; the graph only needs the shape
            return torch.empty_like(hidden_states)
        impl = getattr(getattr(self, "config", None), "_experts_implementation", None)
        eager = getattr(super().forward, "__wrapped__", None)  # the class's own loop
        if impl not in (None, "eager") and eager is not None and not grouped_mm_aligned(self):
            return eager(self, hidden_states, *args, **kwargs)
        return super().forward(hidden_states, *args, **kwargs)


_LIFTED: dict[type, type] = {}


def _lifted_class(base: type) -> type:
    if base not in _LIFTED:
        cls = type(f"Lifted{base.__name__}", (FusedExperts, base), {})
        cls.__module__ = __name__
        _LIFTED[base] = cls
    return _LIFTED[base]


def lift_experts(model: nn.Module) -> list[str]:
    """Swap every fused experts module for its lifted form; idempotent; returns the names."""
    lifted = []
    for name, m in model.named_modules():
        if is_fused_experts(m) and not isinstance(m, FusedExperts):
            m.__class__ = _lifted_class(type(m))
            lifted.append(name)
    return lifted


def __getattr__(name: str) -> type:
    """Unpickling in a fresh process: rebuild `LiftedMixtralExperts` from transformers."""
    if name.startswith("Lifted") and name.endswith("Experts"):
        base = name[len("Lifted"):]
        family = base[: -len("Experts")].lower()
        mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        return _lifted_class(getattr(mod, base))
    raise AttributeError(name)


def _set(m: nn.Module, attr: str, value: int) -> None:
    if isinstance(getattr(m, attr, None), int):
        setattr(m, attr, value)


class FusedExpertsPruner(BasePruningFunc):
    """The residual width H of fused experts: in = gate_up_proj[..., H], out = down_proj[:, H]."""

    TARGET_MODULES = (FusedExperts,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        size = int(layer.down_proj.shape[1])
        keep = keep_indices(size, normalize_idxs(idxs, size), "expert outputs")
        prune_tensor_(layer.down_proj, 1, keep)
        bias = getattr(layer, "down_proj_bias", None)
        if isinstance(bias, torch.Tensor) and bias.dim() == 2:
            prune_tensor_(bias, 1, keep)
        _set(layer, "hidden_dim", len(keep))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        size = int(layer.gate_up_proj.shape[2])
        keep = keep_indices(size, normalize_idxs(idxs, size), "expert inputs")
        prune_tensor_(layer.gate_up_proj, 2, keep)
        _set(layer, "hidden_dim", len(keep))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.down_proj.shape[1])

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.gate_up_proj.shape[2])


def _expert_scores(m: nn.Module) -> torch.Tensor:
    """(E, I) importance of each expert's intermediate channels (squared L2, all weights)."""
    i = int(m.down_proj.shape[2])
    gu = m.gate_up_proj.detach().float()
    score = gu[:, :i].pow(2).sum(-1) + gu[:, i:].pow(2).sum(-1)
    score += m.down_proj.detach().float().pow(2).sum(1)
    bias = getattr(m, "gate_up_proj_bias", None)
    if isinstance(bias, torch.Tensor) and bias.dim() == 2:
        score += bias[:, :i].detach().float().pow(2) + bias[:, i:].detach().float().pow(2)
    return score


def _gather(t: torch.Tensor, dim: int, keep: torch.Tensor) -> None:
    """Keep per-expert indices `keep` (E, k) along `dim` of a (E, ...) tensor, in place."""
    shape = list(t.shape)
    index = keep
    for d in range(1, t.dim()):
        if d != dim:
            index = index.unsqueeze(d)
    shape[dim] = keep.shape[1]
    data = torch.gather(t.data, dim, index.expand(shape))
    if t.requires_grad:  # a leaf whose shape changes: drop a stale grad
        t.grad = None
    t.data = data


def _narrow(m: nn.Module, keep: torch.Tensor) -> None:
    """Keep channels `keep` (E, k), sorted per expert, of every expert of `m`."""
    width = int(m.down_proj.shape[2])
    with torch.no_grad():
        gu_keep = torch.cat([keep, keep + width], dim=1)  # gate rows, then up rows
        _gather(m.gate_up_proj, 1, gu_keep)
        _gather(m.down_proj, 2, keep)
        bias = getattr(m, "gate_up_proj_bias", None)
        if isinstance(bias, torch.Tensor) and bias.dim() == 2:
            _gather(bias, 1, gu_keep)
    target = int(keep.shape[1])
    _set(m, "intermediate_dim", target)
    _set(m, "intermediate_size", target)


def prune_expert_widths(model: nn.Module, ratio: float, ignored: set[int] | None = None
                        ) -> dict[str, tuple[int, int, list[int]]]:
    """Narrow every fused experts module to round(I_orig * (1 - ratio)) channels per expert.

    `ratio` is cumulative against the width first seen (kept on the module), so repeated
    steps of one schedule land where the schedule says. Returns name -> (old width, new
    width, removed channels of every expert, expert by expert: a history entry).
    """
    done: dict[str, tuple[int, int, list[int]]] = {}
    if ratio <= 0:
        return done
    for name, m in model.named_modules():
        if not is_fused_experts(m) or id(m) in (ignored or set()):
            continue
        width = int(m.down_proj.shape[2])
        orig = getattr(m, "_arborist_orig_intermediate", None) or width
        m._arborist_orig_intermediate = orig
        target = max(1, round(orig * (1.0 - ratio)))
        if target >= width:
            continue
        if m.gate_up_proj.is_meta:  # a preview's weightless copy: only the width counts
            keep = torch.arange(target, device="meta").expand(m.down_proj.shape[0], target)
            _narrow(m, keep)
            done[name] = (width, target, [])
            continue
        keep = _expert_scores(m).topk(target, dim=1).indices.sort(dim=1).values
        gone = torch.ones(keep.shape[0], width, dtype=torch.bool)
        gone.scatter_(1, keep.cpu(), False)
        removed = [int(c) for row in gone for c in row.nonzero().flatten()]
        _narrow(m, keep)
        done[name] = (width, target, removed)
    return done


def replay_experts(model: nn.Module, entry: str, removed: list[int]) -> None:
    """Apply a recorded `prune_expert_widths` entry (EXPERTS_PREFIX + name) to `model`."""
    name = entry[len(EXPERTS_PREFIX):]
    m = dict(model.named_modules()).get(name)
    if m is None or not is_fused_experts(m):
        raise ValueError(f"pruning history names experts '{name}', which this model lacks")
    e, width = int(m.down_proj.shape[0]), int(m.down_proj.shape[2])
    if len(removed) % e:
        raise ValueError(f"history entry '{entry}': {len(removed)} channels for {e} experts")
    mask = torch.ones(e, width, dtype=torch.bool)
    rows = torch.tensor(removed, dtype=torch.long).view(e, -1)
    mask.scatter_(1, rows, False)
    keep = torch.stack([r.nonzero().flatten() for r in mask]).to(m.down_proj.device)
    m._arborist_orig_intermediate = getattr(m, "_arborist_orig_intermediate", None) or width
    _narrow(m, keep)


def refresh_moe(named: list[tuple[str, nn.Module]], report) -> None:
    """`hidden_dim` of routers (weight E x H, `reshape(-1, self.hidden_dim)`) and experts,
    from their pruned weights."""
    for name, m in named:
        if not isinstance(getattr(m, "hidden_dim", None), int):
            continue
        if is_fused_experts(m):
            report.note(name, m, "hidden_dim", int(m.gate_up_proj.shape[2]))
            if not m.gate_up_proj.is_meta and not grouped_mm_aligned(m):
                report.problems.append(
                    f"{name}: widths {m.gate_up_proj.shape[2]}/{m.down_proj.shape[2]} are not "
                    "multiples of 4; the pruned model runs the eager experts loop, a reloaded "
                    "one needs model.set_experts_implementation('eager') (or round_to=4)")
            continue
        w = getattr(m, "weight", None)
        n = getattr(m, "num_experts", None)
        if isinstance(w, torch.Tensor) and w.dim() == 2 and isinstance(n, int) and \
                w.shape[0] == n:
            report.note(name, m, "hidden_dim", int(w.shape[1]))
