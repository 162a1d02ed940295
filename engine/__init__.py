"""Arborist engine: structural pruning with dependency graphs, in pure PyTorch.

`import engine as tp` gives the names a Torch-Pruning user knows.
"""

from . import function, importance, pruner, utils
from .function import *  # noqa: F403  (prune_conv_out_channels, ... like tp.*)
from .function import BasePruningFunc
from .graph import Dependency, DependencyGraph, Group, GroupItem, Node
from .pruner.serialization import load_state_dict, state_dict

__all__ = [
    "BasePruningFunc",
    "Dependency",
    "DependencyGraph",
    "Group",
    "GroupItem",
    "Node",
    "function",
    "importance",
    "pruner",
    "state_dict",
    "load_state_dict",
    "utils",
] + [n for n in dir(function) if n.startswith("prune_") and n.endswith("_channels")]
