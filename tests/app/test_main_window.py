"""The workbench window against a fake engine: loading, failures, groups, search, collapse."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.dialogs.trust import make_trust_dialog  # noqa: E402
from tests.app.helpers import open_and_wait  # noqa: E402


def test_canvas_has_one_item_per_summary_node_and_edge(qtbot, window) -> None:
    open_and_wait(qtbot, window, "models/net_a.pt")
    s = window.document.summary
    assert len(window.scene.node_items) == len(s.nodes)
    assert len(window.scene.edge_items) == len(s.edges)
    assert window.groups_panel.model.rowCount() == len(s.groups)
    assert window.windowTitle().startswith("net_a.pt")
    assert window.prefs.recent()[0] == "models/net_a.pt"


def test_selecting_a_group_highlights_exactly_its_members(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    doc = window.document
    group = doc.summary.groups[3]
    window.groups_panel.select_group(group.id)
    expected = {doc.node_by_name(m.node).id for m in group.members}
    assert window.scene.highlighted == expected
    lit = {nid for nid, item in window.scene.node_items.items() if item.highlighted}
    assert lit == expected
    # edges between members light up (conv1 -> bn1), nothing else does
    for s, d in window.scene.highlighted_edges():
        assert s in expected and d in expected
    bn1 = doc.node_by_name(group.root.replace("conv1", "bn1")).id
    assert (doc.node_by_name(group.root).id, bn1) in window.scene.highlighted_edges()
    window.select_group(None)
    assert window.scene.highlighted == frozenset()
    assert not any(i.highlighted for i in window.scene.node_items.values())


def test_clicking_a_layer_selects_its_group_and_shows_properties(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    doc = window.document
    conv = doc.node_by_name("layer2.1.conv1")
    view = window.view
    view.center_on_node(conv.id, min_scale=1.0)
    pos = view.mapFromScene(window.scene.node_items[conv.id].pos())
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    group = next(g for g in doc.summary.groups if g.root == "layer2.1.conv1")
    assert window.groups_panel.selected_group() == group.id
    assert window.properties.rows["Name"] == "layer2.1.conv1"
    assert window.properties.rows["Type"] == "Conv2d"
    assert window.properties.rows["Out channels"] == "128"
    assert window.properties.rows["Group"].startswith(f"#{group.id}: root of 3 coupled")
    assert window.scene.current == conv.id


def test_search_jumps_to_node_and_cycles(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    doc = window.document
    window.view.set_scale(0.1)
    target = doc.node_by_name("layer2.1.bn2").id
    shown = window.search_next("LAYER2.1.BN2")
    assert shown == target
    assert window.scene.current == target
    assert window.view.current_scale() >= 0.8
    visible = window.view.visible_scene_rect()
    item = window.scene.node_items[target]
    assert visible.contains(item.sceneBoundingRect())
    assert (visible.center() - item.pos()).manhattanLength() < 2  # centred on the hit
    hits = window.find_layers("bn2")
    assert len(hits) == 4  # one per residual block
    assert [window.search_next("bn2") for _ in range(5)] == hits + hits[:1]
    assert window.search_next("no-such-layer") is None


def test_corrupt_file_shows_error_and_keeps_previous_model(qtbot, window) -> None:
    open_and_wait(qtbot, window, "good.pt")
    before = window.document
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source("/tmp/corrupt.pt")
    box = window.last_dialog
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.icon() == QMessageBox.Critical
    assert "corrupt" in box.text()
    assert "good.pt is still open" in box.informativeText()
    assert window.document is before
    assert len(window.scene.node_items) == len(before.summary.nodes)
    box.close()


def test_cancel_load_keeps_previous_model_and_drops_late_result(qtbot, window, fake_loader) -> None:
    open_and_wait(qtbot, window, "good.pt")
    before = window.document
    fake_loader.gate.clear()
    window.open_source("slow:big.pt")
    assert fake_loader.started.wait(5)
    assert window.loads.busy and window.cancel_button.isVisible()
    with qtbot.waitSignal(window.loads.cancelled, timeout=5000):
        qtbot.mouseClick(window.cancel_button, Qt.LeftButton)
    assert not window.loads.busy and not window.progress.isVisible()
    assert "cancelled" in window.status_label.text().lower()
    fake_loader.gate.set()
    window.loads.wait(5000)
    qtbot.wait(50)  # let any late signal arrive; it must be ignored
    assert window.document is before


def test_untrusted_pickle_asks_and_no_means_not_loaded(qtbot, window, fake_loader) -> None:
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source("x/pickled.pt")
    box = window.last_dialog
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.defaultButton() is box.button(QMessageBox.No)
    box.button(QMessageBox.No).click()
    qtbot.wait(50)
    assert window.document is None
    assert len(fake_loader.calls) == 1 and "not trusted" in window.status_label.text()
    # Yes retries with trust=True and then loads
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source("x/pickled.pt")
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        window.last_dialog.button(QMessageBox.Yes).click()
    assert fake_loader.calls[-1]["trust"] is True


def test_trust_dialog_defaults_to_no_and_names_the_risk(qtbot) -> None:
    box = make_trust_dialog(None, "/downloads/model.pt")
    qtbot.addWidget(box)
    no = box.button(QMessageBox.No)
    assert box.defaultButton() is no and box.escapeButton() is no
    text = box.text().lower()
    assert "model.pt" in text and "run python code" in text and "execute any code" in text


def test_collapse_and_expand_relayout(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    n = len(window.document.summary.nodes)
    with qtbot.waitSignal(window.viewChanged, timeout=10000):
        window.collapse_path("layer1")
    blocks = [i for i in window.scene.node_items.values() if i.node.is_block]
    assert [b.node.name for b in blocks] == ["layer1"]
    assert len(window.scene.node_items) == n - 14 + 1
    # a group inside the block highlights the block itself
    group = next(g for g in window.document.summary.groups if g.root.startswith("layer1."))
    window.select_group(group.id)
    assert window.scene.highlighted == {blocks[0].node.id}
    with qtbot.waitSignal(window.viewChanged, timeout=10000):
        window.expand_block(blocks[0].node.id)
    # one level at a time: layer1's two residual blocks stay folded
    inner = sorted(i.node.name for i in window.scene.node_items.values() if i.node.is_block)
    assert inner == ["layer1.0", "layer1.1"]
    for name in inner:
        block = next(i for i in window.scene.node_items.values() if i.node.name == name)
        with qtbot.waitSignal(window.viewChanged, timeout=10000):
            window.expand_block(block.node.id)
    assert len(window.scene.node_items) == n


def test_theme_and_recent_persist(qtbot, window, settings) -> None:
    window.set_theme("dark")
    assert settings.value("theme") == "dark"
    assert window.scene.backgroundBrush().color().name() == "#1b1e23"
    open_and_wait(qtbot, window, "a.pt")
    open_and_wait(qtbot, window, "b.pt")
    open_and_wait(qtbot, window, "a.pt")
    assert window.prefs.recent()[:2] == ["a.pt", "b.pt"]
    window.close()
    assert settings.value("geometry") is not None


def test_first_launch_opens_demo_only_once(qtbot, settings, fake_loader) -> None:
    from app.document import DEMO_SOURCE
    from app.main_window import MainWindow

    first = MainWindow(settings, auto_open=True, loader=fake_loader)
    qtbot.addWidget(first)
    qtbot.waitUntil(lambda: first.document is not None, timeout=10000)
    assert [c["source"] for c in fake_loader.calls] == [DEMO_SOURCE]
    first.close()
    second = MainWindow(settings, auto_open=True, loader=fake_loader)
    qtbot.addWidget(second)
    qtbot.wait(100)
    assert len(fake_loader.calls) == 1 and second.document is None


def test_missing_input_shape_asks_and_retries_with_it(qtbot, window, fake_loader) -> None:
    from app.dialogs.input_shape import InputShapeDialog
    from app.engine_api import InputShapeRequired

    real = window.loader

    def loader(source, input_spec=None, **kw):
        if input_spec is None:
            raise InputShapeRequired(source, "could not infer an input shape", "1,3,224,224")
        return real(source, input_spec=input_spec, **kw)

    window.loader = loader
    with qtbot.waitSignal(window.loads.failed, timeout=10000):
        window.open_source("weird.pt")
    dialog = window.last_dialog
    assert isinstance(dialog, InputShapeDialog) and dialog.isVisible()
    assert dialog.edit.text() == "1,3,224,224"
    dialog.edit.setText("1,3,banana")
    dialog.accept()  # invalid: stays open and says why
    assert dialog.isVisible() and dialog.error.text()
    dialog.edit.setText("1,3,64,64")
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        dialog.accept()
    assert fake_loader.calls[-1]["input_spec"] == "1,3,64,64"


def test_dropping_a_file_opens_it(qtbot, window, fake_loader, tmp_path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    path = tmp_path / "dropped.pt"
    path.write_bytes(b"x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.documentChanged, timeout=10000):
        window.dropEvent(event)
    assert fake_loader.calls[-1]["source"] == str(path)


def test_builtin_dialog_lists_torchvision_and_filters(qtbot) -> None:
    from app.dialogs.builtin import BuiltinModelDialog
    from app.document import DEMO_SOURCE

    dialog = BuiltinModelDialog(None, names=["resnet18", "resnet50", "vit_b_16"])
    qtbot.addWidget(dialog)
    assert dialog.source() == DEMO_SOURCE
    dialog.filter.setText("vit")
    assert dialog.source() == "torchvision:vit_b_16"
    dialog.filter.setText("nothing-matches")
    assert dialog.source() is None
