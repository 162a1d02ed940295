"""Turn a name-based PruningPlan into an engine BasePruner.

The ratio precedence (scope > group > layer > default) is engine.plan.ratios's:
BasePruner's `pruning_ratio_dict` is first-match-wins, so the dict is built in the
order of `ratio_entries`; a scope becomes a tuple key (one shared ranking).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..graph import DependencyGraph
from ..pruner import BasePruner
from .criteria import make_criterion
from .ratios import ratio_entries
from .schema import PruningPlan
from .validation import validate_plan


def ratio_dict(plan: PruningPlan, model: nn.Module,
               modules: dict[str, nn.Module] | None = None) -> dict[Any, float]:
    """`pruning_ratio_dict` for BasePruner, ordered by the documented precedence."""
    modules = modules if modules is not None else dict(model.named_modules())
    out: dict[Any, float] = {}
    for entry in ratio_entries(plan):
        if entry.origin.startswith("scope"):
            out[tuple(modules[n] for n in entry.keys)] = entry.ratio
        else:
            out.setdefault(modules[entry.keys[0]], entry.ratio)
    return out


def module_list(model: nn.Module, names: list[str],
                modules: dict[str, nn.Module] | None = None) -> list[nn.Module]:
    modules = modules if modules is not None else dict(model.named_modules())
    return [modules[n] for n in names]


def pruner_kwargs(plan: PruningPlan, model: nn.Module,
                  num_heads: dict[nn.Module, int] | None = None,
                  modules: dict[str, nn.Module] | None = None) -> dict[str, Any]:
    """BasePruner keyword arguments for a (validated) plan, names mapped to modules."""
    modules = modules if modules is not None else dict(model.named_modules())
    head_names = list(plan.head_pruning_ratio_dict)
    head_dict = dict(zip(module_list(model, head_names, modules),
                         (plan.head_pruning_ratio_dict[n] for n in head_names), strict=True))
    return dict(
        global_pruning=plan.global_pruning,
        pruning_ratio=plan.pruning_ratio,
        pruning_ratio_dict=ratio_dict(plan, model, modules) or None,
        max_pruning_ratio=plan.max_pruning_ratio,
        iterative_steps=plan.iterative_steps,
        ignored_layers=module_list(model, plan.ignored_layers, modules),
        round_to=plan.round_to,
        isomorphic=plan.isomorphic,
        num_heads=dict(num_heads or {}),
        prune_num_heads=plan.prune_num_heads,
        prune_head_dims=plan.prune_head_dims,
        head_pruning_ratio=plan.head_pruning_ratio,
        head_pruning_ratio_dict=head_dict or None,
    )


def build_pruner(
    model: nn.Module,
    example_inputs: Any,
    plan: PruningPlan,
    *,
    dependency_graph: DependencyGraph | None = None,
    num_heads: dict[nn.Module, int] | None = None,
) -> BasePruner:
    """A BasePruner that does what `plan` says on `model` (validated first: PlanError).

    Pass `dependency_graph` (built on this very model) to skip re-tracing.
    """
    validate_plan(plan, model)
    if dependency_graph is None:
        dependency_graph = DependencyGraph().build_dependency(model, example_inputs)
    validate_plan(plan, model, dependency_graph)
    crit = make_criterion(plan.importance, plan.importance_options)
    return BasePruner(model, example_inputs, crit, dependency_graph=dependency_graph,
                      **pruner_kwargs(plan, model, num_heads))
