"""Overview of the whole scene in a corner of the view; click or drag to navigate.

The scene is rendered once into a pixmap (re-rendered only when the scene's
content or highlight changes), so moving the viewport frame costs one blit.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsView, QWidget


class Minimap(QWidget):
    def __init__(self, view: QGraphicsView, size: QSize | None = None) -> None:
        super().__init__(view)
        self.view = view
        self.setFixedSize(size or QSize(170, 210))
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        self._pixmap: QPixmap | None = None
        self._target = QRectF()  # where the scene is drawn inside the widget
        self._timer = QTimer(self, singleShot=True, interval=120)
        self._timer.timeout.connect(self.rerender)
        self.render_count = 0

    def invalidate(self) -> None:
        """Schedule a re-render (debounced: many changes, one render)."""
        self._timer.start()

    def rerender(self) -> None:
        scene = self.view.scene()
        self._pixmap = None
        if scene is None or not scene.items() or scene.content_rect.isEmpty():
            self.update()
            return
        src = scene.content_rect
        ratio = self.devicePixelRatioF()
        pad = 6.0
        avail = QRectF(pad, pad, self.width() - 2 * pad, self.height() - 2 * pad)
        scale = min(avail.width() / max(src.width(), 1), avail.height() / max(src.height(), 1))
        w, h = src.width() * scale, src.height() * scale
        self._target = QRectF(avail.center().x() - w / 2, avail.center().y() - h / 2, w, h)
        pm = QPixmap(max(1, int(w * ratio)), max(1, int(h * ratio)))
        pm.setDevicePixelRatio(ratio)
        pm.fill(scene.backgroundBrush().color())
        painter = QPainter(pm)
        scene.render_overview(painter, QRectF(0, 0, w, h))
        painter.end()
        self._pixmap = pm
        self.render_count += 1
        self.update()

    def _scene_to_map(self, p: QPointF) -> QPointF:
        src = self.view.scene().content_rect
        t = self._target
        return QPointF(
            t.left() + (p.x() - src.left()) / max(src.width(), 1) * t.width(),
            t.top() + (p.y() - src.top()) / max(src.height(), 1) * t.height(),
        )

    def _map_to_scene(self, p: QPointF) -> QPointF:
        src = self.view.scene().content_rect
        t = self._target
        return QPointF(
            src.left() + (p.x() - t.left()) / max(t.width(), 1) * src.width(),
            src.top() + (p.y() - t.top()) / max(t.height(), 1) * src.height(),
        )

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        bg = self.palette().window().color()
        bg.setAlpha(225)
        painter.setPen(QPen(self.palette().mid().color(), 1))
        painter.setBrush(bg)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        if self._pixmap is None or self.view.scene() is None:
            return
        painter.drawPixmap(self._target.topLeft(), self._pixmap)
        vis = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        frame = QRectF(self._scene_to_map(vis.topLeft()), self._scene_to_map(vis.bottomRight()))
        frame = frame.intersected(self._target.adjusted(-1, -1, 1, 1))
        accent = QColor(self.palette().highlight().color())
        painter.setPen(QPen(accent, 1.5))
        accent.setAlpha(40)
        painter.setBrush(accent)
        if frame.width() < 4 or frame.height() < 4:  # tiny frame: draw a visible marker
            frame = QRectF(frame.center() - QPointF(3, 3), QSize(6, 6))
        painter.drawRect(frame)

    def _navigate(self, event: QMouseEvent) -> None:
        if self.view.scene() is not None and self._pixmap is not None:
            self.view.centerOn(self._map_to_scene(event.position()))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self._navigate(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.buttons() & Qt.LeftButton:
            self._navigate(event)
