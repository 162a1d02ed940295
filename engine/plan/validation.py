"""Plan validation: collect EVERY problem, each naming the field and what to do.

Three levels, each used where its inputs exist:
* `structural_problems(plan)` needs nothing but the plan (ranges, types, importance);
* `name_problems(plan, model)` checks module paths against `model.named_modules()`
  and suggests close matches;
* `graph_problems(plan, dg, ...)` needs the dependency graph: group ids must be group
  roots, and layers coupled into one group must not ask for different ratios.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterable
from typing import Any

from torch import nn

from ..pruner.validation import MAX_ITERATIVE_STEPS
from .criteria import criterion_problems
from .ratios import RatioResolver
from .schema import _FIELD_TYPES, PLAN_VERSION, PlanError, PruningPlan, UserScope, _is


def _ratio_problem(where: str, value: Any, *, low_open: bool = False) -> str | None:
    if not _is(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return f"{where}: must be a number, got {value!r}"
    if low_open:
        if not 0.0 < value <= 1.0:
            return f"{where}: {value} is outside (0, 1]"
    elif not 0.0 <= value < 1.0:
        return f"{where}: {value} is outside [0, 1)"
    return None


def structural_problems(plan: PruningPlan) -> list[str]:
    """Problems visible without a model."""
    problems: list[str] = []
    bad_type = set()
    for key, (types, what) in _FIELD_TYPES.items():
        value = getattr(plan, key)
        if not _is(value, types):
            problems.append(f"{key}: must be {what}, got {value!r}")
            bad_type.add(key)
    if "version" not in bad_type and plan.version != PLAN_VERSION:
        problems.append(f"version: {plan.version} is not supported (this Arborist reads "
                        f"version {PLAN_VERSION})")
    if "pruning_ratio" not in bad_type:
        _add(problems, _ratio_problem("pruning_ratio", plan.pruning_ratio))
    if "max_pruning_ratio" not in bad_type:
        _add(problems, _ratio_problem("max_pruning_ratio", plan.max_pruning_ratio, low_open=True))
    if "head_pruning_ratio" not in bad_type:
        _add(problems, _ratio_problem("head_pruning_ratio", plan.head_pruning_ratio))
    if "round_to" not in bad_type and plan.round_to is not None and plan.round_to < 1:
        problems.append(f"round_to: must be an integer >= 1 (or null), got {plan.round_to}")
    if "iterative_steps" not in bad_type and plan.iterative_steps < 1:
        problems.append(f"iterative_steps: must be an integer >= 1, got {plan.iterative_steps}")
    elif "iterative_steps" not in bad_type and plan.iterative_steps > MAX_ITERATIVE_STEPS:
        problems.append(f"iterative_steps: must be at most {MAX_ITERATIVE_STEPS}, "
                        f"got {plan.iterative_steps}")
    if plan.isomorphic is True and plan.global_pruning is False:
        problems.append("isomorphic: ranks within topology classes across the network and "
                        "needs global_pruning: true")
    if not {"importance", "importance_options"} & bad_type:
        problems.extend(_non_finite("importance_options", plan.importance_options))
        problems.extend(criterion_problems(plan.importance, plan.importance_options))
    for key in ("layer_ratios", "group_ratios", "head_pruning_ratio_dict"):
        if key in bad_type:
            continue
        for name, ratio in getattr(plan, key).items():
            if not isinstance(name, str):
                problems.append(f"{key}: keys must be layer names, got {name!r}")
            _add(problems, _ratio_problem(f"{key}[{name!r}]", ratio))
    if "ignored_layers" not in bad_type:
        for i, name in enumerate(plan.ignored_layers):
            if not isinstance(name, str):
                problems.append(f"ignored_layers[{i}]: must be a layer name, got {name!r}")
    if "scopes" not in bad_type:
        problems.extend(_scope_problems(plan))
    if "drop_blocks" not in bad_type:
        for i, name in enumerate(plan.drop_blocks):
            if not isinstance(name, str):
                problems.append(f"drop_blocks[{i}]: must be a block name, got {name!r}")
    if not {"ignored_layers", "layer_ratios", "group_ratios"} & bad_type:
        ignored = {n for n in plan.ignored_layers if isinstance(n, str)}
        for key in ("layer_ratios", "group_ratios"):
            for name in getattr(plan, key):
                if name in ignored:
                    problems.append(f"{key}[{name!r}]: this layer is also in ignored_layers; "
                                    "remove one of the two")
        if "scopes" not in bad_type:
            for i, scope in enumerate(plan.scopes):
                if isinstance(scope, UserScope):
                    for name in scope.layers:
                        if name in ignored:
                            problems.append(f"{_scope_label(i, scope)}: layer {name!r} is also "
                                            "in ignored_layers; remove one of the two")
    return problems


def _non_finite(where: str, value: Any) -> list[str]:
    """NaN / infinity anywhere in a JSON-like value: no criterion means them, JSON can't hold
    them (`--json` output must stay valid)."""
    found: list[str] = []
    stack = [(where, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            found.append(f"{path}: {v} is not a finite number")
        elif isinstance(v, dict):
            stack.extend((f"{path}[{k!r}]", x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return found


def _scope_label(i: int, scope: UserScope) -> str:
    return f"scopes[{i}]" + (f" ({scope.name!r})" if scope.name else "")


def _scope_problems(plan: PruningPlan) -> list[str]:
    problems: list[str] = []
    owner: dict[str, int] = {}
    for i, scope in enumerate(plan.scopes):
        if not isinstance(scope, UserScope):
            problems.append(f"scopes[{i}]: must be a UserScope, got {type(scope).__name__}")
            continue
        label = _scope_label(i, scope)
        _add(problems, _ratio_problem(f"{label}.ratio", scope.ratio))
        if not isinstance(scope.layers, list) or not scope.layers:
            problems.append(f"{label}.layers: must be a non-empty list of layer names")
            continue
        for name in scope.layers:
            if name in owner and owner[name] != i:
                problems.append(f"{label}: layer {name!r} is already in scopes[{owner[name]}]; "
                                "a layer can belong to one scope only")
            owner.setdefault(name, i)
    return problems


def _add(problems: list[str], p: str | None) -> None:
    if p is not None:
        problems.append(p)


def _suggest(name: str, known: Iterable[str]) -> str:
    """' (did you mean ...?)' for the closest known name; ties go to the earliest (model order)."""
    best, best_score = None, 0.6
    for candidate in known:
        m = difflib.SequenceMatcher(None, name, candidate)
        if m.real_quick_ratio() > best_score and m.quick_ratio() > best_score:
            score = m.ratio()
            if score > best_score:
                best, best_score = candidate, score
    return f" (did you mean {best!r}?)" if best is not None else ""


def plan_layer_names(plan: PruningPlan) -> list[tuple[str, str]]:
    """(where, module path) for every module path the plan mentions (ill-typed fields skipped)."""

    def keys(value: Any) -> list:
        return list(value) if isinstance(value, (dict, list)) else []

    out = [(f"layer_ratios[{n!r}]", n) for n in keys(plan.layer_ratios)]
    out += [(f"group_ratios[{n!r}]", n) for n in keys(plan.group_ratios)]
    out += [(f"ignored_layers[{i}]", n) for i, n in enumerate(keys(plan.ignored_layers))]
    out += [(f"head_pruning_ratio_dict[{n!r}]", n) for n in keys(plan.head_pruning_ratio_dict)]
    for i, scope in enumerate(keys(plan.scopes)):
        if isinstance(scope, UserScope) and isinstance(scope.layers, list):
            out += [(f"{_scope_label(i, scope)}.layers", n) for n in scope.layers]
    return out


def name_problems(plan: PruningPlan, model: nn.Module,
                  modules: dict[str, nn.Module] | None = None) -> list[str]:
    """Module paths the model does not have, each with a close-match suggestion."""
    names = modules if modules is not None else dict(model.named_modules())
    known = [name for name in names if name]
    known_set = set(known)
    return [f"{where}: no such layer {name!r}{_suggest(name, known)}"
            for where, name in plan_layer_names(plan)
            if isinstance(name, str) and name not in known_set]


def graph_problems(plan: PruningPlan, dg: Any, model: nn.Module,
                   groups: list | None = None,
                   modules: dict[str, nn.Module] | None = None,
                   notes: list[str] | None = None) -> list[str]:
    """Group ids that are not group roots; coupled layers with different layer ratios.

    `groups` (the pruner's groups for this plan's ignored layers) saves re-enumerating them.
    `notes` collects ratios that are legal but have no effect (locked or output layers).
    """
    from ..pruner.base_pruner import DEFAULT_ROOT_TYPES

    modules = modules if modules is not None else dict(model.named_modules())
    if groups is None:
        ignored = [modules[n] for n in plan.ignored_layers if n in modules]
        groups = list(dg.get_all_groups(ignored_layers=ignored,
                                        root_module_types=DEFAULT_ROOT_TYPES))
    problems: list[str] = []
    roots = {}
    for g in groups:
        root = g[0].dep.target.module
        roots[dg.module2name.get(root, g[0].dep.target.name)] = g
    owner = {}  # member layer -> root of the group that prunes its out channels
    for root_name, g in roots.items():
        for item in g:
            if item.dep.kind == "out":
                owner.setdefault(dg.module2name.get(item.dep.target.module, ""), root_name)
    for name in plan.group_ratios:
        if name in modules and name not in roots:
            hint = (f"; its channels belong to the group rooted at {owner[name]!r}"
                    if name in owner else _suggest(name, roots))
            problems.append(f"group_ratios[{name!r}]: {name!r} is not the root of a prunable "
                            f"group{hint}")
    if plan.layer_ratios:
        for root_name, g in roots.items():
            problems.extend(_coupling_problems(plan, g, root_name, dg, modules))
    if notes is not None:
        asked = [(f"layer_ratios[{n!r}]", n) for n in plan.layer_ratios]
        asked += [(f"{_scope_label(i, sc)}.layers", n) for i, sc in enumerate(plan.scopes)
                  for n in sc.layers]
        for where, name in asked:
            if not any(o == name or o.startswith(name + ".") or not name for o in owner):
                notes.append(f"{where}: no prunable group owns the out-channels of {name!r} "
                             "(a model output, locked or ignored); its ratio has no effect")
    return problems


def _coupling_problems(plan: PruningPlan, group: Any, root_name: str, dg: Any,
                       modules: dict[str, nn.Module]) -> list[str]:
    resolver = RatioResolver(plan)
    asked: dict[str, float] = {}
    for item in group:
        if item.dep.kind != "out":
            continue
        target = item.dep.target.module
        if not isinstance(target, nn.Module):
            continue
        key = resolver.layer_key(dg.module2name.get(target, ""))
        if key is not None:
            asked[key] = plan.layer_ratios[key]
    if len(set(asked.values())) > 1:
        which = ", ".join(f"{k!r}: {v}" for k, v in asked.items())
        return [f"layer_ratios: layers {which} are coupled in the group rooted at {root_name!r} "
                "and must share one ratio (set it once in group_ratios)"]
    return []


def validate_plan(plan: PruningPlan, model: nn.Module | None = None, dg: Any = None,
                  groups: list | None = None,
                  modules: dict[str, nn.Module] | None = None) -> None:
    """Raise PlanError with every problem found (structure and names; coupling needs `dg`)."""
    problems = structural_problems(plan)
    if model is not None:
        if modules is None:
            modules = dict(model.named_modules())
        problems += name_problems(plan, model, modules)
        if plan.drop_blocks and all(isinstance(n, str) for n in plan.drop_blocks):
            from ..depth import depth_problems

            problems += depth_problems(model, plan.drop_blocks)
    notes: list[str] = []
    if dg is not None and model is not None and not problems:
        problems = graph_problems(plan, dg, model, groups, modules, notes)
    if problems:
        raise PlanError(problems)
    for note in notes:
        warnings.warn(note, stacklevel=3)
