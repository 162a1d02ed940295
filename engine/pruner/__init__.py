"""Pruners (Torch-Pruning's ``tp.pruner``): scopes, schedules, plans and regularizers.

Like Torch-Pruning's, this namespace also holds the layer pruning functions
(``tp.pruner.BasePruningFunc``, ``tp.pruner.prune_conv_out_channels``, ...) and the
importance criteria (``tp.pruner.importance``).
"""

from .. import importance
from ..function import *  # noqa: F403  (Torch-Pruning's tp.pruner.function names)
from ..function import BasePruningFunc
from . import algorithms, function
from .algorithms import MetaPruner
from .allocation import Candidate, allocate
from .base_pruner import BasePruner
from .plan import GroupPlan, MemberPlan
from .plan_cache import PlanCache
from .regularized import BNScalePruner, GroupNormPruner, GrowingRegPruner, MagnitudePruner
from .scheduler import linear_scheduler
from .serialization import load_state_dict, state_dict

__all__ = [
    "BasePruner",
    "BasePruningFunc",
    "MagnitudePruner",
    "MetaPruner",
    "BNScalePruner",
    "GroupNormPruner",
    "GrowingRegPruner",
    "GroupPlan",
    "MemberPlan",
    "PlanCache",
    "Candidate",
    "algorithms",
    "allocate",
    "function",
    "importance",
    "linear_scheduler",
    "state_dict",
    "load_state_dict",
]
