"""Scene items: node boxes and edge curves, painted with level of detail.

Items share one `SceneStyle` (pens, fonts, theme, dimming flag) owned by the
scene, so a theme switch or highlight costs no per-item allocation. Edges keep
their QPainterPath and bounds cached; text is drawn from cached QStaticText and
skipped entirely when zoomed out, which is what keeps 5,000 nodes fluid.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QStaticText,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.canvas.hierarchy import ViewNode
from app.canvas.names import shorten_dotted
from app.canvas.style import CanvasTheme, kind_family
from app.depth_model import BlockMark
from app.panels.heat import heat_color

# Level-of-detail thresholds (1.0 = 100 % zoom).
LOD_SHAPES_ONLY = 0.22  # below: flat filled boxes, no border, no text
LOD_TITLE = 0.38  # at and above: the layer name
LOD_DETAILS = 0.6  # at and above: type and channel line, arrowheads


def _fmt_count(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def subtitle(node: ViewNode) -> str:
    """Second line of a node box: kind and channels, or a block's size."""
    if node.is_block:
        return f"{len(node.member_ids)} nodes · {_fmt_count(node.params)} params"
    cin, cout = node.in_channels, node.out_channels
    if cin is not None and cout is not None:
        same = cin == cout and kind_family(node.kind) not in ("conv", "linear")
        ch = str(cout) if same else f"{cin}→{cout}"
    else:
        ch = str(cout if cout is not None else cin) if (cin or cout) else ""
    return f"{node.kind} · {ch}" if ch else node.kind


class SceneStyle:
    """Mutable drawing state shared by every item of one scene."""

    def __init__(self, theme: CanvasTheme) -> None:
        self.title_font = QFont()
        self.title_font.setPointSizeF(10.0)
        self.title_font.setBold(True)
        self.sub_font = QFont()
        self.sub_font.setPointSizeF(8.5)
        self.title_metrics = QFontMetricsF(self.title_font)
        self.sub_metrics = QFontMetricsF(self.sub_font)
        self.dimming = False
        self.set_theme(theme)

    def set_theme(self, theme: CanvasTheme) -> None:
        self.theme = theme
        self.border_pen = QPen(theme.node_border, 1.0)
        self.fill_brush = QBrush(theme.node_fill)
        self.text_pen = QPen(theme.text)
        self.sub_pen = QPen(theme.subtext)
        self.accent_pen = QPen(theme.accent, 3.0)
        self.current_pen = QPen(theme.current, 3.0)
        self.edge_pen = QPen(theme.edge, 1.4)
        self.edge_pen_far = QPen(theme.edge, 0)  # cosmetic hairline when zoomed out
        self.edge_hi_pen = QPen(theme.accent, 2.6)
        self.edge_brush = QBrush(theme.edge)
        self.edge_hi_brush = QBrush(theme.accent)
        # Prebuilt: passing Qt.NoBrush/Qt.NoPen enums to QPainter thousands of times per frame
        # trips a refcount bug in PySide6 6.12 ("deallocating None").
        self.no_brush = QBrush(Qt.NoBrush)
        self.no_pen = QPen(Qt.NoPen)
        self.edge_hi_far_pen = QPen(theme.accent, 2.0)
        self.edge_hi_far_pen.setCosmetic(True)
        self.current_far_pen = QPen(theme.current, 3.0)
        self.current_far_pen.setCosmetic(True)


