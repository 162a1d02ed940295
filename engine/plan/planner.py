"""Planner: per-group ratios for a MACs, params or latency target, from sensitivity curves.

Method (docs/planning.md): greedy descent over the scan curves. Every unit (group or
user scope) starts unpruned; each move advances ONE unit to a later point of its curve,
the one with the smallest fidelity lost per unit of cost saved (MACs, params or
predicted ms, measured for that unit alone). After every move the combined plan is
checked EXACTLY (preview for MACs/params, the latency model for ms), because coupled
groups do not save additively (a conv between two pruned groups). Once the target is
met, a back-off pass undoes steps that are no longer needed. The path of plans the
descent visits is the candidate Pareto front the GUI shows.

Why greedy and not a knapsack: the losses are only approximately additive and the
costs not at all, so an exact knapsack optimum over wrong sums buys nothing, while
greedy with an exact check per move always returns a plan that provably meets the
target (MACs counted, not estimated) in a few dozen previews.

Depth moves (opt-in, `block_costs`): removing a whole residual block is one more kind
of move, priced like a width step by its fidelity lost (`depth_cost.block_costs`, the
scan's measure with that block skipped alone) per unit of cost its removal saves alone
(an exact preview with just that block in `drop_blocks`). The result is still an
ordinary plan: the chosen blocks land in `drop_blocks`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

from .depth_cost import BlockCost
from .preview import Preview, Previewer
from .scan import ScanCurve, ScanResult
from .schema import PlanError, PruningPlan, UserScope

TargetKind = Literal["macs", "params", "latency"]
Cost = Callable[[PruningPlan], float]


@dataclasses.dataclass(frozen=True)
class Target:
    """keep `value` of the MACs/params (a fraction), or a latency budget in ms."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("macs", "params", "latency"):
            raise PlanError(f"target: must be macs, params or latency, got {self.kind!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or \
                not math.isfinite(self.value) or self.value <= 0:
            raise PlanError(f"target value {self.value!r} must be a positive number")
        if self.kind != "latency" and self.value > 1:
            raise PlanError(f"keep-{self.kind}: {self.value} must be a fraction in (0, 1]")


@dataclasses.dataclass
class Prediction:
    """What the scan predicts for a combined plan (sums of the units' own losses)."""

    kl: float
    agreement: float
    accuracy: float | None


@dataclasses.dataclass
class Candidate:
    """One plan on the descent path (a point of the Pareto chart)."""

    ratios: dict[str, float]
    macs_ratio: float
    params_ratio: float
    latency_ms: float | None
    prediction: Prediction
    dropped: list[str] = dataclasses.field(default_factory=list)  # blocks removed (depth)


@dataclasses.dataclass
class PlanResult:
    plan: PruningPlan
    preview: Preview
    achieved: float  # fraction kept, or predicted ms
    prediction: Prediction
    latency_ms: float | None
    candidates: list[Candidate]
    suggested_steps: int
    checks: int  # exact previews/predictions run
    measured_latency_ms: float | None = None  # set by a closed-loop latency plan

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs_before": self.preview.macs_before, "macs_after": self.preview.macs_after,
            "macs_ratio": self.preview.macs_ratio, "params_before": self.preview.params_before,
            "params_after": self.preview.params_after,
            "params_ratio": self.preview.params_ratio, "achieved": self.achieved,
            "predicted": dataclasses.asdict(self.prediction),
            "predicted_latency_ms": self.latency_ms,
            "measured_latency_ms": self.measured_latency_ms,
            "suggested_steps": self.suggested_steps,
            "checks": self.checks,
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
        }


def plan_from_ratios(base: PruningPlan, scan: ScanResult, ratios: dict[str, float],
                     steps: int = 1, drop_blocks: list[str] | None = None) -> PruningPlan:
    """An ordinary, editable plan: one group_ratios entry (or scope) per pruned unit;
    `drop_blocks` replaces the base plan's removed blocks when given."""
    group_ratios: dict[str, float] = {}
    scopes: list[UserScope] = []
    for curve in scan.curves:
        r = ratios.get(curve.name, 0.0)
        if curve.kind == "scope":
            scopes.append(UserScope(list(curve.layers), r, curve.name))
        elif curve.kind == "class" and r > 0:  # an isomorphic class: each member at r
            group_ratios.update({root: r for root in curve.layers})
        elif r > 0:
            group_ratios[curve.name] = r
    blocks = list(base.drop_blocks) if drop_blocks is None else list(drop_blocks)
    return base.replace(pruning_ratio=0.0, layer_ratios={}, group_ratios=group_ratios,
                        scopes=scopes, global_pruning=False, isomorphic=False,
                        iterative_steps=steps, drop_blocks=blocks)


