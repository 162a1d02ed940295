"""The workbench model and the defects of issue #20, each through the GUI a user sees.

Demo-model tests run the real engine on DigitsNet (seconds); the FakeLoader ones use a
synthetic ResNet-like summary.
"""

from __future__ import annotations

import gc
import os
import weakref

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from tests.app.helpers import TIMEOUT, open_and_wait, wait_preview  # noqa: E402


def blocks_of(win) -> dict[str, object]:
    return {i.node.name: i for i in win.scene.node_items.values() if i.node.is_block}


def layer_item(win, name: str):
    return next(i for i in win.scene.node_items.values() if i.node.name == name)


def prune_and_keep(qtbot, win):
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as blocker:
        win.prune()
    result, view = blocker.args[0]
    win.result_dialog.close()
    win.accept_pruned(result, view)
    return result


# ------------------------------------------------------------------ events, no window


def test_events_block_feedback_and_panels_need_no_window(qtbot) -> None:
    """A panel is built with a Workbench alone; the blocker silences an event."""
    from app.canvas.synthetic import resnet_like
    from app.document import Document
    from app.panels.groups import GroupsPanel
    from app.pruning import PruningController
    from app.workbench import Workbench

    wb = Workbench(PruningController())
    panel = GroupsPanel(workbench=wb)
    qtbot.addWidget(panel)
    seen = []
    wb.events.selection_changed.connect(seen.append)
    doc = Document("net.pt", "net.pt", resnet_like(2, 2), "1,3,224,224")
    wb.open_document(doc)
    assert panel.model.rowCount() == len(doc.summary.groups) > 3
    gid = doc.summary.groups[2].id
    wb.select(group=gid)
    assert panel.selected_group() == gid  # the panel follows the workbench
    assert seen[-1].group == gid
    panel.select_group(doc.summary.groups[3].id)  # and the workbench follows the panel
    assert wb.selection.group == doc.summary.groups[3].id
    n = len(seen)
    with wb.events.blocker("selection_changed"):
        wb.select(group=gid)
    assert len(seen) == n  # blocked: no echo
    assert panel.selected_group() == doc.summary.groups[3].id


def test_job_eta_and_never_backwards() -> None:
    from app.workbench import Workbench

    wb = Workbench()
    job = wb.job_started("prune", "Pruning…")
    job.started -= 10.0  # ten seconds in
    wb.job_progress("prune", 0.5, "half")
    assert job.eta_seconds(now=job.started + 10.0) == pytest.approx(10.0)
    wb.job_progress("prune", 0.3, "late report")
    assert job.fraction == 0.5
    assert "about 10 s left" in job.text()
    wb.job_ended("prune")
    assert not wb.busy


# ------------------------------------------------------------------ canvas


def test_overlay_survives_collapse_and_expand(qtbot, demo_window) -> None:
    """The planned widths ("⇒" and bars) are on the canvas after every relayout, and a
    collapsed block shows its before → after MACs and params."""
    win = demo_window
    preview = wait_preview(qtbot, win)
    changed = {lp.name: lp for lp in preview.layers if lp.out_after != lp.out_before}
    assert "block.conv1" in changed
    assert "⇒" in layer_item(win, "block.conv1").sub
    with qtbot.waitSignal(win.viewChanged, timeout=TIMEOUT):
        win.collapse_path("block")
    block = blocks_of(win)["block"]
    members = [lp for lp in preview.layers if lp.name.startswith("block.")]
    macs_b = sum(lp.macs_before for lp in members)
    macs_a = sum(lp.macs_after for lp in members)
    assert win.canvas.block_totals(block.node.member_ids)[:2] == (macs_b, macs_a)
    assert "MACs" in block.sub and "⇒" in block.sub and block.kept is not None
    assert "⇒" in layer_item(win, "stem.0").sub  # outside the block: still shown
    with qtbot.waitSignal(win.viewChanged, timeout=TIMEOUT):
        win.expand_block(block.node.id)
    item = layer_item(win, "block.conv1")
    assert "⇒" in item.sub and item.kept == pytest.approx(
        changed["block.conv1"].out_after / changed["block.conv1"].out_before
    )