class NodeItem(QGraphicsItem):
    """A layer, op or collapsed block: family-coloured stripe, name, type · channels."""

    STRIPE = 6.0
    STACK = 4.0  # offset of the second card drawn behind a collapsed block

    def __init__(
        self,
        node: ViewNode,
        center: tuple[float, float],
        size: tuple[float, float],
        style: SceneStyle,
        parent: QGraphicsItem | None = None,
    ) -> None:
        super().__init__(parent)
        self.node = node
        self.style = style
        w, h = size
        self.rect = QRectF(-w / 2, -h / 2, w, h)
        grow = 3 + (self.STACK if node.is_block else 0)
        # 10 px above for a depth pill on the upper border, and as much more below, so the
        # bounds keep their centre (the view centres on an item by its bounds)
        self._bounds = self.rect.adjusted(-3, -10, grow, grow + 7)
        self.setPos(center[0], center[1])
        self.highlighted = False
        self.current = False
        self.color = style.theme.family_color(node.kind)
        text_w = w - self.STRIPE - 16
        # Leading dotted parts go whole ("…denseblock3.denselayer12.conv1"): the tail tells
        # layers apart, and a cut part ("…ock3") hid the block index
        fm = style.title_metrics
        title = shorten_dotted(node.name or node.kind, lambda t: fm.horizontalAdvance(t) <= text_w)
        self.title = fm.elidedText(title, Qt.ElideLeft, text_w)
        self.sub = style.sub_metrics.elidedText(subtitle(node), Qt.ElideRight, text_w)
        self._static: tuple[QStaticText, QStaticText] | None = None
        self._text_w = text_w
        self.kept: float | None = None  # planned out-channels / current, None = unchanged
        self.heat: float | None = None  # sensitivity from a scan (0 robust .. 1 fragile)
        self.depth: BlockMark | None = None  # a removable residual block (or inside one)
        self._tip = ""
        # Ops whose name already says what they are ("block.add") get one line.
        self.two_lines = (
            node.is_layer or node.is_block or node.kind.lower() not in node.name.lower()
        )
        self._set_tip(f"{node.name}\n{subtitle(node)}")
        self.setAcceptedMouseButtons(Qt.NoButton)  # the view turns clicks into signals

    def _set_tip(self, text: str) -> None:
        """The node's own tooltip, plus the depth line when it is a removable block."""
        self._tip = text
        extra = f"\n{self.depth.tooltip_line()}" if self.depth is not None else ""
        self.setToolTip(text + extra)

    def set_depth(self, mark: BlockMark | None) -> None:
        if mark != self.depth:
            self.depth = mark
            self._set_tip(self._tip)
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self._bounds

    def set_planned(self, widths: tuple[int | None, int | None] | None) -> None:
        """Show the plan's (in, out) width after pruning next to the current one."""
        node = self.node
        text = subtitle(node)
        self.kept = None
        if widths is not None and (widths[0], widths[1]) != (node.in_channels, node.out_channels):
            cin, cout = widths
            same = cin == cout and kind_family(node.kind) not in ("conv", "linear")
            planned = str(cout) if same or cin is None else f"{cin}→{cout}"
            text = f"{text} ⇒ {planned}"
            if node.out_channels and cout is not None:
                self.kept = cout / node.out_channels
        self.sub = self.style.sub_metrics.elidedText(text, Qt.ElideRight, self._text_w)
        self._static = None
        self._set_tip(f"{node.name}\n{text}")
        self.update()

    def set_heat(self, heat: float | None) -> None:
        if heat != self.heat:
            self.heat = heat
            self.update()

    def set_block_totals(self, totals: tuple[int, int, int, int] | None) -> None:
        """A collapsed block's before → after MACs and params under the plan."""
        node = self.node
        text = subtitle(node)
        self.kept = None
        if totals is not None:
            mb, ma, pb, pa = totals
            text = (
                f"MACs {_fmt_count(mb)} ⇒ {_fmt_count(ma)} · "
                f"params {_fmt_count(pb)} ⇒ {_fmt_count(pa)}"
            )
            if (mb, pb) != (ma, pa) and (mb or pb):
                self.kept = (ma / mb) if mb else (pa / pb)
        self.sub = self.style.sub_metrics.elidedText(text, Qt.ElideRight, self._text_w)
        self._static = None
        n = len(node.member_ids)
        self._set_tip(f"{node.name} ({n} nodes, double-click to expand)\n{text}")
        self.update()

    def refresh_theme(self) -> None:
        self.color = self.style.theme.family_color(self.node.kind)
        self.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        st = self.style
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if st.dimming and not self.highlighted and not self.current:
            painter.setOpacity(0.22)
        r = self.rect
        if lod < LOD_SHAPES_ONLY:
            color = st.theme.accent if self.highlighted else self.color
            painter.fillRect(r, color)
            if self.current:
                painter.setPen(st.current_pen)
                painter.setBrush(st.no_brush)
                painter.drawRect(r)
            return
        painter.setPen(st.border_pen)
        painter.setBrush(st.fill_brush)
        if self.node.is_block:  # a card stack says "several layers folded in here"
            painter.drawRoundedRect(r.translated(self.STACK, self.STACK), 5.0, 5.0)
        painter.drawRoundedRect(r, 5.0, 5.0)
        painter.fillRect(QRectF(r.left() + 1, r.top() + 1, self.STRIPE, r.height() - 2), self.color)
        if lod >= LOD_TITLE:
            if self._static is None:
                self._static = (QStaticText(self.title), QStaticText(self.sub))
            x = r.left() + self.STRIPE + 8
            th, sh = st.title_metrics.height(), st.sub_metrics.height()
            painter.setFont(st.title_font)
            painter.setPen(st.text_pen)
            if lod >= LOD_DETAILS and self.two_lines:
                top = r.top() + (r.height() - th - sh) / 2
                painter.drawStaticText(QPointF(x, top), self._static[0])
                painter.setFont(st.sub_font)
                painter.setPen(st.sub_pen)
                painter.drawStaticText(QPointF(x, top + th), self._static[1])
            else:
                painter.drawStaticText(QPointF(x, r.center().y() - th / 2), self._static[0])
        if self.kept is not None:  # planned width: the kept share of a thin bottom bar
            bar = QRectF(r.left() + self.STRIPE + 4, r.bottom() - 5, r.width() - self.STRIPE - 8, 3)
            painter.fillRect(bar, st.theme.edge)
            painter.fillRect(
                QRectF(bar.left(), bar.top(), bar.width() * self.kept, 3), st.theme.accent
            )
        if self.heat is not None:  # sensitivity: a heat-coloured corner badge
            painter.setPen(st.border_pen)
            painter.setBrush(heat_color(self.heat))
            painter.drawEllipse(QRectF(r.right() - 13, r.top() + 3, 10, 10))
        if self.highlighted or self.current:
            painter.setPen(st.current_pen if self.current else st.accent_pen)
            painter.setBrush(st.no_brush)
            painter.drawRoundedRect(r.adjusted(-1.5, -1.5, 1.5, 1.5), 6.0, 6.0)
        if self.depth is not None:  # last: the pill stays readable over a selection border
            self._paint_depth(painter, lod)

    def _paint_depth(self, painter: QPainter, lod: float) -> None:
        """A removable block: a "⤼ depth" pill (with 1−cos once measured) on the block
        itself, a small mark on the layers inside it; a removed one is crossed out in red."""
        st, r, mark = self.style, self.rect, self.depth
        if mark.dropped:
            painter.fillRect(r, DEPTH_REMOVED_FILL)
            painter.setPen(DEPTH_REMOVED_PEN)
            painter.setBrush(st.no_brush)
            painter.drawRoundedRect(r.adjusted(-2.5, -2.5, 2.5, 2.5), 6.0, 6.0)
            painter.drawLine(r.topLeft() + QPointF(8, 4), r.bottomRight() - QPointF(8, 4))
        color = DEPTH_REMOVED if mark.dropped else DEPTH_COLOR
        if not mark.whole or lod < LOD_TITLE:
            painter.setPen(st.no_pen)
            painter.setBrush(QBrush(color))
            painter.drawRect(QRectF(r.right() - 10, r.bottom() - 10, 7, 7))
            return
        if mark.dropped:
            text = "removed"
        elif mark.importance is not None:
            text = f"1−cos {mark.importance:.3f}"
        else:
            text = "⤼ depth"
        w = st.sub_metrics.horizontalAdvance(text) + 10
        pill = QRectF(r.right() - w - 16, r.top() - 9, w, st.sub_metrics.height() + 2)
        painter.setPen(st.no_pen)
        painter.setBrush(QBrush(color))
        painter.drawRoundedRect(pill, 4.0, 4.0)
        painter.setFont(st.sub_font)
        painter.setPen(DEPTH_TEXT_PEN)
        painter.drawText(pill, Qt.AlignCenter, text)


