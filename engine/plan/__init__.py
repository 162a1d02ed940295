"""The serializable pruning plan: schema, validation, exact preview, ratio solver, apply.

`app/` and the CLI reach the pruner only through a `PruningPlan` (plain data, JSON).
"""

from .schema import PLAN_VERSION, PlanError, PruningPlan, UserScope

__all__ = ["PLAN_VERSION", "PlanError", "PruningPlan", "UserScope"]
