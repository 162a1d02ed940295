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
from ..utils.progress import Cancelled  # the shared one; apply_plan leaves its model partly pruned
from .build import build_pruner
from .calibration import (
    Calibration,
    batch_count,
    clear_grads,
    collect_activations,
    compute_grads,
    resolve,
)
from .criteria import ACTIVATION_CRITERIA, GRADIENT_CRITERIA
from .preview import exact_number
from .schema import PlanError, PruningPlan

Progress = Callable[[int, int, str], None]


class _Units:
    """Counts a run's units of work for `progress(done, total, message)`.

    Why: most of a prune's time is spent before any group is cut (counting MACs, tracing,
    scoring every group), so a bar fed only by pruned groups sits at 0 % and then jumps.
    The units are: counting before, building the pruner, one per calibration batch (data
    criteria on a DataCalibration), one per group scored and one per group pruned in each
    step, counting after. Qt-free: callers map it to their own bar.
    """

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.done = 0
        self.total = total
        self.scoring_step = 1
        self.scored = 0

    def tick(self, message: str, units: int = 1) -> None:
        self.done += units
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total, message)


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
    after_step: Callable[[int], None] | None = None,
    units: _Units | None = None,
) -> list[GroupPlan]:
    """Prune `model` in place; returns the GroupPlans applied, over all steps.

    `record` (if given) is filled as the run goes, so it is complete even when cancelled.
    `progress(done, total, message)` is called after building the pruner, after each
    calibration batch, after each group is scored and after each group is pruned, so a
    bar moves through the whole run.
    """
    record = record if record is not None else RunRecord()
    if not isinstance(plan, PruningPlan):
        raise PlanError(f"expected a PruningPlan, got {type(plan).__name__}")
    pruner = build_pruner(model, example_inputs, plan, dependency_graph=dependency_graph,
                          num_heads=num_heads)
    heads = getattr(pruner, "_heads", None)
    record.lock_reasons = list(pruner.DG.lock_reasons) + list(getattr(heads, "problems", []))
    n_groups = len(pruner._groups())
    needs_grad = plan.importance in GRADIENT_CRITERIA
    needs_acts = plan.importance in ACTIVATION_CRITERIA
    calib = (resolve(calibration, example_inputs, plan.importance)
             if needs_grad or needs_acts else None)
    n_batches = batch_count(calib)  # 0: no batch-wise pass, or its length is unknown
    per_step = n_batches + 2 * n_groups
    standalone = units is None
    if units is None:
        units = _Units(progress, 1 + per_step * plan.iterative_steps)
    else:
        units.total += per_step * plan.iterative_steps
    units.tick("built the dependency graph")
    base = units.done
    _report_scoring(pruner, units, n_groups, cancel)
    steps = plan.iterative_steps
    try:
        for step in range(steps):
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled before step {step + 1} of {steps}")
            on_batch = _batch_ticks(units, step + 1, steps, n_batches,
                                    "gradients" if needs_grad else "activations")
            if needs_grad:  # re-scored on the current weights every step
                compute_grads(model, calib, on_batch=on_batch)
            units.scoring_step, units.scored = step + 1, 0
            if needs_acts:  # statistics of the current structure, every step
                collect_activations(model, pruner.importance, calib, on_batch=on_batch)
            # batches a loader dropped (empty) still count as read
            units.done = max(units.done, base + step * per_step + n_batches)
            plans = pruner.plan_step()
            # groups the criterion skipped (no score) still count as scored
            units.done = max(units.done, base + step * per_step + n_batches + n_groups)
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
                    if names.get(name):
                        record.applied.append(names[name].pop(0))
                    units.tick(f"step {step + 1}/{steps}: pruned the group of {name}",
                               per_step_share(n_groups, len(plans)))
            finally:
                groups.close()  # the pruner records its history now, even when cancelled
            record.steps_done = step + 1
            units.done = max(units.done, base + (step + 1) * per_step)
            if after_step is not None:
                after_step(step + 1)  # e.g. recover accuracy before the next step scores
        if plan.drop_blocks:  # after width: the graph above ranked the full-depth model
            from ..depth import drop_blocks

            drop_blocks(model, plan.drop_blocks)
            units.tick(f"removed {len(plan.drop_blocks)} block(s)", 0)
    finally:
        if needs_grad:
            clear_grads(model)
        record.history = pruner.pruning_history()
    if standalone and progress is not None:
        progress(units.total, units.total, "done")
    return record.applied


def per_step_share(n_groups: int, n_cut: int) -> int:
    """Units one cut group stands for, so a step's cuts fill its n_groups prune units."""
    return max(1, n_groups // max(n_cut, 1))


def _batch_ticks(units: _Units, step: int, steps: int, n_batches: int,
                 what: str) -> Callable[[int, int], None]:
    """The calibration pass's per-batch callback: one unit per budgeted batch; a batch
    beyond the budget (length unknown) only updates the message."""

    def on_batch(done: int, of: int) -> None:
        label = f"batch {done}/{of}" if of else f"batch {done}"
        units.tick(f"step {step}/{steps}: calibration {label} ({what})",
                   1 if done <= n_batches else 0)

    return on_batch


def _report_scoring(pruner: Any, units: _Units, n_groups: int,
                    cancel: Callable[[], bool] | None) -> None:
    """Wrap this pruner's estimate_importance (an instance attribute, nothing global) so
    each scored group ticks the bar; a cancel stops the scoring between groups."""
    score = pruner.estimate_importance
    units.scoring_step = 1

    def counted(group: Any) -> Any:
        if cancel is not None and cancel():
            raise Cancelled("cancelled while scoring")
        out = score(group)
        units.scored += 1
        units.tick(f"step {units.scoring_step}: scored group {units.scored} of {n_groups}")
        return out

    pruner.estimate_importance = counted


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
    after_step: Callable[[int], None] | None = None,
) -> PruneOutcome:
    """Prune `model` IN PLACE as `plan` says (callers copy first); Cancelled if cancel().

    `num_heads` ({attention layer: heads}) is passed to the pruner for head-aware plans.
    `after_step(step)` runs after each iterative step (1-based): where recovery goes.
    """
    plan.validate(model)  # before the (slower) counting below
    units = _Units(progress, 3)
    if progress is not None:
        progress(0, 3, "counting MACs and parameters")
    macs_before, params_before = count_ops_and_params(model, example_inputs)
    units.done = 1  # reported with the next tick, once the number of groups is known
    widths = attention_widths(model)
    record = RunRecord()
    run_plan(model, example_inputs, plan, dependency_graph=dependency_graph, progress=progress,
             cancel=cancel, calibration=calibration, num_heads=num_heads, record=record,
             after_step=after_step, units=units)
    macs_after, params_after = count_ops_and_params(model, example_inputs)
    units.done = units.total - 1
    units.tick("done")
    attention = attention_report(widths, model, record.lock_reasons) if widths else None
    return PruneOutcome(exact_number(macs_before), exact_number(macs_after), int(params_before),
                        int(params_after), record.steps_done, record.history, attention)