DEPTH_COLOR = QColor("#0f8b8d")  # teal: removable, not removed
DEPTH_REMOVED = QColor("#c0392b")
DEPTH_REMOVED_FILL = QColor(192, 57, 43, 40)
DEPTH_REMOVED_PEN = QPen(DEPTH_REMOVED, 2.0, Qt.DashLine)
DEPTH_TEXT_PEN = QPen(QColor("white"))


def edge_path(points: tuple[tuple[float, float], ...]) -> QPainterPath:
    """Smooth vertical S-curves through the layout's polyline."""
    path = QPainterPath(QPointF(*points[0]))
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        dy = (y1 - y0) / 2
        path.cubicTo(QPointF(x0, y0 + dy), QPointF(x1, y1 - dy), QPointF(x1, y1))
    return path


class EdgeItem(QGraphicsItem):
    """A dependency edge with a cached path and arrowhead."""

    ARROW = 7.0

    def __init__(
        self,
        src: int,
        dst: int,
        points: tuple[tuple[float, float], ...],
        style: SceneStyle,
        parent: QGraphicsItem | None = None,
    ) -> None:
        super().__init__(parent)
        self.src, self.dst = src, dst
        self.style = style
        self.highlighted = False
        self.path = edge_path(points)
        (ex, ey) = points[-1]
        down = points[-1][1] >= points[-2][1] if len(points) > 1 else True
        s = self.ARROW if down else -self.ARROW
        self.arrow = QPolygonF(
            [QPointF(ex, ey), QPointF(ex - s / 1.6, ey - s), QPointF(ex + s / 1.6, ey - s)]
        )
        self._bounds = (
            self.path.boundingRect().united(self.arrow.boundingRect()).adjusted(-3, -3, 3, 3)
        )
        self.setZValue(-1)
        self.setAcceptedMouseButtons(Qt.NoButton)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        st = self.style
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if st.dimming and not self.highlighted:
            painter.setOpacity(0.18)
        if self.highlighted:
            pen, brush = st.edge_hi_pen, st.edge_hi_brush
        else:
            pen, brush = (st.edge_pen if lod >= LOD_SHAPES_ONLY else st.edge_pen_far), st.edge_brush
        painter.setPen(pen)
        painter.setBrush(st.no_brush)
        painter.drawPath(self.path)
        if lod >= LOD_DETAILS or (self.highlighted and lod >= LOD_TITLE):
            painter.setPen(st.no_pen)
            painter.setBrush(brush)
            painter.drawPolygon(self.arrow)


