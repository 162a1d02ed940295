"""Importance criteria (Torch-Pruning's ``tp.importance``): Group -> score per root channel.

Every criterion Torch-Pruning 1.6.1 exports, with its constructor and call interface:
magnitude (group norm), BN scale, LAMP, FPGM, random, Taylor, Hessian (OBD), OBDC
(EigenDamage's empirical-Fisher OBD) and activation statistics.
"""

from .activation import ActivationImportance
from .base import GroupScorer, Importance, lamp, normalize, reduce
from .fpgm import FPGMImportance
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
from .obdc import OBDCImportance
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
    "FPGMImportance",
    "OBDCImportance",
    "ActivationImportance",
    "RandomImportance",
    "normalize",
    "reduce",
    "lamp",
]
