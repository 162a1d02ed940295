"""Exact dry run of a plan: the channels, MACs and params pruning WILL produce.

How it stays exact without touching the model:
* which channels go comes from `BasePruner.plan_step()` itself (the very code
  `step()` runs), on the shared, never-pruned dependency graph;
* the consequences are measured, not modelled: the planned removals are applied by
  the real pruning functions to a weightless `meta` copy of the model, which is
  then counted with `count_ops_and_params` (so activations, pools and functional
  matmuls downstream are counted exactly as on the pruned model) and restored.

Why it is fast: the graph is traced once; importance rankings are cached per
(criterion, options) and group, the group list per ignored-layer set, re-derived
groups per root indices, and each meta layer's pruned state per removal count, so
a preview is one allocation + one meta forward (ResNet-50: ~50 ms CPU when every
group changes, ~30 ms when one layer's ratio is edited; benchmarks/preview_speed.py).

Whole attention heads (`prune_num_heads`) take the same path: the head scopes
(whose forward check runs the model) are found once per graph, unit scores are
cached with the rankings, and the planned HeadGroups' positions join the union;
the head counts forward reads are then lowered on the meta owners as real head
pruning does. vit_b_16 at 224: 85-105 ms CPU per head preview instead of 4.8-7.6 s;
the first head plan per criterion still scores every head (~5 s: the same cost as
pruning, mostly the criterion over the 12-block residual stream;
benchmarks/preview_speed.py).

Not predictable from cached scores: `iterative_steps > 1` (step k re-scores the
already pruned weights: consumers' in-channel rows and the normalizers change).
Those plans are previewed by pruning a deep copy of the model for real (costs a
trace + the pruning + a forward each time: ~1 s for ResNet-18 at 64x64), as is
any model whose forward cannot run on `meta`.

Cached rankings assume the weights do not change: call `invalidate()` after
training. The "random" criterion previews exactly only with a `seed` option.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from ..families.moe import prune_expert_widths
from ..function.attributes import AttributeRefresher
from ..graph import DependencyGraph, Group
from ..graph.heads import HeadGroup, set_head_counts
from ..graph.probe import meta_copy
from ..pruner import BasePruner, GroupPlan
from ..pruner.base_pruner import DEFAULT_ROOT_TYPES
from ..pruner.plan_cache import PlanCache
from ..utils import count_ops_and_params
from ..utils.meta_kernels import MetaKernels
from .build import module_list, pruner_kwargs
from .calibration import BatchDone, Calibration, resolve
from .criteria import ACTIVATION_CRITERIA, GRADIENT_CRITERIA, make_criterion
from .schema import PlanError, PruningPlan
from .validation import validate_plan

CopyProgress = Callable[[int, int, str], None]  # (units done, units in all, what was done)


@dataclasses.dataclass
class LayerPreview:
    """One prunable layer before and after (channels as its pruner reports them)."""

    name: str
    type: str
    in_before: int
    in_after: int
    out_before: int
    out_after: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int


@dataclasses.dataclass
class Preview:
    macs_before: int  # a float only when the batch does not divide the MACs (as counted)
    macs_after: int
    params_before: int
    params_after: int
    layers: list[LayerPreview]
    groups: list[GroupPlan]

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    def by_name(self) -> dict[str, LayerPreview]:
        return {layer.name: layer for layer in self.layers}


def _to_meta(x: Any) -> Any:
    return x.to("meta") if isinstance(x, torch.Tensor) else x


_MAX_STATES = 20000  # cached pruned layer states (meta: a few hundred bytes each)


@dataclasses.dataclass
class _Removal:
    """All positions one handler removes from one meta layer in a step (a union)."""

    layer: Any
    handler: Any
    kind: str
    dim: Any
    idxs: set[int] = dataclasses.field(default_factory=set)
    head_idxs: set[int] = dataclasses.field(default_factory=set)  # those in whole heads


def _get_state(target: Any) -> list[tuple]:
    """A pruned layer's (or unwrapped parameter's) full state: attributes and tensor shapes,
    its submodules' too (the MHA pruner also slices its child `out_proj`)."""
    if isinstance(target, nn.Module):
        out = []
        for m in target.modules():
            own = [t for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
            out.append((m, dict(m.__dict__), dict(m._parameters), dict(m._buffers),
                        [(t, t.data) for t in own]))
        return out
    return [(None, None, None, None, [(target, target.data)])]


def _put_module_state(m: nn.Module, attrs: dict, params: dict, buffers: dict) -> None:
    """Give a module back the attributes, parameters and buffers captured earlier."""
    m.__dict__.clear()
    m.__dict__.update(attrs)
    m._parameters.clear()
    m._parameters.update(params)
    m._buffers.clear()
    m._buffers.update(buffers)


def _set_state(target: Any, state: list[tuple]) -> None:
    for m, attrs, params, buffers, tensors in state:
        if m is not None:
            _put_module_state(m, attrs, params, buffers)
        for t, data in tensors:
            t.data = data


class _Shadow:
    """A weightless meta copy of the model that can be pruned, counted and restored."""

    def __init__(self, model: nn.Module, example_inputs: Any) -> None:
        memo: dict[int, Any] = {}
        self.model: nn.Module = meta_copy(model, memo)
        self.refresh = AttributeRefresher(self.model)
        self.copy_of = memo  # id(original object) -> its meta copy
        self.inputs = tree_map(_to_meta, example_inputs)
        self._tensors = list(self.model.parameters()) + list(self.model.buffers())
        self.modules = dict(self.model.named_modules())
        self._module_objs = list(self.model.modules())
        self._states: dict[tuple, tuple] = {}

    def _snapshot(self) -> tuple[list, list]:
        tensors = [(t, t.data) for t in self._tensors]
        modules = [(m, dict(m.__dict__), dict(m._parameters), dict(m._buffers))
                   for m in self._module_objs]
        return tensors, modules

    def _restore(self, snap: tuple[list, list]) -> None:
        tensors, modules = snap
        for m, attrs, params, buffers in modules:
            _put_module_state(m, attrs, params, buffers)
        for t, data in tensors:
            t.data = data

    def _apply(self, groups: list[Group]) -> None:
        """Remove every planned channel with the real pruning functions.

        All groups' indices refer to the state before the step and never overlap, so
        the union per (layer, handler) equals applying the groups one after another.
        On meta a layer's pruned state depends only on HOW MANY channels each handler
        removes, so it is cached per layer and count: editing one group's ratio
        re-prunes only that group's layers.
        """
        merged: dict[tuple[int, str], _Removal] = {}
        for group in groups:
            whole_heads = isinstance(group, HeadGroup)
            for item in group:
                target = item.dep.target
                key = (id(target.module), item.dep.kind)
                entry = merged.get(key)
                if entry is None:
                    entry = merged[key] = _Removal(self.copy_of[id(target.module)],
                                                   item.dep.handler, item.dep.kind,
                                                   target.pruning_dim)
                entry.idxs.update(item.idxs)
                if whole_heads:
                    entry.head_idxs.update(item.idxs)
        per_layer: dict[int, list[_Removal]] = {}
        for entry in merged.values():
            per_layer.setdefault(id(entry.layer), []).append(entry)
        for ops in per_layer.values():
            layer = ops[0].layer
            # how many positions are whole heads matters too: an MHA losing 8 of 64
            # positions keeps 8 heads of 7 (head dims) or 7 heads of 8 (one head)
            key = (id(layer), tuple((r.kind, r.dim, len(r.idxs), len(r.head_idxs))
                                    for r in ops))
            state = self._states.get(key)
            if state is not None:
                _set_state(layer, state)
                continue
            for r in ops:
                if r.dim is not None:
                    r.handler(layer, sorted(r.idxs), dim=r.dim)
                else:
                    r.handler(layer, sorted(r.idxs))
            if len(self._states) < _MAX_STATES:
                self._states[key] = _get_state(layer)
        for group in groups:
            if isinstance(group, HeadGroup):  # head counts the owners' forwards read
                set_head_counts(self.modules, group.scope.members, len(group.units))
        self.refresh()  # e.g. ViT's hidden_dim, read by its forward

    def measure_pruned(self, groups: list[Group], measure: Any) -> Any:
        """`measure(meta_model)` with `groups` removed; the copy is restored afterwards."""
        snap = self._snapshot()
        try:
            self._apply(groups)
            return measure(self.model)
        finally:
            self._restore(snap)


@contextlib.contextmanager
def _blocks_skipped(model: nn.Module, names: list[str]) -> Iterator[None]:
    """The named (non-layer-list) blocks replaced by nn.Identity while inside; put back after."""
    swapped = []
    modules = dict(model.named_modules())
    try:
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            swapped.append((parent, child, getattr(parent, child)))
            setattr(parent, child, nn.Identity())
        yield
    finally:
        for parent, child, block in reversed(swapped):
            setattr(parent, child, block)


def _without(figures: dict, dropped: list[str]) -> dict:
    """Layer figures with the layers inside dropped blocks gone (no channels, params, MACs)."""
    if not dropped:
        return figures
    return {n: f for n, f in figures.items()
            if not any(n == d or n.startswith(d + ".") for d in dropped)}


def exact_number(x: float) -> int | float:
    """MACs are per sample: an int unless the batch does not divide the total (then as is)."""
    return int(x) if float(x).is_integer() else float(x)


def count(model: nn.Module, inputs: Any,
          kernels: MetaKernels | None = None) -> tuple[int, int, dict, dict]:
    with torch.no_grad():
        return count_ops_and_params(model, inputs, layer_wise=True, meta_kernels=kernels)


@dataclasses.dataclass
class _LayerSpec:
    name: str
    type: str
    pruner: Any


class Previewer:
    """Built once per (model, graph); `preview(plan)` is cheap and never modifies the model."""

    def __init__(self, model: nn.Module, example_inputs: Any,
                 dependency_graph: DependencyGraph | None = None,
                 calibration: Calibration | None = None) -> None:
        self.model = model
        self.example_inputs = example_inputs
        self.kernels = MetaKernels()  # this previewer's fast meta kernels and layout memo
        self.dg = dependency_graph if dependency_graph is not None else DependencyGraph(
            self.kernels).build_dependency(model, example_inputs)
        self.calibration = calibration
        self._on_batch: BatchDone | None = None  # set for the length of one preview()
        self._on_progress: CopyProgress | None = None  # likewise
        self._history_len = len(self.dg.pruning_history())
        self._modules = dict(model.named_modules())
        # the named stages of the plan cache (engine/pruner/plan_cache.py), kept across
        # previews: groups per ignored-layer set, rankings per criterion, head scopes,
        # sub-groups per root indices
        self._groups: dict[tuple[str, ...], list[Group]] = {}
        self._ranks: dict[tuple, dict] = {}
        self._head_scopes: dict[tuple, tuple] = {}
        self._sub_groups: dict[tuple, Group] = {}
        self._grads: dict[int, torch.Tensor | None] | None = None
        self._activations: dict[str, Any] = {}  # options -> ActivationImportance with stats
        self._specs = [
            _LayerSpec(name, type(m).__name__, pruner)
            for name, m in model.named_modules()
            if name and (pruner := self.dg.get_pruner_of_module(m)) is not None
        ]
        try:
            self._shadow: _Shadow | None = _Shadow(model, example_inputs)
            base = count(self._shadow.model, self._shadow.inputs, self.kernels)
            by_name = self._shadow.modules
        except Exception as e:  # noqa: BLE001  (data-dependent forward: no meta run)
            warnings.warn(f"this model cannot run on the meta device ({type(e).__name__}: "
                          f"{e}); previews will prune a deep copy instead (slower)", stacklevel=2)
            self._shadow = None
            base = count(model, example_inputs)
            by_name = dict(model.named_modules())
        self.macs_before, self.params_before = exact_number(base[0]), int(base[1])
        self._before = self._layer_figures(by_name, base[2])

    # ---------------------------------------------------------------- public
    def preview(self, plan: PruningPlan, on_batch: BatchDone | None = None,
                on_progress: CopyProgress | None = None) -> Preview:
        """What `apply_plan(model, inputs, plan)` will produce (PlanError for a bad plan).

        `on_batch(done, total)` hears of each calibration batch of the first gradient or
        activation pass (a DataCalibration's): that pass is the slow part, so a GUI can show
        how far it is; the scores are the same with or without it. `on_progress(done, total,
        message)` hears of each unit of the slow path that prunes a real deep copy (iterative
        plans, models without a meta forward): scoring, each group cut, the count after."""
        self._on_batch, self._on_progress = on_batch, on_progress
        try:
            return self._preview(plan)
        finally:
            self._on_batch = self._on_progress = None

    def _preview(self, plan: PruningPlan) -> Preview:
        if len(self.dg.pruning_history()) != self._history_len:
            raise RuntimeError("the dependency graph was pruned after this Previewer was built; "
                               "build a new Previewer for the pruned model")
        validate_plan(plan, self.model, modules=self._modules)
        groups = self._groups_for(plan)
        validate_plan(plan, self.model, self.dg, groups, self._modules)
        if plan.importance == "random" and plan.importance_options.get("seed") is None:
            warnings.warn("importance 'random' without a seed: this preview shows one draw and "
                          "pruning will draw again; set importance_options {'seed': N} for a "
                          "reproducible plan", stacklevel=2)
        if plan.iterative_steps > 1 or self._shadow is None or self._drops_layer_list(plan):
            return self._simulate(plan)
        pruner = self._planning_pruner(plan, groups)
        with self._gradients(plan):
            plans, planned = pruner.planned()
        shadow = self._shadow

        def measure(meta: nn.Module) -> tuple[int, int, dict]:
            # fused MoE experts narrow outside the graph, as step() does it
            ratio = pruner.per_step_pruning_ratio[min(1, pruner.iterative_steps)]
            ignored = {id(s.copy_of[id(m)]) for m in pruner.ignored_layers
                       if id(m) in s.copy_of} if (s := shadow) else set()
            if prune_expert_widths(meta, ratio, ignored):
                shadow.refresh()
            with _blocks_skipped(meta, plan.drop_blocks):
                macs, params, layer_macs, _ = count(meta, shadow.inputs, self.kernels)
            return macs, params, _without(self._layer_figures(shadow.modules, layer_macs),
                                          plan.drop_blocks)

        try:
            macs, params, after = shadow.measure_pruned(planned, measure)
        except Exception as e:  # noqa: BLE001  (a custom pruner that needs real weights)
            warnings.warn(f"pruning the meta copy failed ({type(e).__name__}: {e}); previews "
                          "will prune a deep copy instead (slower)", stacklevel=2)
            self._shadow = None
            return self._simulate(plan)
        return self._assemble(exact_number(macs), int(params), after, plans)

    def _drops_layer_list(self, plan: PruningPlan) -> bool:
        """Dropping a Hugging Face layer-list entry renumbers the layers and the config:
        previewed on a real copy rather than on the shared meta shadow."""
        if not plan.drop_blocks:
            return False
        from ..depth import find_depth_groups

        in_list = {g.name for g in find_depth_groups(self.model) if g.in_layer_list}
        return any(n in in_list for n in plan.drop_blocks)

    def invalidate(self) -> None:
        """Forget cached rankings/gradients: call after changing the model's weights."""
        self._ranks.clear()
        self._grads = None
        self._activations.clear()

    def _criterion(self, plan: PruningPlan) -> Any:
        """The plan's criterion; an activation criterion keeps its statistics (one
        collection over the calibration data per Previewer, like the gradients)."""
        if plan.importance not in ACTIVATION_CRITERIA:
            return make_criterion(plan.importance, plan.importance_options)
        key = json.dumps(plan.importance_options, sort_keys=True)
        if key not in self._activations:
            from .calibration import collect_activations

            crit = make_criterion(plan.importance, plan.importance_options)
            collect_activations(self.model, crit, resolve(self.calibration, self.example_inputs,
                                                          plan.importance), self._on_batch)
            self._activations[key] = crit
        return self._activations[key]

    # --------------------------------------------------------------- helpers
    def _groups_for(self, plan: PruningPlan) -> list[Group]:
        key = tuple(sorted(plan.ignored_layers))
        if key not in self._groups:
            ignored = module_list(self.model, list(key), self._modules)
            self._groups[key] = list(self.dg.get_all_groups(
                ignored_layers=ignored, root_module_types=DEFAULT_ROOT_TYPES))
        return self._groups[key]

    def _ranks_for(self, plan: PruningPlan) -> dict:
        key: tuple = (plan.importance, json.dumps(plan.importance_options, sort_keys=True))
        if plan.importance == "random":
            # random draws depend on which groups (and heads) are scored, in order
            key += (tuple(sorted(plan.ignored_layers)), plan.prune_head_dims)
            if plan.prune_num_heads:
                key += (plan.head_pruning_ratio,
                        tuple(sorted(plan.head_pruning_ratio_dict.items())))
        return self._ranks.setdefault(key, {})

    @contextlib.contextmanager
    def _gradients(self, plan: PruningPlan) -> Iterator[None]:
        """Install calibration gradients while unseen groups are ranked (taylor/hessian)."""
        if plan.importance not in GRADIENT_CRITERIA:
            yield
            return
        if self._grads is None:
            self._grads = self._compute_grads(plan.importance)
        params = list(self.model.parameters())
        saved = [p.grad for p in params]
        for p in params:
            p.grad = self._grads.get(id(p))
        try:
            yield
        finally:
            for p, g in zip(params, saved, strict=True):
                p.grad = g

    def _compute_grads(self, criterion: str) -> dict[int, torch.Tensor | None]:
        from .calibration import compute_grads

        saved = {id(p): p.grad for p in self.model.parameters()}
        try:
            compute_grads(self.model, resolve(self.calibration, self.example_inputs, criterion),
                          self._on_batch)
            return {id(p): p.grad for p in self.model.parameters()}
        finally:
            for p in self.model.parameters():
                p.grad = saved.get(id(p))

    def _layer_figures(self, modules: dict[str, nn.Module],
                       layer_macs: dict) -> dict[str, tuple[int, int, int, int]]:
        """name -> (in, out, params, macs) for every layer that has a pruner."""
        out = {}
        for spec in self._specs:
            m = modules.get(spec.name)
            if m is None:
                continue
            cin = spec.pruner.get_in_channels(m)
            cout = spec.pruner.get_out_channels(m)
            params = sum(p.numel() for p in m.parameters())
            out[spec.name] = (int(cin or 0), int(cout or 0), int(params),
                              exact_number(layer_macs.get(m, 0)))
        return out

    def _assemble(self, macs: int, params: int, after: dict, plans: list[GroupPlan]) -> Preview:
        layers = []
        for spec in self._specs:
            if spec.name not in self._before:
                continue
            b, a = self._before[spec.name], after.get(spec.name, (0, 0, 0, 0))
            layers.append(LayerPreview(spec.name, spec.type, b[0], a[0], b[1], a[1],
                                       b[2], a[2], b[3], a[3]))
        return Preview(self.macs_before, macs, self.params_before, params, layers, plans)

    def _planning_pruner(self, plan: PruningPlan, groups: list[Group]) -> BasePruner:
        """A pruner over this previewer's cached groups and rankings: it plans, never cuts."""
        cache = PlanCache(self.dg, groups=groups, rankings=self._ranks_for(plan),
                          head_scopes=self._head_scopes, sub_groups=self._sub_groups)
        return BasePruner(
            self.model, self.example_inputs, self._criterion(plan),
            dependency_graph=self.dg, plan_cache=cache,
            **pruner_kwargs(plan, self.model, modules=self._modules))

    def _simulate(self, plan: PruningPlan) -> Preview:
        """Prune a deep copy for real (iterative plans, models without a meta forward)."""
        from .apply import run_plan

        report, last = self._on_progress, [1]

        def step(done: int, total: int, message: str) -> None:
            last[0] = total + 1  # one more unit: counting the pruned copy
            if report is not None:
                report(done, total + 1, message)

        clone = copy.deepcopy(self.model)
        plans = run_plan(clone, self.example_inputs, plan, calibration=self.calibration,
                         progress=step)
        macs, params, layer_macs, _ = count(clone, self.example_inputs)
        if report is not None:
            report(last[0], last[0], "counted the pruned copy")
        after = self._layer_figures(dict(clone.named_modules()), layer_macs)
        return self._assemble(exact_number(macs), int(params), after, plans)


def preview_plan(model: nn.Module, example_inputs: Any, plan: PruningPlan, *,
                 dependency_graph: DependencyGraph | None = None,
                 calibration: Calibration | None = None) -> Preview:
    """One-off preview (builds a Previewer; keep a Previewer to preview many plans)."""
    if not isinstance(plan, PruningPlan):
        raise PlanError(f"expected a PruningPlan, got {type(plan).__name__}")
    return Previewer(model, example_inputs, dependency_graph, calibration).preview(plan)
