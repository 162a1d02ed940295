"""The graph scene: builds items from a ViewGraph + Layout and manages highlight state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGraphicsScene

from app.canvas.hierarchy import ViewGraph
from app.canvas.items import DetailLayer, EdgeItem, NodeItem, OverviewItem, SceneStyle
from app.canvas.layout import Layout
from app.canvas.style import LIGHT, CanvasTheme

MARGIN = 120.0


class GraphScene(QGraphicsScene):
    graphChanged = Signal()  # noqa: N815 (Qt naming)

    def __init__(self, theme: CanvasTheme = LIGHT, parent=None) -> None:
        super().__init__(parent)
        self.style = SceneStyle(theme)
        self.node_items: dict[int, NodeItem] = {}
        self.edge_items: list[EdgeItem] = []
        self.graph: ViewGraph | None = None
        self.highlighted: frozenset[int] = frozenset()
        self.current: int | None = None
        self.setBackgroundBrush(theme.background)
        self.content_rect = QRectF()  # the laid-out graph plus a margin
        self.detail: DetailLayer | None = None
        self.overview: OverviewItem | None = None
        self.overview_mode = False

    def show_graph(self, graph: ViewGraph, layout: Layout) -> None:
        """Replace the scene's contents with `graph` placed by `layout`."""
        self.clear()
        self.node_items, self.edge_items = {}, []
        self.highlighted, self.current = frozenset(), None
        self.style.dimming = False
        self.graph = graph
        self.content_rect = QRectF(
            -MARGIN, -MARGIN, layout.width + 2 * MARGIN, layout.height + 2 * MARGIN
        )
        self.detail = DetailLayer()
        self.addItem(self.detail)
        for node in graph.nodes:
            item = NodeItem(
                node, layout.positions[node.id], layout.sizes[node.id], self.style, self.detail
            )
            self.node_items[node.id] = item
        for route in layout.edges:
            edge = EdgeItem(route.src, route.dst, route.points, self.style, self.detail)
            self.edge_items.append(edge)
        self.overview = OverviewItem(self.style, self.content_rect)
        self.overview.build(list(self.node_items.values()), self.edge_items)
        self.addItem(self.overview)
        self.overview_mode = False
        self.overview.setVisible(False)
        # Room to pan past the edges, so zooming can always keep the cursor's point fixed.
        pad = 2 * max(self.content_rect.width(), self.content_rect.height()) + 4000
        self.setSceneRect(self.content_rect.adjusted(-pad, -pad, pad, pad))
        self.graphChanged.emit()

    def show_planned(self, widths: dict[str, tuple[int | None, int | None]]) -> None:
        """Planned (in, out) widths by layer name; layers not in `widths` show no change."""
        for item in self.node_items.values():
            if not item.node.is_block:
                item.set_planned(widths.get(item.node.name))

    def show_heat(self, heat: dict[str, float]) -> None:
        """Sensitivity heat (0..1) by layer name as a corner mark; {} clears it."""
        for item in self.node_items.values():
            item.set_heat(None if item.node.is_block else heat.get(item.node.name))

    def show_depth(self, state: Any, dropped: list[str]) -> None:
        """Mark removable residual blocks (DepthState) and the layers inside them; the
        plan's `dropped` blocks are drawn removed."""
        for item in self.node_items.values():
            item.set_depth(state.mark(item.node.name, dropped))

    def highlight(self, ids: Iterable[int]) -> frozenset[int]:
        """Emphasise these view nodes and the edges between them; dim the rest."""
        new = frozenset(i for i in ids if i in self.node_items)
        for nid in self.highlighted ^ new:
            self.node_items[nid].highlighted = nid in new
        for edge in self.edge_items:
            edge.highlighted = edge.src in new and edge.dst in new
        self.highlighted = new
        self.style.dimming = bool(new)
        self._sync_overview()
        self.update()
        return new

    def _sync_overview(self) -> None:
        if self.overview is not None:
            self.overview.set_highlight(
                [self.node_items[i] for i in self.highlighted],
                [e for e in self.edge_items if e.highlighted],
                self.node_items.get(self.current),
            )

    def set_overview(self, on: bool) -> None:
        """Zoomed far out: draw the prebuilt overview instead of thousands of items."""
        if on == self.overview_mode or self.detail is None:
            return
        self.overview_mode = on
        self.detail.setVisible(not on)
        self.overview.setVisible(on)

    def node_near(self, pos, tolerance: float = 0.0) -> int | None:
        """The node whose box (grown by `tolerance`) holds a scene point, nearest first.

        Used in overview mode, where items are hidden and one pixel spans many units.
        """
        best, best_d = None, float("inf")
        for nid, item in self.node_items.items():
            box = item.rect.translated(item.pos()).adjusted(
                -tolerance, -tolerance, tolerance, tolerance
            )
            if box.contains(pos):
                d = (item.pos() - pos).manhattanLength()
                if d < best_d:
                    best, best_d = nid, d
        return best

    def set_current(self, node_id: int | None) -> None:
        if self.current in self.node_items:
            self.node_items[self.current].current = False
            self.node_items[self.current].update()
        self.current = node_id if node_id in self.node_items else None
        if self.current is not None:
            self.node_items[self.current].current = True
            self.node_items[self.current].update()
        self._sync_overview()

    def set_theme(self, theme: CanvasTheme) -> None:
        self.style.set_theme(theme)
        self.setBackgroundBrush(theme.background)
        for item in self.node_items.values():
            item.color = theme.family_color(item.node.kind)
        self.update()
        self.invalidate()

    def highlighted_edges(self) -> list[tuple[int, int]]:
        return [(e.src, e.dst) for e in self.edge_items if e.highlighted]

    def find(self, text: str) -> list[int]:
        """View node ids whose name contains `text` (case-insensitive), exact matches first."""
        t = text.strip().lower()
        if not t or self.graph is None:
            return []
        exact = [n.id for n in self.graph.nodes if n.name.lower() == t]
        part = [n.id for n in self.graph.nodes if t in n.name.lower() and n.id not in exact]
        return exact + part

    def render_overview(self, painter: QPainter, target: QRectF) -> None:
        """Draw the whole graph into `target` (for the minimap) without touching the items."""
        if self.overview is None:
            return
        src = self.content_rect
        painter.save()
        painter.translate(target.topLeft())
        painter.scale(target.width() / src.width(), target.height() / src.height())
        painter.translate(-src.topLeft())
        self.overview.draw(painter)
        painter.restore()
