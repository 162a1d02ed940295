"""Optimizers after pruning: parameters keep their identity, their state does not fit.

Pruning slices every Parameter in place (same object, new shape, `.grad` sliced
alongside), so an optimizer made before a prune still points at the right
tensors, but its per-parameter state (momentum, Adam's moments) keeps the old
shapes and the next `optimizer.step()` fails on them. Build optimizers after
pruning (the recovery loop does), or pass an existing one through
`rebuild_optimizer` / `drop_stale_state`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["drop_stale_state", "rebuild_optimizer"]


def _fits(param: torch.Tensor, state: dict) -> bool:
    """Whether every tensor in `state` that has the parameter's rank matches its shape."""
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
            return False
    return True


def drop_stale_state(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Forget the state of parameters whose shape changed; returns those parameters.

    In place, so learning-rate schedulers bound to `optimizer` keep working. The dropped
    parameters restart their moments from zero, as freshly added ones would.
    """
    stale = [p for p, s in optimizer.state.items() if isinstance(p, torch.Tensor)
             and not _fits(p, s)]
    for p in stale:
        del optimizer.state[p]
    return stale


def rebuild_optimizer(
    optimizer: torch.optim.Optimizer, model: nn.Module | None = None
) -> torch.optim.Optimizer:
    """A new optimizer of the same class and hyper-parameters for the pruned parameters.

    Every parameter group keeps its options; state is carried over for parameters whose
    shapes did not change and dropped for the pruned ones. With `model`, parameters no
    longer in the model leave their group, and trainable model parameters the optimizer
    does not know (a custom pruner that assigned a new `nn.Parameter`) join the first
    group. Schedulers must be re-created for the returned optimizer (or use
    `drop_stale_state` on the old one instead).
    """
    present: set[int] | None = None
    extra: list[nn.Parameter] = []
    if model is not None:
        params = list(model.parameters())
        present = {id(p) for p in params}
        known = {id(p) for g in optimizer.param_groups for p in g["params"]}
        extra = [p for p in params if p.requires_grad and id(p) not in known]
    groups = []
    for k, group in enumerate(optimizer.param_groups):
        kept = [p for p in group["params"] if present is None or id(p) in present]
        if k == 0:
            kept += extra
        if kept:
            groups.append({**{key: v for key, v in group.items() if key != "params"},
                           "params": kept})
    if not groups:
        raise ValueError("the optimizer has no parameters left in the model")
    new = type(optimizer)(groups, **optimizer.defaults)
    for p in _params(new.param_groups):
        old = optimizer.state.get(p)
        if old and _fits(p, old):
            new.state[p] = dict(old)
    return new


def _params(groups: Iterable[dict]) -> Iterable[torch.Tensor]:
    for g in groups:
        yield from g["params"]
