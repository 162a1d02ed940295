"""Find groups whose pruning the model's own code cannot absorb.

Some constraints live in Python, not in tensors: `x.reshape(B, N, 3, heads, C // heads)`
ties the width of a qkv projection to the width of `x`. No shape rule can see
where `C // heads` came from, so after tracing we try: prune one indivisible
unit of every group on a weightless (meta) copy, run it, and bisect failures
down to the groups responsible. Those are locked. Cheap for CNNs (one forward
that passes), and it also validates our own pruning functions.
"""

from __future__ import annotations

import copy
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..function.attributes import refresh_attributes
from ..utils.meta_kernels import FastMeta, MetaKernels, meta_like
from .channel_index import ChannelIndex, PortState
from .forward import output_shapes, to_meta
from .group import Group


def meta_copy(model: nn.Module, memo: dict[int, Any] | None = None) -> nn.Module:
    """A structural copy of `model` whose parameters and buffers hold no data.

    What `copy.deepcopy` would give (mutable attributes such as an HF config are copied,
    so pruning and refreshing the copy never reaches the original), built module by
    module without deepcopy's generic per-object protocol: ~4x faster on a ResNet-50.
    `memo`, if given, is filled like deepcopy's: id(original) -> its copy, for every
    module, parameter and buffer.
    """
    memo = {} if memo is None else memo
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(meta_like(p), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = meta_like(b)
    return _clone_module(model, memo)


_ATOMIC = (
    int, float, bool, str, bytes, complex, type(None), type, torch.dtype, torch.device,
    torch.memory_format, torch.layout, types.FunctionType, types.BuiltinFunctionType,
)  # fmt: skip
_COPY_PROTOCOL = ("__deepcopy__", "__reduce_ex__", "__reduce__")


def _custom_copy(cls: type) -> bool:
    """Whether a module class copies itself its own way (then deepcopy it as it asks)."""
    for base in cls.__mro__:
        if base in (nn.Module, object):
            continue
        if any(name in base.__dict__ for name in _COPY_PROTOCOL):
            return True
    return False


def _clone_module(m: nn.Module, memo: dict[int, Any]) -> nn.Module:
    """deepcopy's steps for one module (`__getstate__`, copy the state, `__setstate__`),
    with its children, parameters and buffers handled directly."""
    done = memo.get(id(m))
    if done is not None:
        return done
    state = m.__getstate__() if not _custom_copy(type(m)) else None
    if not isinstance(state, dict):
        return copy.deepcopy(m, memo)
    new = type(m).__new__(type(m))
    memo[id(m)] = new
    copied: dict[str, Any] = {}
    for key, value in state.items():
        if key == "_modules":
            copied[key] = type(value)(
                (n, None if c is None else _clone_module(c, memo)) for n, c in value.items()
            )
        elif key in ("_parameters", "_buffers"):
            copied[key] = type(value)(
                (n, None if t is None else memo[id(t)]) for n, t in value.items()
            )
        elif type(value) in _ATOMIC or (
            type(value) is tuple and all(type(v) in _ATOMIC for v in value)
        ):
            copied[key] = value
        elif type(value) in (dict, OrderedDict, list, set) and not value:
            copied[key] = type(value)()
        elif is_cached_tensor(value):  # a cache a forward left (ultralytics anchors)
            copied[key] = meta_like(value)
        else:
            copied[key] = copy.deepcopy(value, memo)
    new.__setstate__(copied)
    return new


def is_cached_tensor(value: Any) -> bool:
    """A plain (not Parameter/buffer) tensor attribute big enough to be a cache of a past
    forward (anchor grids); small ones (strides, scales) are constants read as numbers."""
    return (type(value) is torch.Tensor and value.device.type != "meta"
            and value.numel() > 32)


class Prober:
    """Runs weightless copies of `model` with channels removed; counts its runs."""

    def __init__(
        self,
        index: ChannelIndex,
        model: nn.Module,
        example_inputs: Any,
        run: Callable[[nn.Module, Any], Any],
        expected: list[tuple[int, ...]],
        kernels: MetaKernels | None = None,
    ) -> None:
        self.index = index
        self.model = model
        self.inputs = to_meta(example_inputs)
        self.run = run
        self.expected = expected
        self.kernels = kernels if kernels is not None else MetaKernels()
        self.runs = 0

    def passes(self, groups: Sequence[Group]) -> bool:
        """Whether the model still runs with one unit of each of `groups` removed."""
        # indices are relative to the unpruned model: merge per layer, prune each layer once
        merged: dict[tuple[int, Any], tuple[Any, set[int]]] = {}
        for g in groups:
            for item in g:
                key = (id(item.dep.target.module), item.dep.handler)
                merged.setdefault(key, (item.dep, set()))[1].update(item.idxs)
        return self._runs_pruned(
            (dep.target, dep.handler, sorted(idxs)) for dep, idxs in merged.values()
        )

    def passes_ports(self, ports: dict[int, np.ndarray]) -> bool:
        """`passes` for removals given per graph port (current indices, one entry per port):
        what trying all units at once needs, without building a Group per unit."""
        states = self.index.ports
        return self._runs_pruned(
            (states[k].node, states[k].handler, idxs.tolist()) for k, idxs in ports.items()
        )

    def _runs_pruned(self, edits: Iterable[tuple[Any, Callable, list[int]]]) -> bool:
        """Apply (node, handler, indices) edits to a weightless copy and run it."""
        self.runs += 1
        copies: dict[int, Any] = {}
        clone = meta_copy(self.model, copies)
        try:
            for node, handler, idxs in edits:
                copied = copies[id(node.module)]  # the layer's (or parameter's) copy
                if node.pruning_dim is not None:
                    handler(copied, idxs, dim=node.pruning_dim)
                else:
                    handler(copied, idxs)
            refresh_attributes(clone)
            with torch.no_grad(), FastMeta(self.kernels):
                out = self.run(clone, self.inputs)
            return output_shapes(out) == self.expected
        except Exception:
            return False

    def bad_groups(self, groups: list[Group], all_fail: bool = False) -> list[int]:
        """Indices of groups that break the model, by recursive halving.

        Repeated blocks (80 identical transformer layers) give many identical groups; halving
        finds each broken one separately (runs ~ broken * log(groups)). So one group of every
        identical kind is tried alone first: if it breaks, all of its kind are locked (the
        conservative direction: at worst a channel stays unpruned); the rest are then searched.
        All groups are tried together first, so a model that absorbs everything costs one run
        (`all_fail`: the caller already saw that run fail).
        """
        bad: list[int] = []
        if not groups or (not all_fail and self.passes(groups)):  # usual for CNNs: one run
            return bad
        kinds: dict[tuple, list[int]] = {}
        for i, g in enumerate(groups):
            kinds.setdefault(group_signature(g), []).append(i)
        rest: list[int] = []
        for members in kinds.values():
            if len(members) > 1 and not self.passes([groups[members[0]]]):
                bad.extend(members)
            else:
                rest.extend(members)

        def search(idx: list[int]) -> None:
            if not idx or self.passes([groups[i] for i in idx]):
                return
            if len(idx) == 1:
                bad.append(idx[0])
                return
            mid = len(idx) // 2
            search(idx[:mid])
            search(idx[mid:])

        search(sorted(rest))
        return sorted(bad)


def group_signature(group: Group) -> tuple:
    """What two groups of identical repeated blocks share: member types, handlers, shapes."""
    sig = []
    for item in group:
        target = item.dep.target.module
        if isinstance(target, nn.Module):
            shapes = tuple(tuple(p.shape) for p in target.parameters(recurse=False))
        else:
            shapes = (tuple(target.shape),)
        handler = getattr(item.dep.handler, "__name__", type(item.dep.handler).__name__)
        sig.append((type(target).__name__, handler, item.dep.kind, shapes, len(item.idxs)))
    return tuple(sig)


def last_unit_class(root: PortState, classes: np.ndarray) -> int | None:
    """The slot class of the unit whose first root channel comes last (None: no channel
    of `classes` is left on the root)."""
    orig = np.flatnonzero(root.alive & np.isin(root.labels, classes))
    if orig.size == 0:
        return None
    uniq, first = np.unique(root.labels[orig], return_index=True)
    return int(uniq[np.argmax(first)])


def unit_ports(index: ChannelIndex, unit_classes: list[int]) -> dict[int, np.ndarray]:
    """Current indices per port of the one-class units that a group check would pass
    (not kept by the index, not emptying a port), all together."""
    cls = np.unique(np.asarray(unit_classes, dtype=np.int64))
    cls = cls[~index.must_keep()[cls]]
    ports = index.ports
    while True:  # units are counted per class, so one drop round settles it
        by_port = {k: pos[ports[k].alive[pos]]
                   for k, pos in index.positions_by_port(cls).items()}
        too_wide: list[np.ndarray] = []
        for k, pos in by_port.items():
            labels, counts = np.unique(ports[k].labels[pos], return_counts=True)
            too_wide.append(labels[counts >= ports[k].width()])
        drop = np.concatenate(too_wide) if too_wide else np.zeros(0, dtype=np.int64)
        if drop.size == 0:
            return {k: ports[k].current_rank()[pos].astype(np.int64)
                    for k, pos in by_port.items() if pos.size}
        cls = np.setdiff1d(cls, drop)


class UnitSource(Protocol):
    """What `smallest_unit` asks of a graph."""

    def get_pruning_group(self, module: Any, pruning_fn: Callable, idxs: Any) -> Group: ...

    def check_pruning_group(self, group: Group) -> bool: ...


def smallest_unit(dg: UnitSource, group: Group) -> Group | None:
    """The same group restricted to one indivisible unit, or None if that would empty a layer."""
    sets = group.channel_sets()
    if not sets:
        return None
    root = group[0].dep
    unit = dg.get_pruning_group(root.target.module, root.handler, sets[-1])
    return unit if dg.check_pruning_group(unit) else None