def test_block_ratio_edits_every_group_inside(qtbot, demo_window) -> None:
    win = demo_window
    with qtbot.waitSignal(win.viewChanged, timeout=TIMEOUT):
        win.collapse_path("block")
    block = blocks_of(win)["block"]
    win.on_node_clicked(block.node.id)
    assert win.properties.node.is_block and win.properties.editor.isVisible()
    win.properties.editor.ratio.setValue(0.25)
    inside = {g.root for g in win.document.summary.groups if g.root.startswith("block.")}
    assert inside and {win.pruning.plan.group_ratios[r] for r in inside} == {0.25}
    win.act_undo.trigger()
    assert not inside & set(win.pruning.plan.group_ratios)


def test_expand_is_one_level_and_keeps_the_block_in_view(qtbot, window) -> None:
    open_and_wait(qtbot, window, "big.pt")
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.collapse_path("layer2")
    window.view.set_scale(1.0)
    window.view.centerOn(0, 0)  # the user looks elsewhere
    block = blocks_of(window)["layer2"]
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.expand_block(block.node.id)
    inner = sorted(blocks_of(window))
    assert inner == ["layer2.0", "layer2.1"]  # one level: sub-blocks stay folded
    visible = window.view.visible_scene_rect()
    for name in inner:
        item = blocks_of(window)[name]
        assert visible.contains(item.pos()), name  # the expanded block is on screen
    # collapsing keeps the new block in view too
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.collapse_path("layer2")
    assert window.view.visible_scene_rect().contains(blocks_of(window)["layer2"].pos())


def test_status_bar_forgets_an_expanded_block(qtbot, window) -> None:
    """The status bar named the selected block after it was expanded (stale text)."""
    open_and_wait(qtbot, window, "big.pt")
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.collapse_path("layer2")
    assert window.status_label.text().startswith("Collapsed layer2 (")
    block = blocks_of(window)["layer2"]
    window.on_node_clicked(block.node.id)
    assert window.status_label.text() == "layer2 (Block)"
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.expand_block(block.node.id)
    assert window.workbench.selection.node is None
    text = window.status_label.text()
    assert text.startswith("Expanded layer2 (") and "2 inner blocks still folded" in text
    window.on_node_clicked(layer_item(window, "layer1.0.conv1").node.id)
    assert window.status_label.text().startswith("layer1.0.conv1 (Conv2d)")
    window.workbench.events.status.emit("Saved plan.json")  # another message stays put
    window.workbench.select()
    assert window.status_label.text() == "Saved plan.json"


def test_big_graphs_open_collapsed(qtbot, window, fake_loader, monkeypatch) -> None:
    from app.canvas import prepare

    monkeypatch.setattr(prepare, "AUTO_COLLAPSE_OVER", 40)
    monkeypatch.setattr(prepare, "AUTO_COLLAPSE_TARGET", 30)
    open_and_wait(qtbot, window, "big.pt")  # 52 nodes > 40
    assert blocks_of(window) and len(window.scene.node_items) <= 30
    assert prepare.initial_collapse(window.document.summary.nodes)
    assert prepare.AUTO_COLLAPSE_OVER < 1000


def test_module_tree_reveals_a_hidden_layer(qtbot, window) -> None:
    open_and_wait(qtbot, window, "big.pt")
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.collapse_path("layer2")
    tree = window.module_tree
    assert "layer2" in tree.items and "layer2.0.conv1" in tree.items
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        tree._clicked(tree.items["layer2.0.conv1"], 0)
    qtbot.waitUntil(lambda: window.workbench.selection.node == "layer2.0.conv1", timeout=TIMEOUT)
    assert "layer2.1" in blocks_of(window)  # the sibling stays folded
    assert tree.tree.currentItem() is tree.items["layer2.0.conv1"]
    assert window.properties.rows["Name"] == "layer2.0.conv1"


def test_tooltips_at_low_zoom(qtbot, window) -> None:
    open_and_wait(qtbot, window, "big.pt")
    window.view.set_scale(0.05)  # far out: the overview replaces the items
    assert window.scene.overview_mode
    item = layer_item(window, "layer1.0.conv1")
    pos = window.view.mapFromScene(item.pos())
    assert window.view.tooltip_at(pos).startswith("layer1.0.conv1")


