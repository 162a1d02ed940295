"""Dependency graph: tracing, channel coupling, groups."""

from .channel_index import ChannelIndex, PortState
from .dependency import DependencyGraph
from .group import Dependency, Derivation, Group, GroupItem, Node
from .summary import GraphSummary, summarize

__all__ = [
    "ChannelIndex",
    "DependencyGraph",
    "Derivation",
    "PortState",
    "Dependency",
    "GraphSummary",
    "Group",
    "GroupItem",
    "Node",
    "summarize",
]