def predict(scan: ScanResult, idx: dict[str, int],
            dropped: list[BlockCost] | tuple[BlockCost, ...] = ()) -> Prediction:
    """Sum of the units' (and removed blocks') own losses (first-order: small,
    independent perturbations)."""
    kl, disagree, acc_drop = 0.0, 0.0, 0.0
    for b in dropped:
        kl += b.kl
        disagree += 1.0 - b.agreement
        if scan.accuracy_before is not None and b.accuracy is not None:
            acc_drop += scan.accuracy_before - b.accuracy
    for c in scan.curves:
        i = idx.get(c.name, 0)
        if i == 0:
            continue
        p = c.points[i - 1]
        kl += p.kl
        disagree += 1.0 - p.agreement
        if scan.accuracy_before is not None and p.accuracy is not None:
            acc_drop += scan.accuracy_before - p.accuracy
    acc = None if scan.accuracy_before is None else max(0.0, scan.accuracy_before - acc_drop)
    return Prediction(kl, max(0.0, 1.0 - disagree), acc)


def suggest_steps(ratios: dict[str, float], per_step: float = 0.3) -> int:
    """Prune -> recover steps so no step removes more than `per_step` of any unit."""
    top = max(ratios.values(), default=0.0)
    return max(1, math.ceil(top / per_step - 1e-9))