def family_legend(theme: CanvasTheme) -> list[tuple[str, QColor]]:
    return [(name, QColor(c)) for name, c in theme.families.items()]


class DetailLayer(QGraphicsItem):
    """Invisible parent of every node and edge item: hiding it hides them all in one call."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.ItemHasNoContents, True)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return QRectF()

    def paint(self, painter, option, widget=None) -> None:
        pass


class OverviewItem(QGraphicsItem):
    """The whole graph as a handful of prebuilt paths, drawn instead of the items when
    zoomed far out: one Python paint call per frame instead of one per node and edge."""

    def __init__(self, style: SceneStyle, rect: QRectF) -> None:
        super().__init__()
        self.style = style
        self._rect = rect
        self.edges = QPainterPath()
        self.families: dict[str, QPainterPath] = {}
        self.kinds: dict[str, str] = {}  # family -> a kind of that family, for its colour
        self.hi_nodes = QPainterPath()
        self.hi_edges = QPainterPath()
        self.current = QPainterPath()
        self.setAcceptedMouseButtons(Qt.NoButton)

    def build(self, nodes: list[NodeItem], edges: list[EdgeItem]) -> None:
        for edge in edges:
            self.edges.addPath(edge.path)
        for item in nodes:
            fam = kind_family(item.node.kind)
            self.kinds.setdefault(fam, item.node.kind)
            self.families.setdefault(fam, QPainterPath()).addRect(item.rect.translated(item.pos()))

    def set_highlight(
        self, nodes: list[NodeItem], edges: list[EdgeItem], current: NodeItem | None
    ) -> None:
        self.hi_nodes, self.hi_edges, self.current = QPainterPath(), QPainterPath(), QPainterPath()
        for item in nodes:
            self.hi_nodes.addRect(item.rect.translated(item.pos()))
        for edge in edges:
            self.hi_edges.addPath(edge.path)
        if current is not None:
            self.current.addRect(current.rect.translated(current.pos()).adjusted(-20, -20, 20, 20))
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self._rect

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        self.draw(painter)

    def draw(self, painter: QPainter) -> None:
        st = self.style
        painter.setRenderHint(QPainter.Antialiasing, False)
        dim = st.dimming
        painter.setOpacity(0.22 if dim else 1.0)
        painter.setPen(st.edge_pen_far)
        painter.setBrush(st.no_brush)
        painter.drawPath(self.edges)
        for fam, path in self.families.items():
            painter.fillPath(path, st.theme.family_color(self.kinds[fam]))
        painter.setOpacity(1.0)
        if dim:
            painter.strokePath(self.hi_edges, st.edge_hi_far_pen)
            painter.fillPath(self.hi_nodes, st.theme.accent)
        if not self.current.isEmpty():
            painter.strokePath(self.current, st.current_far_pen)
