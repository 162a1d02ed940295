"""Nodes, dependencies and groups: the objects Torch-Pruning users handle.

A `Group` is a value: its items and the facts about them (which slot classes it
removes, whether they must keep their size, reach a model output, and how the graph
derived it) are fixed when it is made, in its constructor. The graph never writes
into a group afterwards; pruning a group whose indices went stale prunes a freshly
derived twin instead. Only Torch-Pruning's container API (`add_dep`, `add_and_merge`,
`group[k] = ...`) edits a group, and that makes it a hand-made group with no derivation:
it prunes as the group of its root item's indices (every coupled layer together, so the
model stays valid), not item by item as Torch-Pruning would.

Example (Torch-Pruning's): for Conv2d(2, 4) -> BN(4) -> ReLU, the group of the conv's
out channels 0 and 1 is `[(conv => conv, [0, 1]), (conv => bn, [0, 1])]`; an importance
criterion called on the group of ALL channels returns one score per channel, and the
pruner then prunes the sub-group of the channels it chose.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch.nn as nn

from ..function import handler_kind, handler_name
from .channel_sets import ChannelSets


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
    """`handler` must be applied to `target` when `trigger` is applied to `source`.

    `kind` says which side of `target` the handler prunes: "out" (its out channels, or
    the only channels of a norm / unwrapped parameter) or "in". The graph sets it from
    the port; for hand-made dependencies it is read off the handler.
    """

    def __init__(
        self,
        trigger: Callable | None,
        handler: Callable,
        source: Node,
        target: Node,
        kind: str | None = None,
    ) -> None:
        self.trigger = trigger
        self.handler = handler
        self.source = source
        self.target = target
        self.kind = kind if kind is not None else (handler_kind(handler) or "out")

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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dependency):
            return NotImplemented
        return (self.source is other.source and self.target is other.target
                and self.trigger == other.trigger and self.handler == other.handler)

    def __hash__(self) -> int:
        return hash((id(self.source), id(self.target), self.handler))

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


@dataclasses.dataclass(frozen=True, eq=False)
class Derivation:
    """How the graph derived a group from its channel index; what keeps it checkable.

    `arrays[k]` is item k's (idxs, root_idxs) as int32 arrays (criteria reuse them
    instead of converting thousands of index lists again); `port_ids[k]` is item k's
    port; `made_at` the index serial at derivation: the group is current while none of
    its ports lost channels since.
    """

    classes: np.ndarray
    port_ids: tuple[int, ...]
    made_at: int
    arrays: tuple[tuple[np.ndarray, np.ndarray], ...]


class GroupOwner(Protocol):
    """What a group asks of the graph that made it."""

    def prune_group(self, group: Group, record_history: bool = True) -> None: ...

    def get_pruning_group(self, module: Any, pruning_fn: Callable, idxs: Any) -> Group: ...

    def channel_sets(self, group: Group) -> ChannelSets: ...


class Group:
    """Coupled layers with the channel indices to remove from each (see module doc).

    `fixed`: some channel must keep its size (fixed inputs, ops the tracer does not
    understand, code that depends on the width); pruning it would break the model and is
    refused. `reaches_outputs`: some channel is a model output's; pruners and the GUI
    never offer such groups (`locked` is either), but one asked for explicitly through
    `get_pruning_group` prunes, with a warning that outputs change width.
    """

    def __init__(
        self,
        items: Sequence[GroupItem] = (),
        graph: GroupOwner | None = None,
        *,
        derivation: Derivation | None = None,
        fixed: bool = False,
        reaches_outputs: bool = False,
    ) -> None:
        self._group: list[GroupItem] = list(items)
        self._graph = graph
        self._derivation = derivation
        self.fixed = fixed
        self.reaches_outputs = reaches_outputs

    # ------------------------------------------------------------ properties
    @property
    def locked(self) -> bool:
        """Channels the engine keeps: fixed ones or a model output's."""
        return self.fixed or self.reaches_outputs

    @property
    def graph(self) -> GroupOwner | None:
        return self._graph

    @property
    def _DG(self) -> GroupOwner | None:  # noqa: N802  (Torch-Pruning's attribute name)
        return self._graph

    @property
    def derivation(self) -> Derivation | None:
        """None for hand-made or hand-edited groups (the graph re-derives them to prune)."""
        return self._derivation

    @property
    def classes(self) -> np.ndarray | None:
        """The slot classes this group removes (stable across pruning)."""
        return self._derivation.classes if self._derivation is not None else None

    # ------------------------------------------------------------- pruning
    def prune(self, idxs: Sequence[int] | None = None, record_history: bool = True) -> None:
        """Prune every coupled layer at once; `idxs` (root indices) re-targets the group."""
        if self._graph is None:
            raise RuntimeError("this group is not attached to a DependencyGraph")
        if idxs is not None:
            root = self._group[0].dep
            group = self._graph.get_pruning_group(root.target.module, root.handler, list(idxs))
            group.prune(record_history=record_history)
            return
        self._graph.prune_group(self, record_history=record_history)

    def exec(self) -> None:
        """Torch-Pruning's old name for `prune()`."""
        warnings.warn("Group.exec() is deprecated; use Group.prune()", DeprecationWarning,
                      stacklevel=2)
        self.prune()

    def __call__(self) -> None:
        self.prune()

    def channel_sets(self) -> list[list[int]]:
        """Root channels that can only be removed together, one list per indivisible unit.

        Most units hold one channel. Grouped convolutions, channel shuffles and
        attention heads make larger ones (the same position in every group or head).
        """
        return self.channel_set_arrays().as_lists()

    def item_arrays(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item k's idxs and root_idxs as integer arrays: kept from the graph's derivation
        (int32 there, half the memory of a 70B model's groups), converted to int64 when
        the item was built by hand."""
        item = self._group[k]
        if self._derivation is not None:
            return self._derivation.arrays[k]
        idxs = np.asarray(item.idxs, dtype=np.int64).reshape(-1)
        roots = item.root_idxs if item.root_idxs is not None else item.idxs
        return idxs, np.asarray(roots, dtype=np.int64).reshape(-1)

    def channel_set_arrays(self) -> ChannelSets:
        """`channel_sets()` stored flat: what ranking uses (no list per unit)."""
        if not self._group or self._group[0].root_idxs is None or self._graph is None:
            return ChannelSets.singletons(np.asarray(self._group[0].idxs if self._group else []))
        return self._graph.channel_sets(self)

    # ------------------------------------------------------- container API
    def _edited(self) -> None:
        self._derivation = None  # edited by hand: the graph re-derives it before pruning

    def add_dep(self, dep: Dependency, idxs: Sequence[int], root_idxs: Sequence[int] | None = None):
        self._edited()
        self._group.append(GroupItem(dep, list(idxs), list(root_idxs) if root_idxs else None))

    def add_and_merge(self, dep: Dependency, idxs: Sequence[int]) -> None:
        self._edited()
        for i, item in enumerate(self._group):
            if item.dep.target == dep.target and item.dep.handler == dep.handler:
                merged = sorted(set(item.idxs) | set(idxs))
                self._group[i] = GroupItem(item.dep, merged, item.root_idxs)
                return
        self.add_dep(dep, idxs)

    def __setitem__(self, k: int, value: Any) -> None:
        self._edited()
        dep, idxs = value[0], value[1]
        roots = value[2] if len(value) > 2 else None
        self._group[k] = GroupItem(dep, list(idxs), list(roots) if roots is not None else None)

    @property
    def items(self) -> list[GroupItem]:
        return self._group

    @property
    def root(self) -> GroupItem:
        return self._group[0]

    def has_dep(self, dep: Dependency) -> bool:
        return any(item.dep == dep for item in self._group)

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
