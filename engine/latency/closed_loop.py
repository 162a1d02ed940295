"""Planning for a latency budget closed-loop: plan on the prediction, measure, re-plan.

Why: a prediction within ±15 % is not a plan within ±10 % of its budget. As NetAdapt
does, the planned model is built and timed on the device; the ratio measured /
predicted then corrects the target the planner aims at (budget / ratio), and the
planner runs again, until the measured time is within `tolerance` of the budget or the
iterations are spent. The plan returned is the one measured closest to the budget
(among those at or under budget x (1 + tolerance), when any is).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from ..plan.schema import PlanError, PruningPlan
from .runners import Runner, runner_for

# ms of a pruned copy on the device (default: best-of, interleaved with the original)
Measure = Callable[[nn.Module], float]


@dataclasses.dataclass
class LoopStep:
    """One iteration: the ms the planner aimed at, what it predicted and what was measured."""

    aimed_ms: float
    predicted_ms: float
    measured_ms: float


@dataclasses.dataclass
class ClosedLoopResult:
    result: Any  # engine.plan.planner.PlanResult of the chosen step
    budget_ms: float
    predicted_ms: float
    measured_ms: float
    steps: list[LoopStep]

    @property
    def within(self) -> float:
        """measured / budget - 1."""
        return self.measured_ms / self.budget_ms - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"budget_ms": self.budget_ms, "predicted_latency_ms": self.predicted_ms,
                "measured_latency_ms": self.measured_ms, "measured_vs_budget": self.within,
                "loop": [dataclasses.asdict(s) for s in self.steps]}


def measure_pruned(model: nn.Module, inputs: Any, *, device: str = "cpu",
                   rounds: int = 15, runner: Runner | None = None) -> Measure:
    """Best-of ms of a pruned copy on `device` (its runner: ONNX Runtime for "ort"), timed
    interleaved with `model` (the load hits both alike)."""
    runner = runner or runner_for(device)
    original = copy.deepcopy(model).eval()

    def measure(pruned: nn.Module) -> float:
        return runner.time_models([original, pruned.eval()], inputs, rounds=rounds)[1]
    return measure


def plan_latency_budget(scan: Any, previewer: Any, table: Any, model: nn.Module, inputs: Any,
                        budget_ms: float, *, measure: Measure | None = None,
                        tolerance: float = 0.05, iterations: int = 4,
                        **planner: Any) -> ClosedLoopResult:
    """`plan_for_latency` with the engine's planner, predictor and pruner (CLI, GUI,
    benchmark); `planner` goes to plan_for_target (base, max_unit_ratio, iterative, ...).
    The chosen PlanResult carries the measured ms (`measured_latency_ms`)."""
    from ..plan.planner import Target, plan_for_target
    from .predict import predict_plan

    def plan(aim: float) -> Any:
        return plan_for_target(scan, previewer, Target("latency", aim),
                               latency=lambda p: predict_plan(table, previewer, p), **planner)

    out = plan_for_latency(plan, engine_builder(model, inputs),
                           measure or measure_pruned(model, inputs, device=table.device),
                           budget_ms, tolerance=tolerance, iterations=iterations)
    out.result.measured_latency_ms = out.measured_ms
    return out


def plan_for_latency(
    plan: Callable[[float], Any],
    build: Callable[[PruningPlan], nn.Module],
    measure: Measure,
    budget_ms: float,
    *,
    tolerance: float = 0.05,
    iterations: int = 4,
) -> ClosedLoopResult:
    """Closed-loop plan for `budget_ms`.

    `plan(aim_ms)` is the open-loop planner (a PlanResult whose `latency_ms` is the
    prediction); `build(plan)` the pruned copy; `measure(copy)` its ms. Raises the
    planner's PlanError only when the first, uncorrected aim is unreachable; a later
    corrected aim that is unreachable ends the loop with the best plan so far.
    """
    if budget_ms <= 0:
        raise PlanError(f"latency budget {budget_ms!r} ms must be positive")
    aim = budget_ms
    steps: list[LoopStep] = []
    tried: list[tuple[Any, LoopStep]] = []
    seen: set[tuple] = set()
    for it in range(max(1, iterations)):
        try:
            res = plan(aim)
        except PlanError:
            if it == 0:
                raise
            break
        key = tuple(sorted(res.plan.group_ratios.items()))
        predicted = float(res.latency_ms)
        if key in seen:  # the corrected aim gave a plan already measured: nothing new
            break
        seen.add(key)
        measured = float(measure(build(res.plan)))
        step = LoopStep(aim, predicted, measured)
        steps.append(step)
        tried.append((res, step))
        if abs(measured / budget_ms - 1.0) <= tolerance:
            break
        aim = budget_ms * predicted / measured  # the prediction's error, corrected out
    res, best = _best(tried, budget_ms, tolerance)
    return ClosedLoopResult(res, budget_ms, best.predicted_ms, best.measured_ms, steps)


def _best(tried: list[tuple[Any, LoopStep]], budget: float,
          tolerance: float) -> tuple[Any, LoopStep]:
    under = [t for t in tried if t[1].measured_ms <= budget * (1 + tolerance)]
    pool = under or tried
    return min(pool, key=lambda t: abs(t[1].measured_ms - budget))


def engine_builder(model: nn.Module, inputs: Any) -> Callable[[PruningPlan], nn.Module]:
    """Pruned copies of `model` with the engine's pruner (the original is untouched)."""
    from ..plan import apply_plan

    def build(plan: PruningPlan) -> nn.Module:
        clone = copy.deepcopy(model)
        apply_plan(clone, inputs, plan)
        return clone.eval()
    return build
