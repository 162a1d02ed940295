"""Dependency graph: tracing, channel coupling, groups."""

from .dependency import DependencyGraph
from .group import Dependency, Group, GroupItem, Node
from .summary import GraphSummary, summarize

__all__ = [
    "DependencyGraph",
    "Dependency",
    "GraphSummary",
    "Group",
    "GroupItem",
    "Node",
    "summarize",
]
