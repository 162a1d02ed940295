"""Rotary position embeddings: whole heads may go, head dimensions may not.

RoPE rotates dimension i of every head together with dimension i + head_dim/2,
using cos/sin tables built once from `head_dim` and shared by all layers.
Removing head dims would have to remove the same rotation pairs from every
layer and rebuild those tables, so Arborist refuses it with a clear message
(the dependency graph already keeps head_dim fixed there); removing whole heads
leaves every rotation intact and is always valid.
"""

from __future__ import annotations

from torch import nn

from .attention import find_attention

__all__ = ["RopeHeadDimError", "rope_attention", "check_head_dim_pruning"]


class RopeHeadDimError(ValueError):
    """Head-dim pruning was asked for on attention that uses rotary embeddings."""


def rope_attention(model: nn.Module) -> list[str]:
    """Paths of the attention blocks that apply rotary embeddings to q and k."""
    return [info.name for info in find_attention(model) if info.rope]


def check_head_dim_pruning(
    model: nn.Module,
    prune_head_dims: bool = True,
    num_heads: dict[nn.Module, int] | None = None,
) -> None:
    """Raise RopeHeadDimError if head dims of rotary attention were asked to be pruned.

    With `num_heads` given, only the declared attention blocks are checked.
    """
    if not prune_head_dims:
        return
    declared = {id(m) for m in (num_heads or {})}
    names = [
        info.name
        for info in find_attention(model)
        if info.rope and (not declared or any(id(p) in declared for p in info.projections))
    ]
    if not names:
        return
    shown = ", ".join(f"'{n}'" for n in names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else ""
    )
    raise RopeHeadDimError(
        f"head dimensions of {shown} cannot be pruned: rotary position embeddings (RoPE) "
        "rotate dimension i with i + head_dim/2 using cos/sin tables shared by every layer. "
        "Prune whole heads instead (prune_num_heads=True, prune_head_dims=False)."
    )
