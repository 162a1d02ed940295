"""Mixture-of-experts MLPs whose experts live in fused 3-D tensors (transformers 5.x).

Fused `experts` modules hold `gate_up_proj` and `down_proj` as raw parameters and route
tokens with data-dependent indexing (or `torch._grouped_mm`), which neither a meta trace
nor a channel rule can follow. Two layouts exist (`ExpertsLayout`):

- Mixtral, Qwen-MoE, OLMoE: `gate_up_proj` (E, 2I, H) with the gate rows then the up
  rows, `down_proj` (E, H, I), no biases;
- GPT-OSS (`is_transposed`, not `is_concatenated`): `gate_up_proj` (E, H, 2I) with gate
  and up channels interleaved (gate c at 2c, up c at 2c + 1), `down_proj` (E, I, H),
  and biases `gate_up_proj_bias` (E, 2I) and `down_proj_bias` (E, H).

So:
- the module is lifted (its class swapped for a subclass, state dict unchanged) into a
  leaf of the dependency graph with `FusedExpertsPruner`: the residual width H enters
  through `gate_up_proj`'s H dim and leaves through `down_proj`'s H dim (and its bias);
  on meta tensors its forward only returns the output's shape;
- each expert's intermediate width I is internal to the leaf: `prune_expert_widths`
  removes the same number of channels from every expert (the tensors stay 3-D), each
  expert choosing its own least important channels (L2 norm of its gate row, up row,
  down column and biases). The router and the expert count are never touched.
Recognised by attribute names and shapes; transformers is not imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Sequence

import torch
from torch import nn

from ..function.base import BasePruningFunc, keep_indices, normalize_idxs, prune_tensor_

EXPERTS_PREFIX = "experts:"  # pruning-history entries: per-expert removed channels

__all__ = ["EXPERTS_PREFIX", "ExpertsLayout", "FusedExperts", "FusedExpertsPruner", "expert_width",
           "experts_layout", "is_fused_experts",
           "lift_experts", "prune_expert_widths", "replay_experts"]


@dataclasses.dataclass(frozen=True)
class ExpertsLayout:
    """Where H and I sit in a fused experts module's tensors, and how gate/up pair up."""

    transposed: bool  # gate_up (E, H, 2I), down (E, I, H): GPT-OSS; else (E, 2I, H), (E, H, I)
    interleaved: bool  # gate of channel c at 2c, up at 2c + 1 (GPT-OSS); else c and I + c

    @property
    def gate_up_hidden(self) -> int:  # dim of gate_up_proj that holds H
        return 1 if self.transposed else 2

    @property
    def gate_up_inter(self) -> int:  # dim of gate_up_proj that holds 2I
        return 2 if self.transposed else 1

    @property
    def down_hidden(self) -> int:
        return 2 if self.transposed else 1

    @property
    def down_inter(self) -> int:
        return 1 if self.transposed else 2

    def gate_up_rows(self, keep: torch.Tensor, width: int) -> torch.Tensor:
        """(E, 2k) positions along gate_up's 2I dim of the kept channels `keep` (E, k),
        in the order the forward splits them (gate then up, or interleaved)."""
        if self.interleaved:
            return torch.stack([2 * keep, 2 * keep + 1], dim=2).flatten(1)
        return torch.cat([keep, keep + width], dim=1)

    def gate_and_up(self, t: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate and up slices of a tensor's last dim (2I)."""
        if self.interleaved:
            return t[..., 0::2], t[..., 1::2]
        return t[..., :width], t[..., width:]


def experts_layout(m: nn.Module) -> ExpertsLayout | None:
    """The layout of a fused experts module, or None if `m` is not one. transformers'
    `use_experts_implementation` stamps `is_transposed` / `is_concatenated`; without the
    stamps the shapes decide (the untransposed form first)."""
    gu, down = getattr(m, "gate_up_proj", None), getattr(m, "down_proj", None)
    if not (isinstance(gu, torch.Tensor) and isinstance(down, torch.Tensor)
            and gu.dim() == 3 and down.dim() == 3 and gu.shape[0] == down.shape[0]):
        return None
    plain = gu.shape[1] == 2 * down.shape[2] and gu.shape[2] == down.shape[1]
    flipped = gu.shape[2] == 2 * down.shape[1] and gu.shape[1] == down.shape[2]
    stamp = getattr(m, "is_transposed", None)
    if isinstance(stamp, bool):
        # only the 2I / I dims must agree: a residual-width prune narrows gate_up's H
        # before down_proj's, and the layout is read between the two
        transposed = stamp
        fits = gu.shape[2] == 2 * down.shape[1] if stamp else gu.shape[1] == 2 * down.shape[2]
    else:
        transposed, fits = not plain and flipped, plain or flipped
    if not fits:
        return None
    return ExpertsLayout(transposed, getattr(m, "is_concatenated", True) is False)


def is_fused_experts(m: nn.Module) -> bool:
    return experts_layout(m) is not None


def expert_width(m: nn.Module) -> int | None:
    """Intermediate width of every expert of a fused experts module."""
    lay = experts_layout(m)
    return int(m.down_proj.shape[lay.down_inter]) if lay is not None else None


def expert_hidden(m: nn.Module) -> int | None:
    """Residual width H a fused experts module reads and writes."""
    lay = experts_layout(m)
    return int(m.down_proj.shape[lay.down_hidden]) if lay is not None else None


def grouped_mm_aligned(m: nn.Module) -> bool:
    """transformers' default CPU/GPU experts kernel (`torch._grouped_mm`) needs every row
    stride to be a multiple of 16 bytes: widths pruned to e.g. 45 floats break it."""
    size = m.gate_up_proj.element_size()
    widths = (expert_hidden(m) or 0, expert_width(m) or 0)
    return all(w * size % 16 == 0 for w in widths)


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
    """Unpickling in a fresh process: rebuild `LiftedMixtralExperts` (or
    `LiftedGptOssExperts`, from transformers.models.gpt_oss) from transformers."""
    if name.startswith("Lifted") and name.endswith("Experts"):
        base = name[len("Lifted"):]
        stem = base[: -len("Experts")]
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()  # GptOss -> gpt_oss
        for family in dict.fromkeys((snake, stem.lower())):
            try:
                mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
            except ImportError:
                continue
            if hasattr(mod, base):
                return _lifted_class(getattr(mod, base))
    raise AttributeError(name)


def _set(m: nn.Module, attr: str, value: int) -> None:
    if isinstance(getattr(m, attr, None), int):
        setattr(m, attr, value)


class FusedExpertsPruner(BasePruningFunc):
    """The residual width H of fused experts: in = gate_up_proj's H dim, out = down_proj's
    H dim and `down_proj_bias` (GPT-OSS)."""

    TARGET_MODULES = (FusedExperts,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        lay = _layout(layer)
        size = int(layer.down_proj.shape[lay.down_hidden])
        keep = keep_indices(size, normalize_idxs(idxs, size), "expert outputs")
        prune_tensor_(layer.down_proj, lay.down_hidden, keep)
        bias = getattr(layer, "down_proj_bias", None)
        if isinstance(bias, torch.Tensor) and bias.dim() == 2:
            prune_tensor_(bias, 1, keep)
        _set_hidden(layer, len(keep))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        lay = _layout(layer)
        size = int(layer.gate_up_proj.shape[lay.gate_up_hidden])
        keep = keep_indices(size, normalize_idxs(idxs, size), "expert inputs")
        prune_tensor_(layer.gate_up_proj, lay.gate_up_hidden, keep)
        _set_hidden(layer, len(keep))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.down_proj.shape[_layout(layer).down_hidden])

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.gate_up_proj.shape[_layout(layer).gate_up_hidden])


