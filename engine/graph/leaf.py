"""Layers traced as one opaque op: custom layers with their own pruner, RNNs, MHA.

nn.MultiheadAttention and nn.RNNBase have pruners (engine/function/mha.py, rnn.py); a
pruner may set `channels_last` (features are the last dim), `groups_are_heads` and
`state_outputs` (extra outputs such as h_n carry one block of the output channels).

Inside such a layer the ATen ops are not channel-aware, so the tracer skips
them and this rule connects the layer's input and output channels directly,
the way Torch-Pruning treats registered custom layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from ..function import BasePruningFunc, PrunerRegistry
from .annotation import EMPTY, Axis, axis_at
from .rules import _tensors

if TYPE_CHECKING:
    from .tracer import ChannelTracer


def _channel_dim(x: torch.Tensor, channels: int | None, last: bool = False) -> int | None:
    if channels is None or x.dim() == 0:
        return None
    if last:  # sequence layers (RNN, attention): features are always the last dim
        return x.dim() - 1 if x.shape[-1] == channels else None
    if x.dim() > 2 and x.shape[1] == channels:
        return 1
    if x.shape[-1] == channels:
        return x.dim() - 1
    if x.dim() > 1 and x.shape[1] == channels:
        return 1
    return None


def in_out_coupled(pruner: BasePruningFunc) -> bool:
    """Layers whose input and output are the same channels (norms, elementwise layers)."""
    cls = type(pruner)
    return getattr(pruner, "in_out_coupled", False) or (
        getattr(cls, "prune_in_channels", None) is getattr(cls, "prune_out_channels", None)
    )


def leaf_rule(
    registry: PrunerRegistry, t: ChannelTracer, module: nn.Module, inputs: tuple, output: Any
) -> None:
    ins = [x for x in _tensors(inputs) if x.is_floating_point()]
    outs = _tensors(output)
    pruner = registry.lookup(module)
    if pruner is None or not ins or not outs:
        for x in _tensors(inputs):
            t.lock_ann(t.ann(x), f"{type(module).__name__} has no pruner")
        for o in outs:
            t.set_ann(o, EMPTY)
        return
    x, y = ins[0], outs[0]
    last = getattr(pruner, "channels_last", False)
    cin = _channel_dim(x, pruner.get_in_channels(module), last)
    cout = _channel_dim(y, pruner.get_out_channels(module), last)
    in_ax = axis_at(t.ann(x), cin) if cin is not None else None
    in_slots = in_ax.slots if in_ax is not None and in_ax.dims == (cin,) else None
    for other in ins[1:]:  # e.g. key/value of attention: same channels as the query
        if getattr(pruner, "state_outputs", False):
            t.lock_ann(t.ann(other), f"{type(module).__name__}: initial state")
            continue
        odim = _channel_dim(other, pruner.get_in_channels(module), last)
        oax = axis_at(t.ann(other), odim if odim is not None else -1)
        if oax is not None and in_slots is not None and oax.slots.shape == in_slots.shape:
            t.slots.unite(oax.slots, in_slots)
        else:
            t.lock_ann(t.ann(other), f"{type(module).__name__}: extra input")
    for ax in t.ann(x):
        if ax is not in_ax or in_slots is None:
            t.slots.lock(ax.slots, f"{type(module).__name__}: input layout")
    coupled = in_out_coupled(pruner)
    if coupled:
        slots = (
            in_slots
            if in_slots is not None
            else t.slots.new((x.shape[cin],) if cin is not None else (0,))
        )
        if in_slots is None:
            t.slots.lock(slots, f"{type(module).__name__}: fixed input channels")
        out_slots = slots
    else:
        n = y.shape[cout] if cout is not None else 0
        out_slots = t.slots.new((n,))
        if in_slots is not None:
            t.add_port(module, "in", in_slots)
    if cout is None or out_slots.size != y.shape[cout]:
        t.slots.lock(np.asarray(out_slots), f"{type(module).__name__}: output layout")
        t.set_ann(y, EMPTY)
        out_slots = None
    else:
        _unite_blocks(t, pruner, module, out_slots)
        t.add_port(module, "out", out_slots)
        t.set_ann(y, (Axis.single(cout, out_slots),))
    block = _first_block(pruner, module, out_slots)
    for o in outs[1:]:
        if block is not None and o.dim() and o.shape[-1] == block.size:
            t.set_ann(o, (Axis.single(o.dim() - 1, block),))  # h_n / c_n of an RNN
        else:
            t.set_ann(o, EMPTY)


def _unite_blocks(t: ChannelTracer, pruner: BasePruningFunc, module: nn.Module, slots) -> None:
    """Equal blocks of the channel axis lose the same positions: attention heads
    (structural, so whole heads can still be told apart) or RNN directions."""
    g = pruner.get_out_channel_groups(module)
    if g > 1 and slots.size % g == 0:
        grid = np.asarray(slots).reshape(g, -1)
        t.slots.unite(grid, grid[0:1], structural=getattr(pruner, "groups_are_heads", False))


def _first_block(pruner: BasePruningFunc, module: nn.Module, slots) -> np.ndarray | None:
    """Slots of one direction's hidden units, for the RNN state outputs (h_n, c_n)."""
    if slots is None or not getattr(pruner, "state_outputs", False):
        return None
    g = max(1, pruner.get_out_channel_groups(module))
    return np.asarray(slots).reshape(g, -1)[0] if slots.size % g == 0 else None
