"""Torch-Pruning's `torch_pruning.pruner.algorithms` import path for the pruner classes."""

from .base_pruner import BasePruner
from .regularized import BNScalePruner, GroupNormPruner, GrowingRegPruner, MagnitudePruner

MetaPruner = BasePruner  # Torch-Pruning's deprecated alias

__all__ = ["BasePruner", "BNScalePruner", "GroupNormPruner", "GrowingRegPruner",
           "MagnitudePruner", "MetaPruner"]