def test_names_keep_their_distinguishing_part() -> None:
    from app.canvas.names import common_prefix, distinct_short_names, drop_prefix

    names = [f"features.{i}.mlp.0" for i in range(3)]
    short = distinct_short_names(names)
    assert len(set(short.values())) == 3 and short["features.2.mlp.0"] == "2.mlp.0"
    roots = ["features.denseblock1.denselayer1.conv1", "features.denseblock1.denselayer12.conv1"]
    prefix = common_prefix(roots)
    assert prefix == "features.denseblock1."
    assert drop_prefix(roots[1], prefix) == "…denselayer12.conv1"


def test_canvas_labels_drop_whole_leading_parts_and_keep_the_block_index(qtbot, window) -> None:
    """Node titles on DenseNet keep "denseblock3.denselayer12.conv1" whole (the box grows
    for it); any shortening drops whole leading parts, never characters of a part."""
    open_and_wait(qtbot, window, "densenet.pt")
    item = layer_item(window, "features.denseblock3.denselayer12.conv1")
    assert item.title == "…denseblock3.denselayer12.conv1"
    fm = window.scene.style.title_metrics
    assert fm.horizontalAdvance(item.title) <= item.rect.width() - item.STRIPE - 16
    for it in window.scene.node_items.values():
        name, title = it.node.name, it.title
        assert title == name or (
            title.startswith("…") and ("." + name).endswith("." + title[1:])
        ), (name, title)
    with qtbot.waitSignal(window.viewChanged, timeout=TIMEOUT):
        window.collapse_path("features.denseblock2.denselayer7")
    block = blocks_of(window)["features.denseblock2.denselayer7"]
    assert "denseblock2.denselayer7" in block.title
    block.set_block_totals((142_499_840, 35_900_000, 45_440, 11_200))  # DenseNet's numbers
    assert block.sub == "MACs 142.5M ⇒ 35.9M · params 45.4k ⇒ 11.2k"  # not cut


