"""The open document as plain data: what the GUI shows, produced by a background load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.graph.summary import GraphSummary, GroupInfo, NodeInfo

DEMO_SOURCE = "arborist:demo"


@dataclass
class Document:
    source: str  # a file path or a zoo spec ("arborist:demo", "torchvision:resnet18")
    title: str
    summary: GraphSummary
    input_spec: str  # e.g. "1,3,224,224"
    description: str = ""
    notes: list[str] = field(default_factory=list)  # warnings worth a status-bar line
    # Opaque engine handles kept for preview/prune later; the GUI never inspects them.
    model: Any = None
    graph: Any = None
    example_inputs: Any = None
    arch: str | None = None  # zoo spec the model was built from, for safe checkpoints
    pruned: bool = False  # the model is the result of an accepted pruning run
    pruning_history: list = field(default_factory=list)  # plain data, for safe checkpoints

    def __post_init__(self) -> None:
        self._by_id = {n.id: n for n in self.summary.nodes}
        self._by_name = {n.name: n for n in self.summary.nodes}

    def node(self, node_id: int) -> NodeInfo | None:
        return self._by_id.get(node_id)

    def node_by_name(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def group(self, group_id: int) -> GroupInfo | None:
        return next((g for g in self.summary.groups if g.id == group_id), None)

    def group_node_ids(self, group: GroupInfo) -> set[int]:
        """Summary ids of a group's members (names the summary lacks are skipped)."""
        names = {m.node for m in group.members} | {group.root}
        return {self._by_name[n].id for n in names if n in self._by_name}

    def groups_of(self, name: str) -> list[GroupInfo]:
        """Groups touching a layer, the one it roots first."""
        groups = self.summary.groups
        rooted = [g for g in groups if g.root == name]
        member = [g for g in groups if g.root != name and any(m.node == name for m in g.members)]
        return rooted + member
