"""PlanCache: what pruners planning on one never-pruned graph may share (previews).

A previewer builds many pruners over the same dependency graph, one per edited plan,
and prunes a meta copy instead of the graph. Everything a plan is made of is then a
pure function of (criterion, options, group): the group list, each group's ranking,
the whole-head scopes and their scores, and the sub-groups cut out of ranked groups.
`BasePruner(..., plan_cache=cache)` reads and fills these named stages instead of
recomputing them; without a cache it computes them as usual.

Valid only while the graph is unpruned and the weights unchanged: the cache remembers
the graph's prune serial and refuses to serve a pruned graph. Call `forget_rankings()`
after training (weights changed); build a new cache for a new graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..graph import DependencyGraph, Group

_SUB_GROUP_LIMIT = 50000


def group_key(group: Group) -> tuple:
    """A group's identity for caching: root layer, side, root indices."""
    dep = group[0].dep
    return id(dep.target.module), dep.kind, tuple(group[0].idxs)


@dataclasses.dataclass
class PlanCache:
    """Caches shared by pruners of one graph; each stage can be left out (None)."""

    graph: DependencyGraph
    groups: list[Group] | None = None  # get_all_groups for these ignored layers/root types
    rankings: dict[tuple, Any] | None = dataclasses.field(default_factory=dict)
    head_scopes: dict[tuple, Any] | None = dataclasses.field(default_factory=dict)
    sub_groups: dict[tuple, Group] | None = dataclasses.field(default_factory=dict)
    serial: int = -1

    def __post_init__(self) -> None:
        self.serial = self.graph.index.serial

    def check(self, graph: DependencyGraph) -> None:
        if graph is not self.graph:
            raise ValueError("this PlanCache belongs to another dependency graph")
        if graph.index.serial != self.serial:
            raise RuntimeError("the dependency graph was pruned after this PlanCache was made; "
                               "make a new one for the pruned graph")

    def forget_rankings(self) -> None:
        """Drop rankings and head scores (after the weights changed)."""
        if self.rankings is not None:
            self.rankings.clear()

    def ranking(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if self.rankings is None:
            return compute()
        if key not in self.rankings:
            self.rankings[key] = compute()
        return self.rankings[key]

    def sub_group(self, group: Group, idxs: list[int]) -> Group:
        """`graph.sub_group(group, idxs)`, memoized by root and indices."""
        if self.sub_groups is None:
            return self.graph.sub_group(group, idxs)
        dep = group[0].dep
        key = (id(dep.target.module), dep.kind, tuple(idxs))
        found = self.sub_groups.get(key)
        if found is None:
            if len(self.sub_groups) >= _SUB_GROUP_LIMIT:
                self.sub_groups.clear()
            found = self.sub_groups[key] = self.graph.sub_group(group, idxs)
        return found
