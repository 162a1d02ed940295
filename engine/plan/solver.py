"""Find the default pruning ratio that keeps a target fraction of MACs or params.

The kept fraction only falls as the ratio grows (more channels go) and moves in
steps (whole channel sets, round_to), so bisection on the ratio finds the
smallest ratio whose exact preview keeps at most `keep`. Per-layer/group ratios
and scopes in the plan stay as they are; only `pruning_ratio` is searched.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from torch import nn

from .preview import Preview, Previewer
from .schema import PlanError, PruningPlan

_HI = 1.0 - 1e-6  # pruning_ratio must stay below 1


@dataclasses.dataclass
class SolveResult:
    ratio: float
    preview: Preview
    achieved: float  # fraction of MACs/params kept


def _kept(preview: Preview, target: str) -> float:
    return preview.macs_ratio if target == "macs" else preview.params_ratio


def solve_ratio(
    previewer_or_model: Previewer | nn.Module,
    plan: PruningPlan,
    *,
    target: Literal["macs", "params"],
    keep: float,
    example_inputs: Any = None,
    tol: float = 1e-4,
) -> SolveResult:
    """Set `plan.pruning_ratio` so the kept fraction is as close to `keep` as possible
    without exceeding it (unless even the largest ratio keeps more); returns what it got.

    `tol` is the ratio resolution of the search (about 14 previews at 1e-4). Plans with
    `iterative_steps > 1` preview by pruning a real copy, so each probe costs a full prune.
    """
    if target not in ("macs", "params"):
        raise PlanError(f"target: must be 'macs' or 'params', got {target!r}")
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < keep <= 1.0:
        raise PlanError(f"keep: {keep!r} must be a fraction in (0, 1]")
    if isinstance(previewer_or_model, Previewer):
        previewer = previewer_or_model
    else:
        if example_inputs is None:
            raise PlanError("example_inputs are needed when solving on a model (or pass a "
                            "Previewer)")
        previewer = Previewer(previewer_or_model, example_inputs)

    cache: dict[float, Preview] = {}

    def at(ratio: float) -> Preview:
        if ratio not in cache:
            cache[ratio] = previewer.preview(dataclasses.replace(plan, pruning_ratio=ratio))
        return cache[ratio]

    lo, hi = 0.0, _HI
    if _kept(at(lo), target) <= keep:
        hi = lo
    elif _kept(at(hi), target) > keep:
        # impossible: keep the ratio that gets closest (smallest ratio reaching that floor)
        floor = _kept(at(hi), target)
        lo2, hi2 = 0.0, hi
        while hi2 - lo2 > tol:
            mid = (lo2 + hi2) / 2
            if _kept(at(mid), target) <= floor:
                hi2 = mid
            else:
                lo2 = mid
        hi = hi2
    else:
        while hi - lo > tol:  # invariant: kept(lo) > keep >= kept(hi)
            mid = (lo + hi) / 2
            if _kept(at(mid), target) <= keep:
                hi = mid
            else:
                lo = mid
    ratio = _tidy(hi, _kept(at(hi), target), target, at)
    plan.pruning_ratio = ratio
    result = at(ratio)
    return SolveResult(ratio, result, _kept(result, target))


def _tidy(ratio: float, achieved: float, target: str, at: Any) -> float:
    """The shortest decimal >= ratio that keeps exactly the same result (0.4375 not 0.43751)."""
    for digits in (2, 3, 4, 5, 6):
        r = math.ceil(ratio * 10**digits - 1e-9) / 10**digits
        if r < 1.0 and _kept(at(r), target) == achieved:
            return r
    return ratio
