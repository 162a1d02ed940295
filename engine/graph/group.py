"""Nodes, dependencies and groups: the objects Torch-Pruning users handle."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch.nn as nn

from ..function import handler_name
from .channel_sets import ChannelSets

if TYPE_CHECKING:
    from .dependency import DependencyGraph


class Node:
    """A layer, an unwrapped parameter, or a functional op in the traced graph."""

    def __init__(self, name: str, op: str, module: Any = None, module_path: str = "") -> None:
        self.name = name
        self.op = op  # layer class name, "parameter", or the ATen op name
        self.module = module  # nn.Module, nn.Parameter, or None for functional ops
        self.module_path = module_path
        self.inputs: list[Node] = []
        self.outputs: list[Node] = []
        self.dependencies: list[Dependency] = []
        self.pruning_dim: int | None = None
        self.id = -1

    @property
    def type(self) -> str:
        return self.op

    def __repr__(self) -> str:
        return f"<Node: ({self.name}, {self.op})>"


class Dependency:
    """`handler` must be applied to `target` when `trigger` is applied to `source`."""

    def __init__(
        self, trigger: Callable | None, handler: Callable, source: Node, target: Node
    ) -> None:
        self.trigger = trigger
        self.handler = handler
        self.source = source
        self.target = target

    @property
    def layer(self) -> Any:
        return self.target.module

    @property
    def pruning_fn(self) -> Callable:
        return self.handler

    def __call__(self, idxs: Sequence[int]) -> Any:
        if self.target.pruning_dim is not None:
            return self.handler(self.target.module, idxs, dim=self.target.pruning_dim)
        return self.handler(self.target.module, idxs)

    def is_triggered_by(self, pruning_fn: Callable) -> bool:
        return pruning_fn == self.trigger

    def __repr__(self) -> str:
        trig = handler_name(self.trigger) if self.trigger is not None else "None"
        return (
            f"[DEP] {trig} on {self.source.name} => "
            f"{handler_name(self.handler)} on {self.target.name}"
        )


class GroupItem(NamedTuple):
    """Unpacks as `dep, idxs`; `root_idxs[i]` is the root channel behind `idxs[i]`."""

    dep: Dependency
    idxs: list[int]
    root_idxs: list[int] | None = None

    def __iter__(self) -> Iterator[Any]:  # unpack as (dep, idxs), like Torch-Pruning
        return iter((self.dep, self.idxs))


class Group:
    """Coupled layers with the channel indices to remove from each."""

    def __init__(self) -> None:
        self._group: list[GroupItem] = []
        self._DG: DependencyGraph | None = None
        self._classes = None  # numpy array of slot classes, set by the graph
        self.locked = False
        self._port_ids: list[int] = []  # graph ports the group touches, set by the graph
        # item k's (idxs list, idxs array, root_idxs array) as the graph derived them
        self._arrays: dict[int, tuple[list[int], np.ndarray, np.ndarray]] = {}
        self._made_at: int | None = None  # graph prune serial at derivation; None: re-derive

    # ------------------------------------------------------------- pruning
    def prune(self, idxs: Sequence[int] | None = None, record_history: bool = True) -> None:
        """Prune every coupled layer at once; `idxs` (root indices) re-targets the group."""
        if self._DG is None:
            raise RuntimeError("this group is not attached to a DependencyGraph")
        if idxs is not None:
            root = self._group[0].dep
            group = self._DG.get_pruning_group(root.target.module, root.handler, list(idxs))
            group.prune(record_history=record_history)
            return
        self._DG._prune_group(self, record_history=record_history)

    def channel_sets(self) -> list[list[int]]:
        """Root channels that can only be removed together, one list per indivisible unit.

        Most units hold one channel. Grouped convolutions, channel shuffles and
        attention heads make larger ones (the same position in every group or head).
        """
        return self.channel_set_arrays().as_lists()

    def item_arrays(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item k's idxs and root_idxs as integer arrays: kept from the graph's derivation
        (converting thousands of index lists again per criterion call costs more than
        the scoring; int32 there, half the memory of a 70B model's groups), converted to
        int64 when the item was built by hand."""
        item = self._group[k]
        hit = self._arrays.get(k)
        if hit is not None and hit[0] is item.idxs:
            return hit[1], hit[2]
        idxs = np.asarray(item.idxs, dtype=np.int64).reshape(-1)
        roots = item.root_idxs if item.root_idxs is not None else item.idxs
        return idxs, np.asarray(roots, dtype=np.int64).reshape(-1)

    def channel_set_arrays(self) -> ChannelSets:
        """`channel_sets()` stored flat: what ranking uses (no list per unit)."""
        if not self._group or self._group[0].root_idxs is None:
            return ChannelSets.singletons(np.asarray(self._group[0].idxs if self._group else []))
        return self._DG._channel_sets(self)

    # ------------------------------------------------------- container API
    def add_dep(self, dep: Dependency, idxs: Sequence[int], root_idxs: Sequence[int] | None = None):
        self._made_at = None  # edited by hand: the graph re-derives it before pruning
        self._group.append(GroupItem(dep, list(idxs), list(root_idxs) if root_idxs else None))

    def add_and_merge(self, dep: Dependency, idxs: Sequence[int]) -> None:
        self._made_at = None
        for i, item in enumerate(self._group):
            if item.dep.target == dep.target and item.dep.handler == dep.handler:
                merged = sorted(set(item.idxs) | set(idxs))
                self._group[i] = GroupItem(item.dep, merged, item.root_idxs)
                return
        self.add_dep(dep, idxs)

    @property
    def items(self) -> list[GroupItem]:
        return self._group

    @property
    def root(self) -> GroupItem:
        return self._group[0]

    def has_dep(self, dep: Dependency) -> bool:
        return any(item.dep is dep for item in self._group)

    def has_pruning_op(self, dep: Dependency, idxs: Sequence[int]) -> bool:
        for item in self._group:
            if item.dep.target == dep.target and item.dep.handler == dep.handler:
                return set(idxs) <= set(item.idxs)
        return False

    def __len__(self) -> int:
        return len(self._group)

    def __getitem__(self, k: int) -> GroupItem:
        return self._group[k]

    def __iter__(self) -> Iterator[GroupItem]:
        return iter(self._group)

    # ------------------------------------------------------------- display
    def details(self) -> str:
        lines = ["", "-" * 32, " " * 10 + "Pruning Group", "-" * 32]
        for i, item in enumerate(self._group):
            tag = "(Pruning Root)" if i == 0 else ""
            lines.append(f"[{i}] {item.dep}, len(idxs)={len(item.idxs)} {tag}".rstrip())
            lines.append(f"    idxs: {_short(item.idxs)}")
        lines.append("-" * 32)
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = ["", "-" * 32, " " * 10 + "Pruning Group", "-" * 32]
        for i, item in enumerate(self._group):
            tag = " (Pruning Root)" if i == 0 else ""
            lines.append(f"[{i}] {item.dep}, #idxs={len(item.idxs)}{tag}")
        lines.append("-" * 32)
        return "\n".join(lines)

    __repr__ = __str__


def _short(idxs: Sequence[int], n: int = 12) -> str:
    if len(idxs) <= n:
        return str(list(idxs))
    return f"[{', '.join(map(str, idxs[:n]))}, ...] ({len(idxs)} total)"


def module_type_name(module: Any) -> str:
    if isinstance(module, nn.Parameter):
        return "Parameter"
    return type(module).__name__