def _layout(m: nn.Module) -> ExpertsLayout:
    lay = experts_layout(m)
    if lay is None:
        raise ValueError(f"{type(m).__name__}: gate_up_proj {tuple(m.gate_up_proj.shape)} and "
                         f"down_proj {tuple(m.down_proj.shape)} no longer fit one another")
    return lay


def _set_hidden(m: nn.Module, value: int) -> None:
    for attr in ("hidden_dim", "hidden_size"):  # Mixtral / GPT-OSS; neither read by forward
        _set(m, attr, value)


def _expert_scores(m: nn.Module) -> torch.Tensor:
    """(E, I) importance of each expert's intermediate channels (squared L2, all weights)."""
    lay = _layout(m)
    i = int(m.down_proj.shape[lay.down_inter])
    gu = m.gate_up_proj.detach().float()
    if lay.transposed:  # (E, H, 2I): sum over H, the 2I dim last
        rows = gu.pow(2).sum(1)
        down = m.down_proj.detach().float().pow(2).sum(2)
    else:
        rows = gu.pow(2).sum(2)
        down = m.down_proj.detach().float().pow(2).sum(1)
    bias = getattr(m, "gate_up_proj_bias", None)
    if isinstance(bias, torch.Tensor) and bias.dim() == 2:
        rows = rows + bias.detach().float().pow(2)
    gate, up = lay.gate_and_up(rows, i)
    return gate + up + down


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
    lay = _layout(m)
    width = int(m.down_proj.shape[lay.down_inter])
    with torch.no_grad():
        gu_keep = lay.gate_up_rows(keep, width)
        _gather(m.gate_up_proj, lay.gate_up_inter, gu_keep)
        _gather(m.down_proj, lay.down_inter, keep)
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
        width = int(expert_width(m) or 0)
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
    e, width = int(m.down_proj.shape[0]), int(expert_width(m) or 0)
    if len(removed) % e:
        raise ValueError(f"history entry '{entry}': {len(removed)} channels for {e} experts")
    mask = torch.ones(e, width, dtype=torch.bool)
    rows = torch.tensor(removed, dtype=torch.long).view(e, -1)
    mask.scatter_(1, rows, False)
    keep = torch.stack([r.nonzero().flatten() for r in mask]).to(m.down_proj.device)
    m._arborist_orig_intermediate = getattr(m, "_arborist_orig_intermediate", None) or width
    _narrow(m, keep)


