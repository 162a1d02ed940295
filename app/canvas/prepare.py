"""Summary + collapsed paths -> what the canvas draws (ViewGraph + Layout). No Qt.

Runs on worker threads: the result is plain data the scene turns into items.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.canvas.hierarchy import ViewGraph, collapse
from app.canvas.layout import Layout, LayoutParams, layered_layout
from engine.graph.summary import GraphSummary

PARAMS = LayoutParams()
OP_SIZE = (172.0, 34.0)  # functional ops (add, cat, view) get smaller boxes than layers
# Above a few hundred nodes a fitted graph is a 1-pixel column: open with modules collapsed
# (Model Explorer opens every graph collapsed by module) and expand one level at a time.
AUTO_COLLAPSE_OVER = 300
AUTO_COLLAPSE_TARGET = 250


@dataclass
class PreparedView:
    graph: ViewGraph
    layout: Layout
    seconds: float = 0.0


def prepare_view(summary: GraphSummary, collapsed: Iterable[str] = ()) -> PreparedView:
    import time

    start = time.perf_counter()
    graph = collapse(summary.nodes, summary.edges, collapsed)
    sizes = {n.id: OP_SIZE for n in graph.nodes if not n.is_layer and not n.is_block}
    layout = layered_layout([n.id for n in graph.nodes], graph.edges, PARAMS, sizes)
    return PreparedView(graph, layout, time.perf_counter() - start)


def initial_collapse(nodes) -> set[str]:
    """The module paths a freshly opened summary starts with collapsed."""
    from app.canvas.hierarchy import auto_collapse

    return auto_collapse(nodes, AUTO_COLLAPSE_TARGET) if len(nodes) > AUTO_COLLAPSE_OVER else set()
