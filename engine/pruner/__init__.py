"""Pruners (Torch-Pruning's ``tp.pruner``): scopes, schedules, plans and regularizers."""

from .allocation import Candidate, allocate
from .base_pruner import BasePruner
from .plan import GroupPlan, MemberPlan
from .regularized import BNScalePruner, GroupNormPruner, GrowingRegPruner, MagnitudePruner
from .scheduler import linear_scheduler
from .serialization import load_state_dict, state_dict

__all__ = [
    "BasePruner",
    "MagnitudePruner",
    "BNScalePruner",
    "GroupNormPruner",
    "GrowingRegPruner",
    "GroupPlan",
    "MemberPlan",
    "Candidate",
    "allocate",
    "linear_scheduler",
    "state_dict",
    "load_state_dict",
]
