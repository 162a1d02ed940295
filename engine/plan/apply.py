"""Apply a plan to a model in place, group by group, with progress and cancel.

Cancelling leaves the model valid (each group is pruned whole, so shapes always
agree) but only partly pruned: callers that need all-or-nothing prune a copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from ..families.report import AttentionReport, attention_report, attention_widths
from ..graph import DependencyGraph
from ..pruner import GroupPlan
from ..utils import count_ops_and_params
from .build import build_pruner
from .calibration import Calibration, clear_grads, compute_grads, resolve
from .criteria import GRADIENT_CRITERIA
from .preview import exact_number
from .schema import PlanError, PruningPlan

Progress = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised by apply_plan when `cancel()` turned True; the model is partly pruned."""


@dataclasses.dataclass
class PruneOutcome:
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    steps_done: int
    history: list  # (root layer name, out-channel pruning?, removed idxs), Torch-Pruning's format
    # attention layers pruned / total and why the rest kept full width (None: no attention)
    attention: AttentionReport | None = None


@dataclasses.dataclass
class RunRecord:
    """What a run did so far: GroupPlans applied, steps completed, the graph's history."""

    applied: list[GroupPlan] = dataclasses.field(default_factory=list)
    steps_done: int = 0
    history: list = dataclasses.field(default_factory=list)
    lock_reasons: list[str] = dataclasses.field(default_factory=list)  # graph + head planner


def run_plan(
    model: nn.Module,
    example_inputs: Any,
    plan: PruningPlan,
    *,
    dependency_graph: DependencyGraph | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    calibration: Calibration | None = None,
    num_heads: dict[nn.Module, int] | None = None,
    record: RunRecord | None = None,
) -> list[GroupPlan]:
    """Prune `model` in place; returns the GroupPlans applied, over all steps.

    `record` (if given) is filled as the run goes, so it is complete even when cancelled.
    """
    record = record if record is not None else RunRecord()
    if not isinstance(plan, PruningPlan):
        raise PlanError(f"expected a PruningPlan, got {type(plan).__name__}")
    pruner = build_pruner(model, example_inputs, plan, dependency_graph=dependency_graph,
                          num_heads=num_heads)
    heads = getattr(pruner, "_heads", None)
    record.lock_reasons = list(pruner.DG.lock_reasons) + list(getattr(heads, "problems", []))
    needs_grad = plan.importance in GRADIENT_CRITERIA
    calib = resolve(calibration, example_inputs, plan.importance) if needs_grad else None
    steps = plan.iterative_steps
    done = 0
    try:
        for step in range(steps):
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled before step {step + 1} of {steps}")
            if calib is not None:
                compute_grads(model, calib)  # re-scored on the current weights every step
            plans = pruner.plan_step()
            total = done + len(plans) * (steps - step)  # later steps: estimated alike
            names: dict[str, list[GroupPlan]] = {}
            for p in plans:
                names.setdefault(p.root_name, []).append(p)
            groups = pruner.step(interactive=True)
            try:
                for group in groups:
                    if cancel is not None and cancel():
                        raise Cancelled(f"cancelled during step {step + 1} of {steps}")
                    root = group[0].dep.target.module
                    name = pruner.DG.module2name.get(root, group[0].dep.target.name)
                    group.prune()
                    done += 1
                    if names.get(name):
                        record.applied.append(names[name].pop(0))
                    if progress is not None:
                        progress(done, max(total, done), f"step {step + 1}/{steps}: pruned "
                                 f"the group of {name}")
            finally:
                groups.close()  # the pruner records its history now, even when cancelled
            record.steps_done = step + 1
    finally:
        if calib is not None:
            clear_grads(model)
        record.history = pruner.pruning_history()
    if progress is not None:
        progress(done, done, "done")
    return record.applied


def apply_plan(
    model: nn.Module,
    example_inputs: Any,
    plan: PruningPlan,
    *,
    dependency_graph: DependencyGraph | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    calibration: Calibration | None = None,
    num_heads: dict[nn.Module, int] | None = None,
) -> PruneOutcome:
    """Prune `model` IN PLACE as `plan` says (callers copy first); Cancelled if cancel().

    `num_heads` ({attention layer: heads}) is passed to the pruner for head-aware plans.
    """
    plan.validate(model)  # before the (slower) counting below
    macs_before, params_before = count_ops_and_params(model, example_inputs)
    widths = attention_widths(model)
    record = RunRecord()
    run_plan(model, example_inputs, plan, dependency_graph=dependency_graph, progress=progress,
             cancel=cancel, calibration=calibration, num_heads=num_heads, record=record)
    macs_after, params_after = count_ops_and_params(model, example_inputs)
    attention = attention_report(widths, model, record.lock_reasons) if widths else None
    return PruneOutcome(exact_number(macs_before), exact_number(macs_after), int(params_before),
                        int(params_after), record.steps_done, record.history, attention)
