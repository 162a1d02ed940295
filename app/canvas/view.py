"""The graph view: smooth zoom around the cursor, pinch, pan, fit, jump-to, clicks.

Navigation only: what is drawn lives in GraphScene and its items. Clicks are
detected here (press and release without dragging) and leave as signals, so the
items themselves never handle mouse events.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QVariantAnimation, Signal
from PySide6.QtGui import QColor, QMouseEvent, QNativeGestureEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsView, QPinchGesture, QToolTip

from app.canvas.items import LOD_DETAILS, LOD_SHAPES_ONLY, NodeItem
from app.canvas.minimap import Minimap
from app.canvas.scene import GraphScene

OVERVIEW_BELOW = LOD_SHAPES_ONLY  # same look as flat items, so the switch is invisible
MIN_SCALE = 0.01
MAX_SCALE = 4.0
CLICK_SLOP = 4  # pixels a press may move and still count as a click


class GraphView(QGraphicsView):
    nodeClicked = Signal(int)  # view node id  # noqa: N815 (Qt naming)
    nodeDoubleClicked = Signal(int)  # noqa: N815
    nodeContextMenu = Signal(int, QPoint)  # id, global pos  # noqa: N815
    backgroundClicked = Signal()  # noqa: N815
    zoomChanged = Signal(float)  # noqa: N815

    def __init__(self, scene: GraphScene, parent=None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.DontSavePainterState, False)
        self.setOptimizationFlag(QGraphicsView.DontAdjustForAntialiasing, True)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setFrameShape(QGraphicsView.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the minimap replaces them
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.viewport().grabGesture(Qt.PinchGesture)
        self.empty_text = "Open a model: File ▸ Open… (Ctrl+O), or the demo (Ctrl+D)"
        self._press: QPoint | None = None
        self._zoom_anim = QVariantAnimation(self, duration=140)
        self._zoom_anim.valueChanged.connect(self._animate_zoom)
        self._anim_anchor: QPoint | None = None
        self._anim_target = 1.0
        self.minimap = Minimap(self)
        scene.graphChanged.connect(self._on_graph_changed)
        self.horizontalScrollBar().valueChanged.connect(self.minimap.update)
        self.verticalScrollBar().valueChanged.connect(self.minimap.update)

    # -------------------------------------------------------------- zoom

    def graph_scene(self) -> GraphScene:
        return self.scene()  # type: ignore[return-value]

    def current_scale(self) -> float:
        return self.transform().m11()

    def _min_scale(self) -> float:
        """Allow zooming out a bit past 'whole graph fits', however large the graph."""
        rect = self.content_rect()
        vp = self.viewport().rect()
        if rect.isEmpty() or vp.isEmpty():
            return MIN_SCALE
        fit = min(vp.width() / rect.width(), vp.height() / rect.height())
        return max(min(MIN_SCALE, fit), fit / 2)

    def set_scale(self, scale: float, anchor: QPoint | None = None) -> None:
        """Absolute zoom, keeping the scene point under `anchor` (viewport px) fixed."""
        scale = max(self._min_scale(), min(MAX_SCALE, scale))
        factor = scale / self.current_scale()
        if abs(factor - 1.0) < 1e-9:
            return
        if anchor is None:
            anchor = self.viewport().rect().center()
        before = self.mapToScene(anchor)
        old = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.NoAnchor)
        self.scale(factor, factor)
        after = self.mapToScene(anchor)
        delta = after - before
        self.translate(delta.x(), delta.y())
        self.setTransformationAnchor(old)
        self.graph_scene().set_overview(self.current_scale() < OVERVIEW_BELOW)
        self.minimap.update()
        self.zoomChanged.emit(self.current_scale())

    def zoom_by(self, factor: float, anchor: QPoint | None = None, animate: bool = False) -> None:
        if not animate:
            self._zoom_anim.stop()
            self.set_scale(self.current_scale() * factor, anchor)
            return
        base = (
            self._anim_target
            if self._zoom_anim.state() == QVariantAnimation.Running
            else self.current_scale()
        )
        self._anim_target = max(self._min_scale(), min(MAX_SCALE, base * factor))
        self._anim_anchor = anchor
        self._zoom_anim.stop()
        self._zoom_anim.setStartValue(float(self.current_scale()))
        self._zoom_anim.setEndValue(float(self._anim_target))
        self._zoom_anim.start()

    def _animate_zoom(self, value: float) -> None:
        self.set_scale(float(value), self._anim_anchor)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        anchor = event.position().toPoint()
        pixel = event.pixelDelta()
        if not pixel.isNull() and event.source() != Qt.MouseEventNotSynthesized:
            # touchpad: continuous deltas, apply immediately
            self.zoom_by(math.pow(1.0025, pixel.y()), anchor)
        else:
            steps = event.angleDelta().y() / 120.0
            if steps:
                self.zoom_by(math.pow(1.25, steps), anchor, animate=True)
        event.accept()

    def tooltip_at(self, pos: QPoint) -> str:
        """The node tooltip under a viewport point, at any zoom (far out the items are
        hidden behind the overview, so Qt's own item tooltips never show)."""
        nid = self.node_at(pos)
        item = self.graph_scene().node_items.get(nid) if nid is not None else None
        return item.toolTip() if item is not None else ""

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.ToolTip:
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        if event.type() == QEvent.Gesture:
            pinch = event.gesture(Qt.PinchGesture)
            if isinstance(pinch, QPinchGesture):
                center = self.viewport().mapFromGlobal(pinch.centerPoint().toPoint())
                self.zoom_by(pinch.scaleFactor(), center)
                event.accept()
                return True
        if event.type() == QEvent.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.ZoomNativeGesture:
                self.zoom_by(1.0 + event.value(), event.position().toPoint())
                return True
        return super().viewportEvent(event)

    def content_rect(self) -> QRectF:
        return self.graph_scene().content_rect

    def _on_graph_changed(self) -> None:
        self.graph_scene().set_overview(self.current_scale() < OVERVIEW_BELOW)
        self.minimap.invalidate()

    def fit_scale(self) -> float:
        rect, vp = self.content_rect(), self.viewport().rect()
        if rect.isEmpty() or vp.isEmpty():
            return 1.0
        return min(1.0, 0.97 * min(vp.width() / rect.width(), vp.height() / rect.height()))

    def fit_to_view(self) -> None:
        """Whole graph in view (never magnified past 100 %)."""
        if self.content_rect().isEmpty():
            return
        self._zoom_anim.stop()
        self.set_scale(self.fit_scale())
        self.centerOn(self.content_rect().center())

    def show_start(self, readable: float = 0.8) -> None:
        """Fit graphs that stay legible when fitted; otherwise show the input end readably."""
        if self.fit_scale() >= LOD_DETAILS:
            self.fit_to_view()
            return
        self.set_scale(readable)
        rect, vp = self.content_rect(), self.viewport().rect()
        items = self.graph_scene().node_items.values()
        top = min(items, key=lambda i: (i.pos().y(), i.pos().x()), default=None)
        x = top.pos().x() if top is not None else rect.center().x()
        if rect.width() * readable <= vp.width():
            x = rect.center().x()
        self.centerOn(QPointF(x, rect.top() + vp.height() / 2 / readable))

    def center_on_node(self, node_id: int, min_scale: float = 0.8) -> bool:
        item = self.graph_scene().node_items.get(node_id)
        if item is None:
            return False
        if self.current_scale() < min_scale:
            self.set_scale(min_scale)
        self.centerOn(item)
        self.minimap.update()
        return True

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    # -------------------------------------------------------------- clicks

    def node_at(self, pos: QPoint) -> int | None:
        if self.graph_scene().overview_mode:
            return self.graph_scene().node_near(self.mapToScene(pos), 3 / self.current_scale())
        for item in self.items(pos):
            if isinstance(item, NodeItem):
                return item.node.id
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self._press = event.position().toPoint() if event.button() == Qt.LeftButton else None
        if event.button() == Qt.MiddleButton:  # middle-drag pans like the left button
            fake = QMouseEvent(
                event.type(),
                event.position(),
                event.globalPosition(),
                Qt.LeftButton,
                Qt.LeftButton,
                event.modifiers(),
            )
            super().mousePressEvent(fake)
            return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MiddleButton:
            fake = QMouseEvent(
                event.type(),
                event.position(),
                event.globalPosition(),
                Qt.LeftButton,
                Qt.NoButton,
                event.modifiers(),
            )
            super().mouseReleaseEvent(fake)
            return
        super().mouseReleaseEvent(event)
        pos = event.position().toPoint()
        if (
            event.button() == Qt.LeftButton
            and self._press is not None
            and (pos - self._press).manhattanLength() <= CLICK_SLOP
        ):
            nid = self.node_at(pos)
            if nid is None:
                self.backgroundClicked.emit()
            else:
                self.nodeClicked.emit(nid)
        self._press = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        nid = self.node_at(event.position().toPoint())
        if nid is not None:
            self.nodeDoubleClicked.emit(nid)
        else:
            super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt API)
        nid = self.node_at(event.pos())
        if nid is not None:
            self.nodeContextMenu.emit(nid, event.globalPos())

    # -------------------------------------------------------------- housekeeping

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        m = 12
        self.minimap.move(
            self.viewport().width() - self.minimap.width() - m,
            self.viewport().height() - self.minimap.height() - m,
        )
        self.minimap.invalidate()

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 (Qt API)
        super().scrollContentsBy(dx, dy)
        self.minimap.update()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 (Qt API)
        if self.scene() is not None and not self.graph_scene().node_items and self.empty_text:
            painter.save()
            painter.resetTransform()
            color = QColor(self.palette().text().color())
            color.setAlpha(150)
            painter.setPen(color)
            f = painter.font()
            f.setPointSizeF(13)
            painter.setFont(f)
            painter.drawText(self.viewport().rect(), Qt.AlignCenter, self.empty_text)
            painter.restore()
