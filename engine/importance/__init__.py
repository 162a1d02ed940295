"""Importance criteria (Torch-Pruning's ``tp.importance``): Group -> score per root channel."""

from .base import GroupScorer, Importance, lamp, normalize, reduce
from .gradient import (
    GroupHessianImportance,
    GroupTaylorImportance,
    HessianImportance,
    TaylorImportance,
)
from .magnitude import (
    BNScaleImportance,
    GroupMagnitudeImportance,
    LAMPImportance,
    MagnitudeImportance,
)
from .random import RandomImportance

__all__ = [
    "Importance",
    "GroupScorer",
    "GroupMagnitudeImportance",
    "MagnitudeImportance",
    "GroupTaylorImportance",
    "TaylorImportance",
    "GroupHessianImportance",
    "HessianImportance",
    "BNScaleImportance",
    "LAMPImportance",
    "RandomImportance",
    "normalize",
    "reduce",
    "lamp",
]
