"""Canvas scene and view: item counts, highlight, level of detail, zoom, minimap."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QRectF  # noqa: E402
from PySide6.QtGui import QImage, QPainter, QTransform  # noqa: E402
from PySide6.QtWidgets import QStyleOptionGraphicsItem  # noqa: E402

from app.canvas.items import LOD_DETAILS, LOD_SHAPES_ONLY, NodeItem, subtitle  # noqa: E402
from app.canvas.prepare import prepare_view  # noqa: E402
from app.canvas.scene import GraphScene  # noqa: E402
from app.canvas.style import DARK, kind_family  # noqa: E402
from app.canvas.synthetic import random_dag, resnet_like  # noqa: E402
from app.canvas.view import GraphView  # noqa: E402


@pytest.fixture
def canvas(qtbot):
    scene = GraphScene()
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    summary = resnet_like()
    prepared = prepare_view(summary)
    scene.show_graph(prepared.graph, prepared.layout)
    return scene, view, summary


def test_scene_items_match_summary(canvas) -> None:
    scene, _, summary = canvas
    assert len(scene.node_items) == len(summary.nodes)
    assert len(scene.edge_items) == len(summary.edges)
    assert {(e.src, e.dst) for e in scene.edge_items} == set(summary.edges)
    assert scene.content_rect.contains(scene.itemsBoundingRect())


def test_highlight_dims_others_and_lights_internal_edges(canvas) -> None:
    scene, _, summary = canvas
    ids = {0, 1, 2, 40}
    assert scene.highlight(ids | {99999}) == ids  # unknown ids are ignored
    assert scene.style.dimming
    assert {(s, d) for s, d in scene.highlighted_edges()} == {(0, 1), (1, 2)}
    scene.highlight(())
    assert not scene.style.dimming and not scene.highlighted_edges()


def _paint_ops(item: NodeItem, scale: float) -> QImage:
    img = QImage(400, 200, QImage.Format_ARGB32)
    img.fill(0)
    painter = QPainter(img)
    painter.setWorldTransform(
        QTransform.fromScale(scale, scale).translate(
            200 / scale - item.pos().x(), 100 / scale - item.pos().y()
        )
        * QTransform()
    )
    painter.translate(item.pos())
    item.paint(painter, QStyleOptionGraphicsItem(), None)
    painter.end()
    return img


def _colors(img: QImage) -> int:
    return len(
        {img.pixel(x, y) for x in range(0, img.width(), 2) for y in range(0, img.height(), 2)}
    )


def test_level_of_detail_drops_text_when_zoomed_out(canvas) -> None:
    scene, _, _ = canvas
    item = scene.node_items[0]
    detailed = _colors(_paint_ops(item, LOD_DETAILS + 0.4))
    flat = _colors(_paint_ops(item, LOD_SHAPES_ONLY / 2))
    assert flat <= 3  # transparent background + one flat fill (+ edge blend)
    assert detailed > flat + 5  # text glyphs add anti-aliased shades


def test_wheel_zoom_keeps_point_under_cursor(canvas) -> None:
    _, view, _ = canvas
    view.set_scale(0.5)
    anchor = QPoint(200, 150)
    before = view.mapToScene(anchor)
    view.zoom_by(1.6, anchor)
    assert view.current_scale() == pytest.approx(0.8)
    after = view.mapToScene(anchor)
    assert (after - before).manhattanLength() < 2.0


def test_zoom_is_clamped_and_fit_shows_everything(canvas) -> None:
    _, view, _ = canvas
    view.set_scale(100.0)
    assert view.current_scale() == pytest.approx(4.0)
    view.fit_to_view()
    visible = view.visible_scene_rect()
    assert visible.adjusted(-2, -2, 2, 2).contains(view.content_rect())
    view.zoom_by(1e-6)
    assert view.current_scale() >= view.fit_scale() / 2 - 1e-9


def test_click_on_node_emits_its_id(qtbot, canvas) -> None:
    scene, view, _ = canvas
    view.center_on_node(5, min_scale=1.0)
    pos = view.mapFromScene(scene.node_items[5].pos())
    from PySide6.QtCore import Qt

    with qtbot.waitSignal(view.nodeClicked, timeout=1000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    assert blocker.args == [5]


def test_minimap_renders_and_tracks_viewport(qtbot, canvas) -> None:
    _, view, _ = canvas
    view.minimap.rerender()
    assert view.minimap.render_count >= 1 and view.minimap._pixmap is not None
    view.set_scale(1.0)
    view.centerOn(QPointF(view.content_rect().center().x(), view.content_rect().bottom()))
    # clicking the top of the minimap moves the view to the top of the graph
    top = view.minimap._target.topLeft() + QPointF(view.minimap._target.width() / 2, 2)
    from PySide6.QtCore import Qt

    qtbot.mouseClick(view.minimap, Qt.LeftButton, pos=top.toPoint())
    assert view.visible_scene_rect().top() < view.content_rect().top() + 50


def test_theme_switch_recolours_without_rebuilding(canvas) -> None:
    scene, _, _ = canvas
    item = scene.node_items[0]
    scene.set_theme(DARK)
    assert scene.node_items[0] is item
    assert item.color == DARK.family_color("Conv2d")
    assert scene.backgroundBrush().color() == DARK.background


def test_kind_families_and_subtitles() -> None:
    assert kind_family("Conv2d") == "conv"
    assert kind_family("BatchNorm2d") == "norm"
    assert kind_family("add") == "merge"
    assert kind_family("MultiheadAttention") == "attention"
    from app.canvas.hierarchy import ViewNode

    assert subtitle(ViewNode(1, "c", "Conv2d", True, 3, 64)) == "Conv2d · 3→64"
    assert subtitle(ViewNode(1, "b", "BatchNorm2d", True, 64, 64)) == "BatchNorm2d · 64"
    assert subtitle(ViewNode(1, "c", "Conv2d", True, 64, 64)) == "Conv2d · 64→64"
    assert subtitle(ViewNode(1, "a", "add", False)) == "add"
    assert (
        subtitle(ViewNode(-1, "layer1", "Block", False, params=2_500_000, member_ids=(1, 2, 3)))
        == "3 nodes · 2.5M params"
    )


def test_large_graph_builds_and_renders(qtbot) -> None:
    scene = GraphScene()
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(800, 600)
    prepared = prepare_view(random_dag(1500, seed=1))
    scene.show_graph(prepared.graph, prepared.layout)
    assert len(scene.node_items) == 1500
    view.fit_to_view()
    img = QImage(800, 600, QImage.Format_ARGB32)
    painter = QPainter(img)
    view.render(painter)
    painter.end()
    assert _colors(img) > 3
    assert QRectF(scene.sceneRect()).height() > 1000
    # zoomed far out, the prebuilt overview replaces the 1,500 items (hidden in one call)
    assert scene.overview_mode and scene.overview.isVisible()
    assert not scene.node_items[0].isVisible()
    # clicks still resolve to nodes in overview mode
    item = scene.node_items[700]
    assert view.node_at(view.mapFromScene(item.pos())) == 700
    view.center_on_node(700, min_scale=1.0)
    assert not scene.overview_mode and scene.node_items[0].isVisible()