def test_groups_table_drops_the_shared_prefix(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    model = window.groups_panel.model
    shown = [model.index(r, 1).data() for r in range(model.rowCount())]
    roots = [g.root for g in model.groups]
    assert len(set(shown)) == len(shown)  # every row reads differently
    assert window.groups_panel.table.textElideMode() == Qt.ElideLeft
    assert all(
        model.index(r, 1).data(Qt.ToolTipRole).startswith(roots[r]) for r in range(len(roots))
    )


def test_densenet_names_fit_the_groups_table_with_ratio_and_after_in_view(
    qtbot, window
) -> None:
    """At the default dock width the table shows "…denseblock3.denselayer12.conv1" whole
    and the Ratio and After columns inside the view; narrower, whole leading parts go."""
    from app.panels.groups import NAME_PAD, PLANNED_COL, RATIO_COL

    open_and_wait(qtbot, window, "densenet.pt")
    panel = window.groups_panel
    table, header = panel.table, panel.table.horizontalHeader()
    qtbot.waitUntil(lambda: header.sectionSize(1) > 100, timeout=TIMEOUT)
    rows = {g.root: r for r, g in enumerate(panel.model.groups)}
    row = rows["features.denseblock3.denselayer12.conv1"]

    def in_view(col: int) -> bool:
        left = header.sectionViewportPosition(col)
        return left >= 0 and left + header.sectionSize(col) <= table.viewport().width()

    assert in_view(RATIO_COL) and in_view(PLANNED_COL)
    shown = panel.name_shown(row)
    assert shown == "…denseblock3.denselayer12.conv1"
    assert table.fontMetrics().horizontalAdvance(shown) + NAME_PAD <= header.sectionSize(1)
    window.resizeDocks([window.groups_dock], [440], Qt.Horizontal)  # the user narrows it
    qtbot.waitUntil(lambda: window.groups_dock.width() <= 450, timeout=TIMEOUT)
    assert in_view(RATIO_COL) and in_view(PLANNED_COL)
    narrow = panel.name_shown(row)
    assert narrow == "…denselayer12.conv1"  # a part goes whole, never "…nseblock3"
    assert panel.name_shown(rows["features.transition2.conv"]) == "…transition2.conv"


def _drawn_tick_labels(axis) -> list[tuple[object, str]]:
    """(rect, text) of each tick label the axis would paint now, from pyqtgraph itself."""
    from PySide6.QtGui import QImage, QPainter

    image = QImage(10, 10, QImage.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _flags, text in texts]


def test_chart_names_bars_apart_without_repeats_or_overlap(qtbot) -> None:
    """DenseNet's 200 bars: the labels drawn are distinct, never overlap, name the bar
    under them, and more appear (still apart) in a wider panel and when zoomed in."""
    from types import SimpleNamespace

    from app.panels.preview import PreviewPanel

    names = [f"features.denseblock{b}.denselayer{k}.conv{c}"
             for b in (1, 2, 3, 4) for k in range(1, 26) for c in (1, 2)]
    layers = [SimpleNamespace(name=n, type="Conv2d", out_before=128, out_after=64,
                              in_before=64, in_after=32, params_before=10, params_after=5,
                              macs_before=100, macs_after=50) for n in names]
    preview = SimpleNamespace(layers=layers, macs_before=1, macs_after=1,
                              params_before=1, params_after=1)
    panel = PreviewPanel()
    qtbot.addWidget(panel)
    panel.resize(360, 420)
    panel.show()
    panel.show_preview(preview)
    qtbot.wait(50)
    axis = panel.axis

    def check() -> list[str]:
        drawn = _drawn_tick_labels(axis)
        texts = [t for _, t in drawn]
        assert len(texts) == len(set(texts)), texts  # no "conv1 conv1 conv1"
        rects = sorted((r for r, _ in drawn), key=lambda r: r.left())
        assert all(a.right() <= b.left() for a, b in zip(rects, rects[1:], strict=False)), texts
        return texts

    narrow = check()
    assert len(narrow) >= 1 and all(t.startswith("denseblock") for t in narrow)  # index kept
    panel.resize(1400, 420)  # undocked and widened
    qtbot.waitUntil(lambda: axis.width() > 1000, timeout=TIMEOUT)
    wide = check()
    assert len(wide) > len(narrow) and len(wide) >= 4
    panel.plot.setXRange(40, 60, padding=0)
    qtbot.wait(50)
    near = check()
    by_short = {n.split(".", 1)[1]: i for i, n in enumerate(names)}
    assert len(near) >= 4 and all(40 <= by_short[t] <= 60 for t in near)  # bars in view


# ------------------------------------------------------------------ properties


def test_properties_show_attributes_shapes_and_follow_group_selection(qtbot, demo_window) -> None:
    win = demo_window
    win.on_node_clicked(win.document.node_by_name("stem.0").id)
    rows = win.properties.rows
    assert rows["kernel size"] == "3×3" and rows["stride"] == "1×1" and rows["padding"] == "1×1"
    assert rows["groups"] == "1" and rows["dilation"] == "1×1"
    assert rows["weight shape"] == "16×1×3×3"
    # selecting a group row replaces the layer shown (no stale Properties)
    g = next(g for g in win.document.summary.groups if g.root == "block.conv1")
    win.groups_panel.select_group(g.id)
    assert win.properties.rows["Name"] == "block.conv1"
    # the locked classifier says why
    win.on_node_clicked(win.document.node_by_name("fc").id)
    assert "Locked" in win.properties.rows and win.properties.rows["Locked"]


def test_properties_rows_keep_their_room_beside_the_depth_box(qtbot, demo_window) -> None:
    """With the layer editor and the depth box shown, the rows were squeezed to ~3; now
    the tree keeps at least eight rows' height and the dock scrolls."""
    from PySide6.QtWidgets import QScrollArea

    from app.panels.properties import TREE_MIN_HEIGHT

    win = demo_window
    win.props_dock.raise_()
    win.workbench.select("block.conv1")
    qtbot.waitUntil(lambda: win.depth_box.isVisible(), timeout=TIMEOUT)
    assert win.properties.editor.isVisible()
    assert win.properties.tree.height() >= TREE_MIN_HEIGHT
    rows = win.properties.tree.topLevelItemCount()
    row_h = win.properties.tree.sizeHintForRow(0)
    assert rows >= 8 and win.properties.tree.viewport().height() >= 6 * row_h
    assert isinstance(win.props_dock.widget(), QScrollArea)


def test_lock_reason_names_the_engine_reason() -> None:
    import torch

    from app import engine_api
    from app.document import Document
    from app.panels.layer_info import head_counts, lock_reason

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    x = torch.zeros(1, 3, 8, 8)
    from engine.workflow import Session

    session = Session(model, x, input_spec="1,3,8,8")
    session.trace()
    doc = engine_api.document_of(session, "m", "m")
    roots = {g.root for g in doc.summary.groups}
    locked = [n.name for n in doc.summary.nodes if n.is_layer and n.name not in roots]
    assert locked == ["2"]
    assert "output" in lock_reason(doc, "2")
    mha = torch.nn.Module()
    mha.attn = torch.nn.MultiheadAttention(16, 4)
    plan = engine_api.new_plan(doc).replace(prune_num_heads=True, head_pruning_ratio=0.5)
    assert head_counts(Document("a", "a", doc.summary, "", model=mha), "attn", plan) == (4, 2)


# ------------------------------------------------------------------ versions & keep


def test_keep_starts_a_fresh_plan_and_the_original_stays_reachable(qtbot, demo_window) -> None:
    win = demo_window
    wb = win.workbench
    win.workbench.plans.set_layer_ratio("stem.0", 0.25)
    original_plan = win.pruning.plan
    original_doc = win.document
    result = prune_and_keep(qtbot, win)
    assert [v.name for v in wb.versions] == ["original", "pruned 1"]
    assert win.document is result.document
    plan = win.pruning.plan
    assert (plan.pruning_ratio, plan.layer_ratios, plan.group_ratios) == (0.0, {}, {})
    assert plan.importance == original_plan.importance  # options carry over
    preview = wait_preview(qtbot, win)
    assert preview.macs_after == preview.macs_before  # nothing proposed at once
    assert wb.versions[1].metrics["macs"] == result.macs_after
    # the original is one click away, with the plan it was left with
    win.versions_panel._activated(win.versions_panel.tree.topLevelItem(0))
    assert win.document is original_doc
    assert win.pruning.plan == original_plan
    diff = wb.compare("original", "pruned 1")
    assert diff.metrics["macs"] == (result.macs_before, result.macs_after)
    assert any(w.layer == "stem.0" for w in diff.widths)
    win.versions_panel.compare()
    assert "original → pruned 1" in win.versions_panel.diff.toPlainText()


def test_export_names_its_version_and_asks_before_overwriting(qtbot, demo_window, tmp_path) -> None:
    win = demo_window
    dialog = win.open_export_dialog()
    assert "original" in dialog.windowTitle()
    assert "unpruned" in dialog.version_note.text()  # before pruning: said, not silent
    assert "“original”" in dialog.export_button.text()
    dialog.close()
    prune_and_keep(qtbot, win)
    dialog = win.open_export_dialog()
    assert "pruned 1" in dialog.windowTitle() and "pruned1" in dialog.path.text()
    dialog.format.setCurrentIndex(dialog.format.findData("pytorch"))
    target = tmp_path / "out.pt"
    target.write_bytes(b"keep me")
    asked = []
    dialog.confirm = lambda path: asked.append(path) or False
    dialog.path.setText(str(target))
    dialog.start()
    assert asked == [str(target)] and target.read_bytes() == b"keep me"
    dialog.confirm = lambda path: True
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT) as blocker:
        dialog.start()
    assert "pruned 1" in dialog.status.text()
    assert blocker.args[0].report.ok  # .pt read back and run: same outputs
    assert "reloaded with a safe reader: yes" in dialog.report.toPlainText()
    dialog.path.setText(str(tmp_path / "missing" / "x.pt"))
    dialog.start()
    assert (
        "does not exist" in dialog.status.text() and "Traceback" not in dialog.report.toPlainText()
    )
    assert dialog.format.findData("pt2") >= 0
    dialog.close()


