"""Ranking scopes: which groups compete with each other, and at which ratio.

* local: each group alone, every root loses the same fraction;
* global: all groups in one ranking;
* isomorphic: one ranking per group topology signature (Isomorphic Pruning, ECCV 2024);
* user: `pruning_ratio_dict` keys. A module key covers it and its submodules (one
  ranking in global mode, per group otherwise); a tuple key is always one
  shared ranking with one ratio.
A group belongs to the first user scope holding one of its out-channel-pruned layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from torch import nn

from ..function import handler_name
from ..graph import Group

E = TypeVar("E")
M = TypeVar("M")


def first_covering(
    entries: Sequence[E], members: Iterable[M], covers: Callable[[E, M], bool]
) -> E | None:
    """The first entry (precedence order) that covers any member: the one matching rule
    of ratio scopes, shared by the pruner (module ids) and the plan (module paths)."""
    members = list(members)
    for entry in entries:
        if any(covers(entry, m) for m in members):
            return entry
    return None


@dataclasses.dataclass(frozen=True)
class Scope:
    name: str
    schedule: tuple[float, ...]  # cumulative ratio after each step (index 0 = none)


@dataclasses.dataclass
class UserScope:
    index: int
    module_ids: frozenset[int]
    schedule: tuple[float, ...]
    shared: bool  # one ranking for all its groups


def build_user_scopes(
    ratio_dict: dict | None, schedule_of: Callable[[float], list[float]], global_pruning: bool
) -> list[UserScope]:
    scopes = []
    for k, (key, ratio) in enumerate((ratio_dict or {}).items()):
        mods: tuple[nn.Module, ...] = key if isinstance(key, tuple) else (key,)
        ids = frozenset(id(s) for m in mods for s in m.modules())
        shared = isinstance(key, tuple) or global_pruning
        scopes.append(UserScope(k, ids, tuple(schedule_of(ratio)), shared))
    return scopes


def signature(group: Group) -> tuple:
    """Topology of a group: member layer types, handlers and widths, in member order."""
    return tuple(
        (type(it.dep.target.module).__name__, handler_name(it.dep.handler), len(it.idxs))
        for it in group
    )


@dataclasses.dataclass
class ScopeResolver:
    """Maps a group (by its root) to its Scope; fixed when the pruner is built."""

    user_scopes: list[UserScope]
    default_schedule: tuple[float, ...]
    global_pruning: bool
    isomorphic: bool
    max_pruning_ratio: float

    def resolve(self, group: Group, root_name: str, sig: tuple, iso_ids: dict[tuple, int]) -> Scope:
        out_ids = [id(it.dep.target.module) for it in group if it.dep.kind == "out"]
        us = first_covering(self.user_scopes, out_ids, lambda s, i: i in s.module_ids)
        if us is not None:
            name = f"user{us.index}" if us.shared else f"user{us.index}:{root_name}"
            return Scope(name, self._cap(us.schedule, pooled=us.shared))
        if self.isomorphic:
            k = iso_ids.setdefault(sig, len(iso_ids))
            return Scope(f"isomorphic{k}", self.default_schedule)
        if self.global_pruning:
            return Scope("global", self.default_schedule)
        return Scope(f"local:{root_name}", self._cap(self.default_schedule, pooled=False))

    def _cap(self, schedule: tuple[float, ...], pooled: bool) -> tuple[float, ...]:
        """Per-group scopes cap the ratio itself; pooled ones cap each group's floor instead."""
        if pooled:
            return schedule
        return tuple(min(r, self.max_pruning_ratio) for r in schedule)
