"""Collapse module subtrees (a ResNet stage, a transformer block) into block nodes. No Qt.

The canvas shows a `ViewGraph`, not the raw summary: a summary node is drawn
either as itself or folded into the block of the outermost collapsed module that
contains it. Edges are re-routed to the blocks; edges inside a block vanish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.graph.summary import NodeInfo

BLOCK_KIND = "Block"


@dataclass(frozen=True)
class ViewNode:
    id: int  # the summary node id, or a negative id for a block
    name: str
    kind: str
    is_layer: bool
    in_channels: int | None = None
    out_channels: int | None = None
    params: int = 0
    member_ids: tuple[int, ...] = ()  # summary node ids folded into this block

    @property
    def is_block(self) -> bool:
        return bool(self.member_ids)


@dataclass
class ViewGraph:
    nodes: list[ViewNode] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)  # summary id -> view node id
    collapsed: frozenset[str] = frozenset()


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def containers(node: NodeInfo) -> list[str]:
    """Module paths enclosing a node, outermost first ("layer1", "layer1.0")."""
    # A layer's name is its own module path; an op lives in its module_path.
    base = _parent(node.name) if node.is_layer else node.module_path
    if not base:
        return []
    parts = base.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def block_paths(nodes: Sequence[NodeInfo]) -> dict[str, int]:
    """Every module path that encloses at least two nodes, with its node count."""
    counts: dict[str, int] = {}
    for node in nodes:
        for path in containers(node):
            counts[path] = counts.get(path, 0) + 1
    return {p: c for p, c in sorted(counts.items()) if c >= 2}


def paths_at_depth(nodes: Sequence[NodeInfo], depth: int) -> set[str]:
    return {p for p in block_paths(nodes) if p.count(".") == depth - 1}


def collapse(
    nodes: Sequence[NodeInfo], edges: Iterable[tuple[int, int]], collapsed: Iterable[str] = ()
) -> ViewGraph:
    """Fold every node inside a collapsed module path into one block node."""
    all_blocks = block_paths(nodes)
    block_id = {p: -(i + 1) for i, p in enumerate(all_blocks)}
    wanted = {p for p in collapsed if p in all_blocks}
    members: dict[str, list[NodeInfo]] = {}
    owner: dict[int, int] = {}
    order: list[
        tuple[str, object]
    ] = []  # keeps the summary order; a block where its first member was
    for node in nodes:
        outer = next((p for p in containers(node) if p in wanted), None)
        if outer is None:
            owner[node.id] = node.id
            order.append(("node", node))
        else:
            owner[node.id] = block_id[outer]
            if outer not in members:
                members[outer] = []
                order.append(("block", outer))
            members[outer].append(node)
    view_nodes: list[ViewNode] = []
    for what, item in order:
        if what == "node":
            n: NodeInfo = item  # type: ignore[assignment]
            view_nodes.append(
                ViewNode(n.id, n.name, n.kind, n.is_layer, n.in_channels, n.out_channels, n.params)
            )
        else:
            path: str = item  # type: ignore[assignment]
            inner = members[path]
            layers = [m for m in inner if m.is_layer]
            view_nodes.append(
                ViewNode(
                    id=block_id[path],
                    name=path,
                    kind=BLOCK_KIND,
                    is_layer=False,
                    in_channels=next((m.in_channels for m in layers if m.in_channels), None),
                    out_channels=next(
                        (m.out_channels for m in reversed(layers) if m.out_channels), None
                    ),
                    params=sum(m.params for m in inner),
                    member_ids=tuple(m.id for m in inner),
                )
            )
    seen: set[tuple[int, int]] = set()
    view_edges: list[tuple[int, int]] = []
    for s, d in edges:
        if s not in owner or d not in owner:
            continue
        e = (owner[s], owner[d])
        if e[0] != e[1] and e not in seen:
            seen.add(e)
            view_edges.append(e)
    return ViewGraph(view_nodes, view_edges, owner, frozenset(wanted))


def auto_collapse(nodes: Sequence[NodeInfo], max_nodes: int) -> set[str]:
    """The least collapsing (deepest module level) that brings the view under max_nodes."""
    if len(nodes) <= max_nodes:
        return set()
    blocks = block_paths(nodes)
    if not blocks:
        return set()
    best: set[str] = set()
    for depth in range(1, max(p.count(".") for p in blocks) + 2):
        level = {p for p in blocks if p.count(".") == depth - 1}
        if not level:
            break
        shown = len(nodes) - sum(blocks[p] for p in level) + len(level)
        if shown <= max_nodes or not best:
            best = level
        if shown > max_nodes:
            break
    return best
