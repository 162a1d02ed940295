"""Arborist engine: structural pruning with dependency graphs, in pure PyTorch.

`import engine as tp` gives the names a Torch-Pruning user knows (its 1.6.1 top level:
the graph classes, the `prune_*` functions, the pruners, `state_dict`/`load_state_dict`,
`save`/`load`, and the `importance`, `pruner` and `utils` namespaces).
"""

import torch as _torch

from . import function, importance, pruner, utils
from .function import *  # noqa: F403  (prune_conv_out_channels, ... like tp.*)
from .function import BasePruningFunc
from .graph import Dependency, DependencyGraph, Group, GroupItem, Node
from .pruner import (
    BasePruner,
    BNScalePruner,
    GroupNormPruner,
    GrowingRegPruner,
    MagnitudePruner,
    MetaPruner,
    algorithms,
)
from .pruner.serialization import load_state_dict, state_dict

save = _torch.save  # Torch-Pruning's aliases: a pruned model is saved whole
load = _torch.load  # weights_only=True by default (PyTorch >= 2.6): pickles need opting in

# Torch-Pruning's graph constants; this graph needs no index mappings or depth limits
INDEX_MAPPING_PLACEHOLDER = None
MAX_RECURSION_DEPTH = 500
MAX_VALID_DIM = 100

__all__ = [
    "BasePruner",
    "BasePruningFunc",
    "BNScalePruner",
    "Dependency",
    "DependencyGraph",
    "Group",
    "GroupItem",
    "GroupNormPruner",
    "GrowingRegPruner",
    "INDEX_MAPPING_PLACEHOLDER",
    "MAX_RECURSION_DEPTH",
    "MAX_VALID_DIM",
    "MagnitudePruner",
    "MetaPruner",
    "Node",
    "algorithms",
    "function",
    "importance",
    "load",
    "load_state_dict",
    "pruner",
    "save",
    "state_dict",
    "utils",
] + [n for n in dir(function) if n.startswith("prune_") and n.endswith("_channels")]
