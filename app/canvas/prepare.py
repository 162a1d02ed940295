"""Summary + collapsed paths -> what the canvas draws (ViewGraph + Layout). No Qt.

Runs on worker threads: the result is plain data the scene turns into items.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.canvas.hierarchy import ViewGraph, collapse
from app.canvas.layout import Layout, LayoutParams, layered_layout
from app.canvas.names import label_core
from engine.graph.summary import GraphSummary

PARAMS = LayoutParams()
OP_SIZE = (172.0, 34.0)  # functional ops (add, cat, view) get smaller boxes than layers
# Boxes grow (up to MAX_NODE_WIDTH) until a name's indexed part fits whole: a 216-px box
# showed "…ock1.denselayer1.norm1" on DenseNet. Measured on the 10 pt bold title font
# (…denseblock3.denselayer12.conv1: 257 px, 8.3 px a character), with some margin; no
# font metrics here (worker thread), the item still shortens what does not fit.
LABEL_PX_PER_CHAR = 8.5
LABEL_PAD = 22.0  # the box's stripe and text margins (NodeItem: STRIPE + 16)
MAX_NODE_WIDTH = 300.0
# A collapsed block's second line is "MACs 142.5M ⇒ 35.9M · params 45.4k ⇒ 11.2k" (~265 px
# at 8.5 pt): at 216 px its params were cut to "params 4…"
BLOCK_MIN_WIDTH = 292.0
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
    sizes = {n.id: node_size(n) for n in graph.nodes}
    layout = layered_layout([n.id for n in graph.nodes], graph.edges, PARAMS, sizes)
    return PreparedView(graph, layout, time.perf_counter() - start)


def node_size(node) -> tuple[float, float]:
    """A box wide enough for the part of its name that tells it apart, within limits."""
    op = not node.is_layer and not node.is_block
    w, h = OP_SIZE if op else (PARAMS.node_width, PARAMS.node_height)
    if node.is_block:
        w = BLOCK_MIN_WIDTH
    want = LABEL_PAD + LABEL_PX_PER_CHAR * len(label_core(node.name or node.kind))
    return (min(MAX_NODE_WIDTH, max(w, want)), h)


def initial_collapse(nodes) -> set[str]:
    """The module paths a freshly opened summary starts with collapsed."""
    from app.canvas.hierarchy import auto_collapse

    return auto_collapse(nodes, AUTO_COLLAPSE_TARGET) if len(nodes) > AUTO_COLLAPSE_OVER else set()
