"""Torch-Pruning's `tp.pruner.function`: the layer pruners and `prune_*` functions.

They live in engine.function; this module only gives them Torch-Pruning's import path.
"""

from ..function import *  # noqa: F403
from ..function import BasePruningFunc, __all__  # noqa: F401
