"""Whole-head pruning for BasePruner (`prune_num_heads=True`).

Heads are ranked within their scope (one attention, or all attentions that share
channels such as ViT blocks on one residual stream) by the importance criterion
applied to each head's positions, and each scope keeps
`round(orig_units * (1 - head_ratio_k))` units after step k. A unit is one head,
or under GQA one KV head with its query heads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..graph import DependencyGraph, Group
from ..graph.heads import (
    HeadGroup,
    HeadScope,
    HeadUnit,
    declared_heads,
    find_head_scopes,
    fine_group,
    scopes_that_break,
)
from .allocation import target_width


def removable_scopes(
    dg: DependencyGraph,
    model: nn.Module,
    num_heads: dict[nn.Module, int],
    example_inputs: Any,
    run: Callable[[nn.Module, Any], Any],
) -> tuple[list[HeadScope], list[str]]:
    """Head scopes whose units can go (more than one unit, forward survives), and the
    reasons for the rest. Depends only on the unpruned graph: a preview computes it once."""
    scopes, problems = find_head_scopes(dg, declared_heads(model, num_heads))
    scopes = [s for s in scopes if len(s.units) > 1]
    bad = set(scopes_that_break(dg, model, example_inputs, run, scopes))
    problems = problems + [f"removing a head of '{scopes[i].name}' breaks the forward (a q/k/v "
                           "projection missing from num_heads, or a forward that derives the "
                           "head width from another width, as Swin's C // num_heads)"
                           for i in sorted(bad)]
    return [s for i, s in enumerate(scopes) if i not in bad], problems


class HeadPlanner:
    """Plans whole-head removal per scope.

    `found` (from `removable_scopes`) skips re-finding the scopes; `cache` keeps unit
    scores and head groups across planners of one never-pruned graph (previews): valid
    only while neither the graph nor the weights change.
    """

    def __init__(
        self,
        dg: DependencyGraph,
        model: nn.Module,
        num_heads: dict[nn.Module, int],
        ratio: float,
        ratio_dict: dict[nn.Module, float] | None,
        schedule_of: Callable[[float], list[float]],
        importance: Callable[[Group], torch.Tensor | None],
        ignored: set[int],
        example_inputs: Any,
        run: Callable[[nn.Module, Any], Any],
        found: tuple[list[HeadScope], list[str]] | None = None,
        cache: dict | None = None,
    ) -> None:
        self.dg = dg
        self.importance = importance
        self._cache = cache
        if found is None:
            found = removable_scopes(dg, model, num_heads, example_inputs, run)
        scopes, problems = found
        self.problems = list(problems)
        if self.problems:
            warnings.warn("some attention heads cannot be removed whole: "
                          + "; ".join(self.problems[:5]), stacklevel=4)
        self.scopes = [s for s in scopes if not any(id(m.module) in ignored for m in s.members)]
        self._orig = {s.name: len(s.units) for s in self.scopes}
        self._schedule = {s.name: schedule_of(_ratio_for(s, ratio, ratio_dict, dg))
                          for s in self.scopes}

    def head_counts(self) -> dict[nn.Module, int]:
        """Current head count of every declared layer (Torch-Pruning's pruner.num_heads)."""
        return {m.module: m.n_heads for s in self.scopes for m in s.members}

    def plan(self, step: int) -> list[HeadGroup]:
        out = []
        for scope in self.scopes:
            alive = [u for u in scope.units if self._alive(scope, u)]
            keep = max(1, target_width(self._orig[scope.name], self._schedule[scope.name][step]))
            k = len(alive) - keep
            if k <= 0:
                continue
            scores = self._cached(("scores", scope.name, tuple(u.index for u in alive)),
                                  self._scores, scope, alive)
            order = sorted(range(len(alive)), key=lambda i: (scores[i], alive[i].index))
            chosen = sorted((alive[i] for i in order[:k]), key=lambda u: u.index)
            out.append(self._cached(("group", scope.name, tuple(u.index for u in chosen)),
                                    HeadGroup, self.dg, scope, chosen))
        return out

    def _cached(self, key: tuple, make: Callable[..., Any], *args: Any) -> Any:
        if self._cache is None:
            return make(*args)
        if key not in self._cache:
            self._cache[key] = make(*args)
        return self._cache[key]

    def _alive(self, scope: HeadScope, unit: HeadUnit) -> bool:
        state = self.dg.port_of(scope.members[0].module)
        return bool((state.alive & np.isin(state.fine, unit.fine)).any())

    def _scores(self, scope: HeadScope, units: list[HeadUnit]) -> list[float]:
        """Mean importance of each unit's positions, summed over the declared layers. All
        units of a layer are scored in one call, so a criterion's normalisation is shared."""
        totals = [0.0] * len(units)
        unit_of = {int(f): i for i, u in enumerate(units) for f in u.fine.tolist()}
        fine = np.concatenate([u.fine for u in units])
        for mb in scope.members:
            group = fine_group(self.dg, mb.module, fine)
            imp = self.importance(group)
            if imp is None:
                continue
            imp = torch.nan_to_num(torch.as_tensor(imp, dtype=torch.float64).reshape(-1))
            state = self.dg.port_of(mb.module)
            rank_to_fine = dict(zip(state.current_rank()[state.alive].tolist(),
                                    state.fine[state.alive].tolist(), strict=True))
            sums = [0.0] * len(units)
            counts = [0] * len(units)
            for r, v in zip(group[0].idxs, imp.tolist(), strict=True):
                i = unit_of[int(rank_to_fine[r])]
                sums[i] += v
                counts[i] += 1
            for i in range(len(units)):
                totals[i] += sums[i] / max(counts[i], 1)
        return totals

def _ratio_for(
    scope: HeadScope, ratio: float, ratio_dict: dict[nn.Module, float] | None, dg: DependencyGraph
) -> float:
    """A `head_pruning_ratio_dict` key covers a declared layer, or a module that holds it."""
    for key, r in (ratio_dict or {}).items():
        ids = {id(s) for s in key.modules()}
        if any(id(m.module) in ids for m in scope.members):
            return float(r)
    return float(ratio)
