"""What removing one residual block costs in fidelity: the price of the planner's depth moves.

The width curves of the sensitivity scan say how much the outputs change when one group
is pruned alone; a depth move needs the same number for one block removed alone, on the
same batches and with the same measure (`scan.fidelity`: KL to the original's outputs,
top-1 agreement, accuracy with labels), so the greedy planner can compare "drop block
layer3.1" with "prune group layer3.0.conv1 to 0.5" on one scale. A block is skipped by a
forward hook that hands its input on as its output, exactly what `DepthGroup.prune()`
does to the stream, without copying or editing the model.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..depth import find_depth_groups, first_input
from ..io.input_spec import call_with
from .apply import Cancelled
from .preview import Previewer
from .scan import fidelity, logits_of, take_batches
from .schema import PruningPlan

__all__ = ["BlockCost", "block_costs", "block_savings"]


@dataclasses.dataclass(frozen=True)
class BlockCost:
    """Fidelity with the block `name` removed alone (a depth move's loss)."""

    name: str
    kl: float
    agreement: float
    accuracy: float | None = None

    def loss(self, metric: str = "kl") -> float:
        """The loss on the planner's metric, as ScanCurve.loss gives it for a width point."""
        return self.kl if metric == "kl" else 1.0 - self.agreement


def _skipper(owner: int) -> Callable[..., Any]:
    """Forward hook: the block's output becomes its input (the residual stream skips it),
    only on the measuring thread (a GUI preview may run the same model meanwhile)."""
    def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
        if threading.get_ident() != owner:
            return out
        return _skip(args, kwargs, out)
    return hook


def _skip(args: tuple, kwargs: dict, out: Any) -> Any:
    x = first_input(args, kwargs)
    if x is None:
        return out
    if isinstance(out, torch.Tensor):
        return x if x.shape == out.shape else out
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor) \
            and out[0].shape == x.shape:
        return (x, *out[1:])
    return out


def block_costs(
    model: nn.Module,
    batches: Iterable[Any],
    names: Iterable[str] | None = None,
    *,
    max_samples: int = 256,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, BlockCost]:
    """KL / agreement / accuracy of the model with each removable block (or each of
    `names`) skipped alone, against the unchanged model on the same batches.

    ValueError for a name that is not a removable block; `Cancelled` when `cancel()`
    turns true between blocks. The model is left as it was (hooks removed, mode kept)."""
    groups = {g.name: g for g in find_depth_groups(model)}
    wanted = list(groups) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in groups]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a removable block; removable: "
                         f"{', '.join(groups) or 'none in this model'}")
    fixed = take_batches(batches, max_samples)
    labels = [b.labels for b in fixed]
    was_training = model.training
    model.eval()
    out: dict[str, BlockCost] = {}
    try:
        with torch.no_grad():
            reference = [logits_of(call_with(model, b.inputs)).detach() for b in fixed]
            for k, name in enumerate(wanted):
                if cancel is not None and cancel():
                    raise Cancelled()
                handle = groups[name].module.register_forward_hook(
                    _skipper(threading.get_ident()), with_kwargs=True)
                try:
                    outputs = [logits_of(call_with(model, b.inputs)).detach() for b in fixed]
                finally:
                    handle.remove()
                fid = fidelity(reference, outputs, labels)
                out[name] = BlockCost(name, fid.kl, fid.agreement, fid.accuracy)
                if progress is not None:
                    progress(k + 1, len(wanted), f"{name} removed: agreement "
                             f"{fid.agreement:.3f}")
    finally:
        model.train(was_training)
    return out


def block_savings(previewer: Previewer, names: Iterable[str],
                  base: PruningPlan | None = None) -> dict[str, tuple[int | float, int]]:
    """(MACs, params) that removing each block ALONE saves on top of `base` (default: no
    width pruning), from exact previews: the numbers the preview shows once it is removed."""
    base = base if base is not None else PruningPlan(pruning_ratio=0.0)
    before = previewer.preview(base)
    out: dict[str, tuple[int | float, int]] = {}
    for name in names:
        pv = previewer.preview(base.replace(drop_blocks=[*base.drop_blocks, name]))
        out[name] = (before.macs_after - pv.macs_after, before.params_after - pv.params_after)
    return out
