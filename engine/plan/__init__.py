"""The serializable pruning plan: schema, validation, exact preview, ratio solver, apply.

`app/` and the CLI reach the pruner only through a `PruningPlan` (plain data, JSON).
"""

from .apply import Cancelled, PruneOutcome, apply_plan
from .build import build_pruner
from .preview import LayerPreview, Preview, Previewer, preview_plan
from .schema import PLAN_VERSION, PlanError, PruningPlan, UserScope
from .solver import SolveResult, solve_ratio

__all__ = [
    "PLAN_VERSION",
    "PlanError",
    "PruningPlan",
    "UserScope",
    "build_pruner",
    "Previewer",
    "Preview",
    "LayerPreview",
    "preview_plan",
    "solve_ratio",
    "SolveResult",
    "apply_plan",
    "PruneOutcome",
    "Cancelled",
]