def refresh_moe(named: list[tuple[str, nn.Module]], report) -> None:
    """`hidden_dim` of routers (weight E x H, `reshape(-1, self.hidden_dim)`), and
    `hidden_dim` / `hidden_size` / `intermediate_size` of experts, from their pruned
    weights; odd widths that `grouped_mm` refuses are reported."""
    for name, m in named:
        if is_fused_experts(m):
            for attr in ("hidden_dim", "hidden_size"):
                if isinstance(getattr(m, attr, None), int):
                    report.note(name, m, attr, expert_hidden(m))
            for attr in ("intermediate_dim", "intermediate_size"):
                if isinstance(getattr(m, attr, None), int):
                    report.note(name, m, attr, expert_width(m))
            if not m.gate_up_proj.is_meta and not grouped_mm_aligned(m):
                report.problems.append(
                    f"{name}: widths {expert_hidden(m)}/{expert_width(m)} are not "
                    "multiples of 4; the pruned model runs the eager experts loop, a reloaded "
                    "one needs model.set_experts_implementation('eager') (or round_to=4)")
            continue
        if not isinstance(getattr(m, "hidden_dim", None), int):
            continue
        w = getattr(m, "weight", None)
        n = getattr(m, "num_experts", None)
        if isinstance(w, torch.Tensor) and w.dim() == 2 and isinstance(n, int) and \
                w.shape[0] == n:
            report.note(name, m, "hidden_dim", int(w.shape[1]))