# ------------------------------------------------------------------ progress


def test_progress_moves_during_a_prune(qtbot, demo_window) -> None:
    win = demo_window
    fractions: list[float] = []
    bar: list[int] = []
    win.pruning.pruneProgress.connect(lambda f, m: fractions.append(f))
    win.workbench.events.job_changed.connect(lambda job: bar.append(win.progress.value()))
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT):
        win.prune()
    win.result_dialog.close()
    assert fractions == sorted(fractions)
    inside = [f for f in fractions if 0.05 < f < 0.75]  # the old bar had none here
    assert len(set(inside)) >= 5
    assert len(set(bar)) >= 6 and max(bar) >= 90


def test_progress_moves_through_calibration_and_evaluation_batches(
    qtbot, demo_window, digit_folders
) -> None:
    """With the data panel's digits, a data criterion's calibration pass and both
    evaluations move the bar batch by batch (they used to sit on one value)."""
    win = demo_window
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    with qtbot.waitSignal(win.data_panel.dataChanged, timeout=TIMEOUT):
        win.data_panel.open_path(str(digit_folders.heldout))
    assert win.pruning.calibration == ("data", str(digit_folders.heldout))
    seen: list[tuple[int, str]] = []  # (bar value, status text) as the user sees them
    win.workbench.events.job_changed.connect(
        lambda job: seen.append((win.progress.value(), win.status_label.text()))
        if job.running else None)
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as done:
        win.prune()
    win.result_dialog.close()
    report = done.args[0][0].report
    assert report.metrics_after is not None
    values = [v for v, _ in seen]
    assert values == sorted(values)
    n = -(-report.metrics_after.samples // 32)  # the 20 % evaluation split, batches of 32
    assert n >= 3
    for which in ("original", "pruned"):
        rows = [(v, t) for v, t in seen if f"evaluating the {which} model: batch" in t]
        assert [t.split(": batch ")[1].split(" ")[0] for _, t in rows] == [
            f"{k}/{n}" for k in range(1, n + 1)]
        assert len({v for v, _ in rows}) == n, rows  # the bar moves with every batch
    cal = [v for v, t in seen if "calibration batch" in t and "(gradients)" in t]
    assert len(cal) == 8 and len(set(cal)) >= 4  # 256 calibration samples / 32


# ------------------------------------------------------------------ input shape


def hand_macs(h: int, w: int) -> int:
    """DigitsNet MACs per sample, by Torch-Pruning's counting rules, worked by hand:
    conv = out elements x (cin x k x k); BN = 2 x elements; ReLU = elements; pool = input
    elements; Linear = in x out + bias."""
    hw, q = h * w, (h // 2) * (w // 2)
    stem = 16 * hw * 1 * 9 + 2 * 16 * hw + 16 * hw
    branch_a = 16 * hw * 16 + 2 * 16 * hw + 16 * hw
    branch_b = 16 * hw * 16 * 9 + 2 * 16 * hw + 16 * hw
    pool1 = 32 * hw
    block = 2 * (32 * q * 32 * 9 + 2 * 32 * q + 32 * q)  # two conv-bn-relu (relu twice)
    pool = 32 * q
    fc = 32 * 10 + 10
    return stem + branch_a + branch_b + pool1 + block + pool + fc


def test_input_shape_edit_changes_macs_exactly_and_is_remembered(qtbot, demo_window) -> None:
    win = demo_window
    assert wait_preview(qtbot, win).macs_before == hand_macs(8, 8) == 483146
    assert win.settings_panel.input_spec.text() == "1,1,8,8"
    win.settings_panel.input_spec.setText("1,1,12,12")
    with qtbot.waitSignal(win.documentChanged, timeout=TIMEOUT):
        win.settings_panel.input_apply.click()
    preview = wait_preview(qtbot, win)
    assert preview.macs_before == hand_macs(12, 12) == 1086666
    assert win.document.input_spec == "1,1,12,12"
    assert win.prefs.input_spec("arborist:demo") == "1,1,12,12"
    with qtbot.waitSignal(win.documentChanged, timeout=TIMEOUT):
        win.open_demo()  # remembered for this model
    assert win.document.input_spec == "1,1,12,12"
    win.settings_panel.input_spec.setText("1,x")
    win.settings_panel.input_apply.click()
    assert "Input shape not applied" in win.status_label.text()


# ------------------------------------------------------------------ unsaved edits


def test_unsaved_edits_prompt_on_quit_and_open(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    window.close()  # no edits: no question
    window.show()
    window.workbench.plans.set_group_ratio(window.document.summary.groups[1].root, 0.3)
    asked = []
    window.ask = lambda title, text, buttons, default: asked.append(text) or QMessageBox.Cancel
    assert window.open_source("b.pt") is False  # Cancel keeps the model and its edits
    assert window.close() is False and window.isVisible()
    assert len(asked) == 2 and "unsaved" in asked[0]
    window.ask = lambda *a: QMessageBox.Discard
    open_and_wait(qtbot, window, "b.pt")
    assert window.document.source == "b.pt"


# ------------------------------------------------------------------ small defects


def test_f_fits_the_view_instead_of_typing(qtbot, window) -> None:
    open_and_wait(qtbot, window, "big.pt")
    window.view.set_scale(1.0)
    window.activateWindow()
    qtbot.keyClick(window.view, Qt.Key_F)
    assert window.search.text() == ""
    assert window.view.current_scale() == pytest.approx(window.view.fit_scale(), rel=1e-3)
    assert window.search.focusPolicy() == Qt.ClickFocus


def test_spinboxes_refuse_instead_of_clamping(qtbot, demo_window) -> None:
    win = demo_window
    box = win.settings_panel.ratio
    before = win.pruning.plan.pruning_ratio
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "1.5")
    qtbot.keyClick(box, Qt.Key_Return)
    assert win.pruning.plan.pruning_ratio == before
    assert "outside" in win.status_label.text()
    box.setValue(0.225)
    assert win.pruning.plan.pruning_ratio == 0.225 and box.text() == "0.225"


def test_target_line_goes_with_undo(qtbot, demo_window) -> None:
    win = demo_window
    with qtbot.waitSignal(win.pruning.solved, timeout=TIMEOUT):
        win.settings_panel.solve.click()
    qtbot.waitUntil(lambda: win.pruning.plan.pruning_ratio != 0.5, timeout=TIMEOUT)
    assert "keeps" in win.settings_panel.solve_label.text()
    win.act_undo.trigger()
    assert win.settings_panel.solve_label.text() == ""


def test_status_says_a_dialog_waits_for_the_input_shape(
    qtbot, window, fake_loader, monkeypatch
) -> None:
    from app import engine_api

    def needs_shape(source, **kw):
        raise engine_api.InputShapeRequired(source, "no shape", suggestion="1,3,64,64")

    monkeypatch.setattr(window, "loader", needs_shape)
    with qtbot.waitSignal(window.loads.failed, timeout=TIMEOUT):
        window.open_source("x.pt")
    assert "Waiting for an input shape" in window.status_label.text()
    window.last_dialog.close()


def test_dark_theme_reaches_the_chart_and_toolbar_labels_stay(qtbot, window) -> None:
    window.set_theme("dark")
    assert window.preview_panel.plot.backgroundBrush().color().name() == "#1e2126"
    open_and_wait(qtbot, window, "net.pt")
    window.workbench.plans.set_group_ratio(window.document.summary.groups[1].root, 0.3)
    assert window.tb_undo.text() == "Undo" and window.tb_undo.isEnabled()
    assert "ratio" in window.tb_undo.toolTip()


def test_closed_models_are_released(qtbot, window) -> None:
    open_and_wait(qtbot, window, "a.pt")
    ref = weakref.ref(window.document)
    open_and_wait(qtbot, window, "b.pt")
    gc.collect()
    assert ref() is None


def test_file_dialogs_start_in_the_last_folder(window, tmp_path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"")
    window.prefs.set_last_folder(str(path), "model")
    assert window.prefs.last_folder("model") == str(tmp_path)
    assert window.prefs.last_folder("plan") != os.getcwd() or os.getcwd() == os.path.expanduser("~")


def test_output_check_has_a_scale(qtbot, demo_window) -> None:
    from app.dialogs.prune_result import output_check_text

    win = demo_window
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as blocker:
        win.prune()
    win.result_dialog.close()
    result = blocker.args[0][0]
    assert result.output_scale and result.output_scale > 0
    assert "% of the largest original output" in output_check_text(result)


def test_add_version_takes_a_recovered_model(qtbot, demo_window) -> None:
    """The API the recovery dialog uses: a bare model is traced and joins the history."""
    import copy

    win = demo_window
    wb = win.workbench
    model = copy.deepcopy(win.document.model)
    version = wb.add_version("recovered", model, {"accuracy": 0.99})
    assert [v.name for v in wb.versions] == ["original", "recovered"]
    assert win.document.model is model and version.metrics["accuracy"] == 0.99
    assert version.parent == "original" and win.pruning.plan.pruning_ratio == 0.0
    assert len(win.document.summary.nodes) == len(wb.versions[0].document.summary.nodes)
    assert "recovered" in win.windowTitle()


def test_input_shape_change_with_versions_asks_first(qtbot, demo_window) -> None:
    win = demo_window
    prune_and_keep(qtbot, win)
    win.ask = lambda *a: QMessageBox.No
    win.settings_panel.input_spec.setText("1,1,12,12")
    win.settings_panel.input_apply.click()
    assert len(win.workbench.versions) == 2 and "unchanged" in win.status_label.text()


def test_one_panel_follows_plan_events_of_a_bare_workbench(qtbot) -> None:
    """No window and no job runner: the plan (and its undo stack) live in the workbench,
    and a panel built on it shows each plan edit, undo and redo."""
    from app.canvas.synthetic import resnet_like
    from app.document import Document
    from app.panels.groups import RATIO_COL, GroupsPanel
    from app.workbench import Workbench

    wb = Workbench()
    panel = GroupsPanel(workbench=wb)
    qtbot.addWidget(panel)
    doc = Document("net.pt", "net.pt", resnet_like(2, 2), "1,3,224,224")
    wb.open_document(doc)
    row = 2
    root = doc.summary.groups[row].root
    cell = panel.model.index(row, RATIO_COL)
    seen = []
    wb.events.plan_changed.connect(seen.append)
    assert not wb.unsaved_edits
    assert wb.plans.set_group_ratio(root, 0.3)
    assert seen[-1].group_ratios == {root: 0.3} and seen[-1] is wb.plan
    assert panel.model.data(cell) == "0.30 (group)"
    assert panel.model.data(cell, Qt.EditRole) == pytest.approx(0.3)
    assert wb.unsaved_edits
    wb.plans.stack.undo()
    assert wb.plan.group_ratios == {}
    assert panel.model.data(cell) != "0.30 (group)"
    wb.plans.stack.redo()
    assert panel.model.data(cell) == "0.30 (group)"


def test_first_taylor_preview_reports_each_calibration_batch(
    qtbot, demo_window, digit_folders
) -> None:
    """The preview's first gradient pass over the data panel's digits says how far it is,
    batch by batch, on the preview state the panel shows (it used to sit on one line)."""
    import re

    win = demo_window
    with qtbot.waitSignal(win.data_panel.dataChanged, timeout=TIMEOUT):
        win.data_panel.open_path(str(digit_folders.heldout))
    wait_preview(qtbot, win)
    states: list[str] = []
    win.workbench.events.preview_state.connect(states.append)
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    qtbot.waitUntil(lambda: win.pruning.plan.importance == "taylor", timeout=TIMEOUT)
    wait_preview(qtbot, win)
    batches = [
        (int(m[1]), int(m[2]))
        for s in states
        if (m := re.search(r"gradients on the calibration data: batch (\d+) of (\d+)", s))
    ]
    assert len(batches) >= 2, states
    total = batches[0][1]
    assert [d for d, _ in batches] == list(range(1, total + 1))
    assert {t for _, t in batches} == {total}
