"""BasePruner: ranks channel sets within scopes and prunes them step by step.

One step = `plan_step()` (pure: score every group, rank within scopes, decide
which root channels go) + applying that plan group by group. Keeping the plan as
plain data lets a GUI preview a step and guarantees `step()` and
`step(interactive=True)` remove exactly the same channels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Generator, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..families.moe import EXPERTS_PREFIX, prune_expert_widths
from ..function import BasePruningFunc, handler_name
from ..graph import DependencyGraph, Group
from ..graph.channel_sets import ChannelSets
from ..graph.forward import eval_mode, runner
from ..graph.heads import HeadGroup, declared_heads
from .allocation import Candidate, allocate
from .heads import HeadPlanner, removable_scopes
from .plan import GroupPlan, MemberPlan
from .plan_cache import PlanCache, group_key
from .scheduler import linear_scheduler
from .scopes import Scope, ScopeResolver, build_user_scopes, signature
from .serialization import HISTORY_ATTR
from .validation import check_args, check_schedule

DEFAULT_ROOT_TYPES = [nn.modules.conv._ConvNd, nn.Linear, nn.RNNBase]  # RNNBase: LSTM, GRU, RNN


def _ignored_ids(layers: list[nn.Module]) -> set[int]:
    return {id(s) for m in layers for s in m.modules()}


def _set_scores(
    imp: np.ndarray, root: np.ndarray, sets: ChannelSets
) -> tuple[np.ndarray, np.ndarray]:
    """(size, mean score) of each channel set, without a loop per set."""
    sizes, flat = sets.sizes, sets.values
    order = np.argsort(root, kind="stable")
    where = order[np.searchsorted(root, flat, sorter=order).clip(max=max(root.size - 1, 0))]
    if flat.size and not (root[where] == flat).all():
        raise KeyError(int(flat[root[where] != flat][0]))  # a set channel is not a root index
    picked = imp[where].astype(np.float64)
    if sizes.size and sizes.size == flat.size:  # every set one channel
        return sizes, picked
    if not sizes.size:
        return sizes, picked[:0]
    return sizes, np.add.reduceat(picked, sets.starts[:-1]) / sizes  # one segmented sum


@dataclasses.dataclass
class _GroupInfo:
    """What a group looked like when the pruner was built (ratios refer to it)."""

    orig_width: int
    scope: Scope


def _root_key(group: Group) -> tuple[int, str]:
    dep = group[0].dep
    return id(dep.target.module), dep.kind


class BasePruner:
    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        importance: Callable[[Group], torch.Tensor | None],
        global_pruning: bool = False,
        pruning_ratio: float = 0.5,
        pruning_ratio_dict: dict[nn.Module | tuple[nn.Module, ...], float] | None = None,
        max_pruning_ratio: float = 1.0,
        iterative_steps: int = 1,
        iterative_pruning_ratio_scheduler: Callable[[float, int], list[float]] = linear_scheduler,
        ignored_layers: list[nn.Module | nn.Parameter] | None = None,
        round_to: int | None = None,
        isomorphic: bool = False,
        in_channel_groups: dict[nn.Module, int] = {},  # noqa: B006  (Torch-Pruning's signature)
        out_channel_groups: dict[nn.Module, int] = {},  # noqa: B006
        num_heads: dict[nn.Module, int] = {},  # noqa: B006
        prune_num_heads: bool = False,
        prune_head_dims: bool = True,
        head_pruning_ratio: float = 0.0,
        head_pruning_ratio_dict: dict[nn.Module, float] | None = None,
        customized_pruners: dict[Any, BasePruningFunc] | None = None,
        unwrapped_parameters: dict[nn.Parameter, int] | None = None,
        root_module_types: list[type] = DEFAULT_ROOT_TYPES,  # noqa: B006
        forward_fn: Callable[[nn.Module, Any], Any] | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        dependency_graph: DependencyGraph | None = None,
        plan_cache: PlanCache | None = None,
    ) -> None:
        """Torch-Pruning's arguments, plus two for callers that plan many times:
        `dependency_graph`, a graph already built for this very model (not traced again),
        and `plan_cache`, caches shared by pruners that plan on that never-pruned graph
        (see engine/pruner/plan_cache.py; previews use it)."""
        check_args(
            pruning_ratio=pruning_ratio, pruning_ratio_dict=pruning_ratio_dict,
            max_pruning_ratio=max_pruning_ratio, iterative_steps=iterative_steps,
            scheduler=iterative_pruning_ratio_scheduler, ignored_layers=ignored_layers,
            round_to=round_to, global_pruning=global_pruning, isomorphic=isomorphic,
            in_channel_groups=in_channel_groups, out_channel_groups=out_channel_groups,
            num_heads=num_heads, head_pruning_ratio=head_pruning_ratio,
            head_pruning_ratio_dict=head_pruning_ratio_dict, importance=importance,
        )
        if not prune_num_heads and (head_pruning_ratio > 0 or head_pruning_ratio_dict):
            warnings.warn("head_pruning_ratio only applies with prune_num_heads=True; no whole "
                          "heads are removed", stacklevel=2)
        self.model = model
        self.importance = importance
        self.global_pruning = global_pruning
        self.isomorphic = isomorphic
        self.pruning_ratio = float(pruning_ratio)
        self.max_pruning_ratio = float(max_pruning_ratio)
        self.iterative_steps = iterative_steps
        self.iterative_pruning_ratio_scheduler = iterative_pruning_ratio_scheduler
        self.round_to = round_to
        self.in_channel_groups = dict(in_channel_groups)
        self.out_channel_groups = dict(out_channel_groups)
        self.num_heads = dict(num_heads)
        self.prune_num_heads = prune_num_heads
        self.prune_head_dims = prune_head_dims
        self.head_pruning_ratio = head_pruning_ratio
        self.head_pruning_ratio_dict = dict(head_pruning_ratio_dict or {})
        self.root_module_types = list(root_module_types)
        self.ignored_layers = [m for m in ignored_layers or [] if isinstance(m, nn.Module)]
        ignored_params = [p for p in ignored_layers or [] if isinstance(p, nn.Parameter)]
        self.current_step = 0

        # A pre-built graph (of this very model) skips re-tracing: previews are cheap.
        self.DG = dependency_graph if dependency_graph is not None else DependencyGraph(
        ).build_dependency(
            model, example_inputs, forward_fn=forward_fn, output_transform=output_transform,
            unwrapped_parameters=unwrapped_parameters, customized_pruners=customized_pruners,
            ignored_params=ignored_params,
        )
        if plan_cache is not None:
            plan_cache.check(self.DG)
        self._cache = plan_cache
        self._base_history = [tuple(h) for h in getattr(model, HISTORY_ATTR, [])]

        def schedule_of(ratio: float) -> list[float]:
            return check_schedule(
                iterative_pruning_ratio_scheduler(ratio, iterative_steps), iterative_steps,
                f"ratio {ratio}")

        self.per_step_pruning_ratio = schedule_of(self.pruning_ratio)
        self._resolver = ScopeResolver(
            build_user_scopes(pruning_ratio_dict, schedule_of, global_pruning),
            tuple(self.per_step_pruning_ratio), global_pruning, isomorphic, self.max_pruning_ratio,
        )
        self._heads = None
        if prune_num_heads:
            with eval_mode(model):  # the head checks run the model, like the trace
                self._heads = self._head_planner(
                    schedule_of, example_inputs, runner(forward_fn, output_transform))
        self._head_layers = {id(m) for m in declared_heads(model, self.num_heads)}
        self._iso_ids: dict[tuple, int] = {}
        self._info: dict[tuple[int, str], _GroupInfo] = {}
        self._all_groups: tuple[int, list[Group]] | None = None
        for group in self._groups():
            self._info_of(group)
        self._cached: tuple[tuple[int, int], list[GroupPlan], list[Group]] | None = None

    # ------------------------------------------------------------ public API
    def step(self, interactive: bool = False) -> Generator[Group, None, None] | None:
        """Prune one step; with interactive=True, yield each group for the caller to prune."""
        plans, groups = self._plan()
        self.current_step += 1
        self._cached = None
        if interactive:
            return self._interactive(groups)
        for group in groups:
            # re-derived from its slot classes: earlier prunes of this step shift indices
            current = group if isinstance(group, HeadGroup) else self._current(group)
            self._before_prune(current)
            current.prune()
        self._prune_experts()
        self._after_heads()
        self._sync_history()
        self.update_regularizer()
        return None

    def _prune_experts(self) -> None:
        """Fused MoE experts (Mixtral): each expert's intermediate width is internal to one
        leaf of the graph, so it is narrowed here, to the step's global ratio, every expert
        by its own weakest channels; the config is refreshed after it."""
        ratio = self.per_step_pruning_ratio[min(self.current_step, self.iterative_steps)]
        done = prune_expert_widths(self.model, ratio, _ignored_ids(self.ignored_layers))
        for name, (_, _, removed) in done.items():
            self.DG.record_pruning(EXPERTS_PREFIX + name, True, removed)
        if done:
            self.DG.refresh_attributes()

    def plan_step(self) -> list[GroupPlan]:
        """What the next step() will remove, as plain data; the model is not touched."""
        return list(self._plan()[0])

    def planned(self) -> tuple[list[GroupPlan], list[Group]]:
        """`plan_step()` and the groups the next step() will prune, in that order (the
        groups' indices hold until anything is pruned)."""
        plans, groups = self._plan()
        return list(plans), list(groups)

    def estimate_importance(self, group: Group) -> torch.Tensor | None:
        return self.importance(group)

    def pruning_history(self) -> list[tuple[str, bool, list[int]]]:
        return self.DG.pruning_history()

    def load_pruning_history(self, pruning_history: Iterable) -> None:
        self.DG.load_pruning_history(pruning_history)
        self._sync_history()

    def get_target_pruning_ratio(self, module: nn.Module, step: int = -1) -> float:
        """Cumulative ratio the group rooted at `module` reaches after `step` (default: current)."""
        step = self.current_step if step < 0 else step
        for key, info in self._info.items():
            if key[0] == id(module):
                return info.scope.schedule[min(step, self.iterative_steps)]
        return min(self.per_step_pruning_ratio[min(step, self.iterative_steps)],
                   self.max_pruning_ratio)

    def reset(self) -> None:
        self.current_step = 0
        self._cached = None

    def update_regularizer(self) -> None:
        """Refresh state that depends on the current structure (regularizing pruners)."""

    def regularize(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        """Add a sparsity term to gradients before optimizer.step() (regularizing pruners)."""

    # ------------------------------------------------------------- planning
    def _head_planner(self, schedule_of: Callable[[float], list[float]], example_inputs: Any,
                      run: Callable[[nn.Module, Any], Any]) -> HeadPlanner:
        """The whole-head planner. With a plan cache, head scopes are found once per graph
        and `num_heads` (their forward check runs the model), and unit scores and head
        groups are cached with the criterion's rankings."""
        found = cache = None
        if self._cache is not None:
            cache = self._cache.rankings
            if self._cache.head_scopes is not None:
                key = tuple(sorted((id(m), n) for m, n in self.num_heads.items()))
                if key not in self._cache.head_scopes:
                    self._cache.head_scopes[key] = removable_scopes(
                        self.DG, self.model, self.num_heads, example_inputs, run)
                found = self._cache.head_scopes[key]
        return HeadPlanner(
            self.DG, self.model, self.num_heads, self.head_pruning_ratio,
            self.head_pruning_ratio_dict, schedule_of, self.importance,
            _ignored_ids(self.ignored_layers), example_inputs, run, found=found, cache=cache,
        )

    def _groups(self) -> list[Group]:
        """All groups, derived once per graph state (construction and the first plan share
        them; any prune changes the index serial and they are derived again). A plan
        cache may hand in the list."""
        if self._cache is not None and self._cache.groups is not None:
            return list(self._cache.groups)
        serial = self.DG.index.serial
        if self._all_groups is None or self._all_groups[0] != serial:
            self._all_groups = (serial, list(self.DG.get_all_groups(
                ignored_layers=self.ignored_layers, root_module_types=self.root_module_types)))
        return list(self._all_groups[1])

    def _name(self, group: Group) -> str:
        m = group[0].dep.target.module
        return self.DG.module2name.get(m, group[0].dep.target.name)

    def _info_of(self, group: Group) -> _GroupInfo:
        key = _root_key(group)
        info = self._info.get(key)
        if info is None:
            scope = self._resolver.resolve(
                group, self._name(group), signature(group), self._iso_ids)
            info = self._info[key] = _GroupInfo(len(group[0].idxs), scope)
        return info

    def _state_token(self) -> tuple[int, int]:
        return len(self.DG.pruning_history()), self.current_step

    @torch.no_grad()
    def _plan(self) -> tuple[list[GroupPlan], list[Group]]:
        token = self._state_token()
        if self._cached is not None and self._cached[0] == token:
            return self._cached[1], self._cached[2]
        step = self.current_step + 1
        plans: list[GroupPlan] = []
        groups: list[Group] = []
        if step > self.iterative_steps:
            warnings.warn("all iterative steps are done; step() prunes nothing more "
                          "(call reset() to start a new schedule)", stacklevel=3)
        else:
            plans, groups = self._plan_for(step)
        self._cached = (token, plans, groups)
        return plans, groups

    def _plan_for(self, step: int) -> tuple[list[GroupPlan], list[Group]]:
        heads = self._heads.plan(step) if self._heads is not None else []
        head_plans = [self._describe(g, "heads:" + g.scope.name, self._root_width(g))
                      for g in heads]
        plans, groups = self._plan_channels(step)
        return head_plans + plans, list(heads) + groups

    def _root_width(self, group: Group) -> int:
        return self.DG.port_of(group[0].dep.target.module).width()

    def _holds_heads(self, group: Group) -> bool:
        """With prune_head_dims=False, groups through declared head layers keep their width."""
        return any(id(it.dep.target.module) in self._head_layers and it.dep.kind == "out"
                   for it in group)

    def _after_heads(self) -> None:
        if self._heads is not None:
            for m, n in self._heads.head_counts().items():
                if m in self.num_heads:
                    self.num_heads[m] = n

    def _plan_channels(self, step: int) -> tuple[list[GroupPlan], list[Group]]:
        scoped: dict[str, list[tuple[Group, ChannelSets, Candidate]]] = {}
        share = getattr(self.importance, "sharing_layer_reads", None)
        with share() if share is not None else contextlib.nullcontext():
            for group in self._groups():
                if not self.prune_head_dims and self._holds_heads(group):
                    continue
                ranked = self._rank(group)
                if ranked is None:
                    continue
                info = self._info_of(group)
                sets, cand = ranked
                cand.orig_width = info.orig_width
                cand.min_keep = max(
                    1, math.ceil(info.orig_width * (1 - self.max_pruning_ratio) - 1e-9))
                scoped.setdefault(info.scope.name, []).append((group, sets, cand))
        chosen: dict[int, list[int]] = {}
        scope_of: dict[int, str] = {}
        for name, members in scoped.items():
            ratio = self._info_of(members[0][0]).scope.schedule[step]
            counts = allocate([c for _, _, c in members], ratio, self.round_to)
            for (group, sets, _), k in zip(members, counts, strict=True):
                if k:
                    chosen[id(group)] = sets.leading(k)
                    scope_of[id(group)] = name
        plans, groups = [], []
        for members in scoped.values():
            for group, _, _ in members:
                if id(group) not in chosen:
                    continue
                idxs = chosen[id(group)]
                target = (self._cache.sub_group(group, idxs) if self._cache is not None
                          else self.DG.sub_group(group, idxs))
                if not self.DG.check_pruning_group(target):
                    continue
                plans.append(self._describe(target, scope_of[id(group)], len(group[0].idxs)))
                groups.append(target)
        order = sorted(range(len(groups)), key=lambda i: self._order_key(groups[i]))
        return [plans[i] for i in order], [groups[i] for i in order]

    def _order_key(self, group: Group) -> int:
        node = self.DG.module2node.get(group[0].dep.target.module)
        return node.id if node is not None else 0

    def _rank(self, group: Group) -> tuple[ChannelSets, Candidate] | None:
        """Channel sets from least to most important, with their sizes and scores (a
        plan cache remembers them per group; the pruner gets its own Candidate copy, as
        it writes orig_width/min_keep into it)."""
        if self._cache is None:
            return self._rank_now(group)
        hit = self._cache.ranking(group_key(group), lambda: self._rank_now(group))
        if hit is None:
            return None
        sets, cand = hit
        return sets, dataclasses.replace(cand, set_sizes=list(cand.set_sizes),
                                         set_scores=list(cand.set_scores))

    def _rank_now(self, group: Group) -> tuple[ChannelSets, Candidate] | None:
        imp = self.estimate_importance(group)
        if imp is None:
            return None
        imp = torch.as_tensor(imp).detach()
        root = list(group[0].idxs)
        if imp.dim() > 1 and imp.shape[-1] == len(root) and imp.numel() != len(root):
            raise ValueError(
                f"importance returned a {tuple(imp.shape)} matrix for '{self._name(group)}' "
                "(group_reduction=None keeps one row per member); a pruner needs one score "
                "per channel: use group_reduction='mean', 'sum', 'max', 'prod', 'first' or "
                "'gate'")
        imp = imp.reshape(-1).to("cpu", torch.float64)
        if imp.numel() != len(root):
            raise ValueError(f"importance returned {imp.numel()} scores for {len(root)} channels "
                             f"of '{self._name(group)}'")
        imp = torch.nan_to_num(imp, nan=0.0).numpy()
        sets = group.channel_set_arrays()
        sizes, scores = _set_scores(imp, np.asarray(root, dtype=np.int64), sets)
        order = np.lexsort((sets.firsts, scores))  # by score, ties by first channel
        cand = Candidate(sizes[order].tolist(), scores[order].tolist(), len(root), 1)
        return sets.reordered(order), cand

    def _describe(self, group: Group, scope: str, width: int) -> GroupPlan:
        members = [
            MemberPlan(self._member_name(it.dep.target.module, it.dep.target.name),
                       handler_name(it.dep.handler), len(it.idxs))
            for it in group
        ]
        idxs = list(group[0].idxs)
        return GroupPlan(self._name(group), handler_name(group[0].dep.handler), scope,
                         width, width - len(idxs), idxs, members)

    def _member_name(self, target: Any, fallback: str) -> str:
        return self.DG.module2name.get(target, fallback) if isinstance(target, nn.Module) else (
            fallback)

    # -------------------------------------------------------------- applying
    def _current(self, group: Group) -> Group:
        """The planned group with indices valid NOW (earlier groups may have shifted them).

        Slot classes are stable across pruning; re-deriving the group from them is
        what keeps a plan applicable group by group.
        """
        return self.DG.rederive(group)

    def _interactive(self, groups: list[Group]) -> Generator[Group, None, None]:
        try:
            for group in groups:
                current = group if isinstance(group, HeadGroup) else self._current(group)
                if len(current) and self.DG.check_pruning_group(current):
                    self._before_prune(current)
                    yield current
                self._sync_history()
            self._prune_experts()  # as step() does, once every group is pruned (not on cancel)
            self._sync_history()
        finally:
            self._after_heads()
            self._sync_history()
            self.update_regularizer()

    def _before_prune(self, group: Group) -> None:
        """Criteria that keep per-weight statistics (OBDC's Fisher) cut them as the group
        will cut the weights, as Torch-Pruning's pruner does."""
        adjust = getattr(self.importance, "adjust_fisher", None)
        if adjust is not None and not isinstance(group, HeadGroup):
            adjust(group, list(group[0].idxs))

    def _sync_history(self) -> None:
        """Remember the history on the model so engine.state_dict(model) can save it."""
        history = self._base_history + [tuple(h) for h in self.DG.pruning_history()]
        self.model.__dict__[HISTORY_ATTR] = [(n, o, list(i)) for n, o, i in history]