def plan_for_target(
    scan: ScanResult,
    previewer: Previewer,
    target: Target,
    *,
    base: PruningPlan | None = None,
    latency: Cost | None = None,
    metric: Literal["kl", "agreement"] = "kl",
    max_unit_ratio: float = 0.6,
    iterative: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    block_costs: dict[str, BlockCost] | None = None,
) -> PlanResult:
    """The plan that meets `target` with the least predicted fidelity loss (greedy).

    `base` (default: the plan the scan was made with) gives criterion, round_to, max ratio
    and ignored layers; its ratios are replaced. `latency(plan) -> ms` is required for a
    latency target and, if given, reported for every candidate. `iterative=True` sets
    `iterative_steps` to the suggested prune -> recover schedule (predictions stay the
    one-shot ones). `max_unit_ratio` caps every unit below the base plan's own cap: the
    scan measures one-shot fidelity, and a group cut deeper than ~60 % at once becomes a
    bottleneck that recovery cannot repair (docs/planning.md); raise it for one-shot use.
    `block_costs` (block name -> BlockCost) allows depth moves: removing those blocks
    whole; blocks the base plan already drops stay dropped and are not priced.
    """
    if base is None:
        base = PruningPlan.from_dict(scan.base_plan) if scan.base_plan else PruningPlan()
    if target.kind == "latency" and latency is None:
        raise PlanError("a latency target needs a latency model for the device")
    curves = _usable(scan, base, max_unit_ratio)
    fixed = list(base.drop_blocks)
    ignored = set(base.ignored_layers)
    blocks = [b for name, b in (block_costs or {}).items()
              if name not in fixed and name not in ignored
              and not any(name.startswith(i + ".") for i in ignored)]
    if not curves and not blocks:
        raise PlanError("the scan found nothing prunable")
    checks = 0

    def ratios_of(idx: dict[str, int]) -> dict[str, float]:
        return {c.name: c.points[idx[c.name] - 1].ratio for c in curves if idx[c.name]}

    def dropped_of(gone: set[str]) -> list[str]:
        return fixed + [b.name for b in blocks if b.name in gone]  # model order

    def plan_of(idx: dict[str, int], gone: set[str]) -> PruningPlan:
        return plan_from_ratios(base, scan, ratios_of(idx), drop_blocks=dropped_of(gone))

    def exact(idx: dict[str, int], gone: set[str]) -> tuple[float, Preview, float | None]:
        nonlocal checks
        checks += 1
        plan = plan_of(idx, gone)
        pv = previewer.preview(plan)
        ms = latency(plan) if latency is not None else None
        if target.kind == "macs":
            return pv.macs_ratio, pv, ms
        if target.kind == "params":
            return pv.params_ratio, pv, ms
        return float(ms), pv, ms  # type: ignore[arg-type]

    def forecast(idx: dict[str, int], gone: set[str]) -> Prediction:
        return predict(scan, idx, [b for b in blocks if b.name in gone])

    def candidate(idx: dict[str, int], gone: set[str], pv: Preview,
                  ms: float | None) -> Candidate:
        return Candidate(ratios_of(idx), pv.macs_ratio, pv.params_ratio, ms,
                         forecast(idx, gone), dropped_of(gone))

    single: dict[tuple[str, int], float] = {}

    def saved(c: ScanCurve, i: int) -> float:
        """Cost saved by this unit alone at point i (fraction, or ms)."""
        if i == 0:
            return 0.0
        if (c.name, i) not in single:
            p = c.points[i - 1]
            if target.kind == "macs":
                single[(c.name, i)] = 1.0 - p.macs / scan.macs_before
            elif target.kind == "params":
                single[(c.name, i)] = 1.0 - p.params / scan.params_before
            else:
                one = {x.name: 0 for x in curves}
                one[c.name] = i
                single[(c.name, i)] = base_ms - float(latency(plan_of(one, set())))  # type: ignore
        return single[(c.name, i)]

    block_saved: dict[str, float] = {}

    def saved_by_block(name: str) -> float:
        """Cost saved by removing this block alone (an exact preview, once per block)."""
        if name not in block_saved:
            k1, _, _ = exact({c.name: 0 for c in curves}, {name})
            block_saved[name] = (base_kept - k1) if target.kind != "latency" else base_ms - k1
        return block_saved[name]

    idx = {c.name: 0 for c in curves}
    gone: set[str] = set()
    kept, pv, ms = exact(idx, gone)
    base_ms = ms if ms is not None else 0.0
    base_kept = kept
    goal = target.value
    candidates = [candidate(idx, gone, pv, ms)]
    limit = sum(len(c.points) for c in curves) + len(blocks)
    while kept > goal + 1e-12:
        best: tuple[float, float, str, int] | None = None
        for c in curves:
            i = idx[c.name]
            for j in range(i + 1, len(c.points) + 1):
                d_save = saved(c, j) - saved(c, i)
                if d_save <= 1e-12:
                    continue
                d_loss = c.loss(j, metric) - c.loss(i, metric)
                key = (d_loss / d_save, -d_save, c.name, j)
                if best is None or key < best:
                    best = key
        for b in blocks:
            if b.name in gone:
                continue
            d_save = saved_by_block(b.name)
            if d_save <= 1e-12:
                continue
            key = (max(0.0, b.loss(metric)) / d_save, -d_save, b.name, -1)  # -1: a depth move
            if best is None or key < best:
                best = key
        if best is None:
            raise PlanError(f"target {target.kind} {goal:g} cannot be reached with these "
                            f"groups, ratios and limits (best: {kept:.4g}); allow higher "
                            "ratios or fewer ignored layers")
        if best[3] == -1:
            gone = gone | {best[2]}
        else:
            idx[best[2]] = best[3]
        kept, pv, ms = exact(idx, gone)
        candidates.append(candidate(idx, gone, pv, ms))
        if progress is not None:
            progress(min(len(candidates), limit), limit, f"{target.kind} kept {kept:.4g}")
    # back-off: undo single steps (or block removals) the exact check shows are not needed
    improved = True
    while improved:
        improved = False
        options = [(c.loss(idx[c.name], metric) - c.loss(idx[c.name] - 1, metric), c.name, 0)
                   for c in curves if idx[c.name] > 0]
        options += [(b.loss(metric), b.name, 1) for b in blocks if b.name in gone]
        for gain, name, is_block in sorted(options, reverse=True):
            if gain <= 0:
                break
            trial, trial_gone = dict(idx), set(gone)
            if is_block:
                trial_gone.discard(name)
            else:
                trial[name] -= 1
            k2, pv2, ms2 = exact(trial, trial_gone)
            if k2 <= goal + 1e-12:
                idx, gone, kept, pv, ms = trial, trial_gone, k2, pv2, ms2
                candidates.append(candidate(idx, gone, pv, ms))
                improved = True
                break
    ratios = ratios_of(idx)
    steps = suggest_steps(ratios)
    plan = plan_from_ratios(base, scan, ratios, steps if iterative else 1,
                            drop_blocks=dropped_of(gone))
    return PlanResult(plan, pv, kept, forecast(idx, gone), ms, candidates, steps, checks)


def _usable(scan: ScanResult, base: PruningPlan, cap: float = 1.0) -> list[ScanCurve]:
    """Curves the base plan allows: no ignored layers, no point above its max ratio."""
    cap = min(cap, base.max_pruning_ratio)
    ignored = set(base.ignored_layers)
    out = []
    for c in scan.curves:
        if any(n in ignored or any(n.startswith(i + ".") for i in ignored) for n in c.layers):
            continue
        points = [p for p in c.points if p.ratio <= cap + 1e-9]
        if points:
            out.append(dataclasses.replace(c, points=points))
    return out


def pareto(candidates: list[Candidate], cost: str = "macs") -> list[Candidate]:
    """The candidates no other one beats on both cost and predicted KL."""
    def c_of(c: Candidate) -> float:
        return c.latency_ms if cost == "latency" and c.latency_ms is not None else c.macs_ratio

    out: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c_of(c), c.prediction.kl)):
        if not out or c.prediction.kl < out[-1].prediction.kl - 1e-12:
            out.append(c)
    return out
