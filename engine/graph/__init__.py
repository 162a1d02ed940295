"""Dependency graph: tracing, channel coupling, groups."""

from .dependency import DependencyGraph
from .group import Dependency, Group, GroupItem, Node

__all__ = ["DependencyGraph", "Dependency", "Group", "GroupItem", "Node"]
