"""Plain-data picture of a traced dependency graph, for the GUI, the CLI and JSON.

Nothing here references torch objects: a summary can cross threads, be pickled,
or be written as JSON, which is what lets the front end stay out of graph internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeInfo:
    """One node of the graph as a user sees it: a layer or a functional op."""

    id: int
    name: str  # module path for layers ("layer1.0.conv1"), generated for ops ("add_3")
    kind: str  # layer class name ("Conv2d") or op name ("add", "cat", "view")
    is_layer: bool  # True for nn.Module layers with parameters/pruners
    module_path: str  # dotted path of the owning module ("" for the root model)
    in_channels: int | None = None
    out_channels: int | None = None
    params: int = 0


@dataclass(frozen=True)
class GroupMember:
    node: str  # NodeInfo.name
    handler: str  # pruning function name, e.g. "prune_conv_out_channels"
    channels: int  # how many channels of this member the group touches
    kind: str = "out"  # "out": the group prunes its out-channels (what ratio scopes match)


@dataclass(frozen=True)
class GroupInfo:
    """A set of coupled layers that must be pruned together."""

    id: int
    root: str  # NodeInfo.name of the root layer
    channels: int  # prunable channels of the root
    members: tuple[GroupMember, ...] = ()


@dataclass
class GraphSummary:
    nodes: list[NodeInfo] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)  # (src id, dst id)
    groups: list[GroupInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(dg: Any, ignored_layers: Any = None) -> GraphSummary:
    """Plain-data picture of a built DependencyGraph (nodes, edges, prunable groups)."""
    import torch.nn as nn

    from ..function import handler_name

    nodes: list[NodeInfo] = []
    for node in dg.nodes:
        module = node.module
        is_layer = isinstance(module, nn.Module)
        params = 0
        if is_layer:
            params = sum(p.numel() for p in module.parameters(recurse=False))
        elif module is not None:  # an unwrapped parameter
            params = module.numel()
        nodes.append(
            NodeInfo(
                id=node.id,
                name=node.name,
                kind=node.op,
                is_layer=is_layer,
                module_path=node.module_path,
                in_channels=dg.get_in_channels(module) if is_layer else None,
                out_channels=dg.get_out_channels(module) if module is not None else None,
                params=params,
            )
        )
    edges = [(src.id, node.id) for node in dg.nodes for src in node.inputs]
    groups: list[GroupInfo] = []
    for k, group in enumerate(dg.get_all_groups(ignored_layers=ignored_layers)):
        members = tuple(
            GroupMember(dep.target.name, handler_name(dep.handler), len(idxs), dep.kind)
            for dep, idxs in group
        )
        groups.append(GroupInfo(k, group[0].dep.target.name, len(group[0].idxs), members))
    return GraphSummary(nodes, edges, groups)
