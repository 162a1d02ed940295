"""Target solver, canvas context menu, inline layer editor, calibration data and failures,
on the real demo model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPoint  # noqa: E402

from app import engine_api  # noqa: E402
from tests.app.helpers import TIMEOUT, wait_preview  # noqa: E402


def menu_action(menu, *path: str):
    """The action reached by following submenu titles, then an action's text prefix."""
    for title in path[:-1]:
        menu = next(a.menu() for a in menu.actions() if a.menu() and a.text() == title)
    return next(a for a in menu.actions() if a.text().startswith(path[-1]))


def test_keep_half_the_macs_sets_the_ratio_through_the_solver(qtbot, demo_window) -> None:
    win = demo_window
    sp = win.settings_panel
    sp.keep.setValue(50)
    sp.target_kind.setCurrentIndex(sp.target_kind.findData("macs"))
    with qtbot.waitSignal(win.pruning.solved, timeout=TIMEOUT) as blocker:
        sp.solve.click()
    solved = blocker.args[0].result
    assert win.pruning.plan.pruning_ratio == pytest.approx(solved.ratio, abs=1e-4)
    assert solved.achieved <= 0.5
    preview = wait_preview(qtbot, win)
    assert preview.macs_after / preview.macs_before == pytest.approx(solved.achieved, abs=1e-9)
    assert sp.ratio.value() == pytest.approx(solved.ratio, abs=0.005)
    assert f"keeps {100 * solved.achieved:.1f} % of MACs" in sp.solve_label.text()
    win.act_undo.trigger()  # the solver's choice is one undoable edit
    assert win.pruning.plan.pruning_ratio == 0.5


def test_canvas_menu_sets_layer_ratio_and_ignores(qtbot, demo_window) -> None:
    win = demo_window
    node = win.document.node_by_name("block.conv1")
    vid = win.view_id(node.id)
    win._node_menu(vid, QPoint(10, 10))
    menu_action(win.last_dialog, "Pruning ratio of this layer", "0.25").trigger()
    assert win.pruning.plan.layer_ratios == {"block.conv1": 0.25}
    preview = wait_preview(qtbot, win)
    assert {lp.name: lp.out_after for lp in preview.layers}["block.conv1"] == 24
    win.last_dialog.close()
    win._node_menu(vid, QPoint(10, 10))
    menu_action(win.last_dialog, "Ignore layer").trigger()
    assert win.pruning.plan.ignored_layers == ["block.conv1"]
    assert win.pruning.plan.layer_ratios == {}
    preview = wait_preview(qtbot, win)
    assert {lp.name: lp.out_after for lp in preview.layers}["block.conv1"] == 32
    win.last_dialog.close()
    win._node_menu(vid, QPoint(10, 10))
    assert menu_action(win.last_dialog, "Un-ignore layer") is not None
    win.last_dialog.close()
    win._node_menu(vid, QPoint(10, 10))
    menu_action(win.last_dialog, "Pruning ratio of this layer", "Other…").trigger()
    assert win.properties.node.name == "block.conv1"  # the inline editor, on this layer
    assert win.properties.editor.isVisible()
    win.last_dialog.close()


def test_inline_layer_editor_on_the_selected_node(qtbot, demo_window) -> None:
    win = demo_window
    node = win.document.node_by_name("branch_b.0")
    win.on_node_clicked(win.view_id(node.id))
    ed = win.properties.editor
    assert ed.isVisible() and ed.ratio.specialValueText() == ed.ratio.text()
    ed.ratio.setValue(0.75)
    assert win.pruning.plan.layer_ratios == {"branch_b.0": 0.75}
    wait_preview(qtbot, win)
    assert ed.planned.text() == "in 8 → out 4"  # stem halved by default; 16 * 0.25 kept
    ed.clear.click()
    assert win.pruning.plan.layer_ratios == {}
    ed.ignored.setChecked(True)
    assert win.pruning.plan.ignored_layers == ["branch_b.0"]
    win.act_undo.trigger()
    assert not ed.ignored.isChecked()  # the editor follows undo


def test_missing_calibration_folder_is_explained_and_the_app_lives(
    qtbot, demo_window, tmp_path
) -> None:
    win = demo_window
    sp = win.settings_panel
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    sp.folder = str(tmp_path)  # an empty folder: no images
    sp.calibration.setCurrentIndex(sp.calibration.findData("folder"))
    with qtbot.waitSignal(win.pruning.previewFailed, timeout=TIMEOUT):
        sp.calibrationChanged.emit()
    assert "no images" in win.preview_panel.state_label.text()
    sp.calibration.setCurrentIndex(sp.calibration.findData("demo"))
    sp.calibrationChanged.emit()
    preview = wait_preview(qtbot, win)
    assert preview.macs_after < preview.macs_before


def test_a_calibration_folder_goes_through_engine_data(tmp_path, digit_folders) -> None:
    """The settings' "Image folder" calibrates through engine.data (the CLI's reader): a
    labeled folder of 30 digits gives exactly the cross-entropy computed by hand on them."""
    import shutil

    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    xs, ys = [], []
    for label in range(3):
        (tmp_path / str(label)).mkdir()
        for png in sorted((digit_folders.heldout / str(label)).iterdir())[:10]:
            shutil.copy(png, tmp_path / str(label) / png.name)
            xs.append(np.asarray(Image.open(png), dtype=np.float32)[None] / 255.0)
            ys.append(label)
    doc = engine_api.load_and_trace("arborist:demo")
    loss = engine_api.make_calibration(doc, "folder", str(tmp_path))
    with torch.no_grad():
        by_hand = F.cross_entropy(doc.model(torch.from_numpy(np.stack(xs))), torch.tensor(ys))
        assert float(loss(doc.model)) == pytest.approx(float(by_hand), rel=1e-5)


def test_iterative_pruning_reports_every_step_and_matches_its_preview(qtbot, demo_window):
    win = demo_window
    win.settings_panel.steps.setValue(3)
    win.settings_panel.ratio.setValue(0.6)
    assert (win.pruning.plan.iterative_steps, win.pruning.plan.pruning_ratio) == (3, 0.6)
    preview = wait_preview(qtbot, win)
    messages: list[str] = []
    win.pruning.pruneProgress.connect(lambda f, m: messages.append(m))
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as blocker:
        win.prune()
    result = blocker.args[0][0]
    assert result.steps_done == 3
    assert (result.macs_after, result.params_after) == (preview.macs_after, preview.params_after)
    assert {m.split(":")[0] for m in messages if m.startswith("step ") and "pruned" in m} == {
        "step 1/3",
        "step 2/3",
        "step 3/3",
    }
    assert win.status_label.text().startswith("Pruned a copy")


def test_chart_key_is_in_the_title_not_over_the_bars(qtbot, demo_window) -> None:
    """The before/after key is part of the chart's title, in the bars' colours: a legend
    item inside the plot once covered the tallest bar of the demo's short chart."""
    panel = demo_window.preview_panel
    qtbot.waitUntil(lambda: bool(panel.chart_names), timeout=TIMEOUT)
    plot_item = panel.plot.getPlotItem()
    assert plot_item.legend is None
    assert not [i for i in plot_item.items if type(i).__name__ == "LegendItem"]
    title = plot_item.titleLabel.text
    for bars, label in ((panel.bars_before, "before"), (panel.bars_after, "after")):
        colour = bars.opts["brush"].color().name()  # '#rrggbb'
        assert f"color: {colour}'>&#9632;</span> {label}" in title
    # the tallest bar reaches into the top tenth of the plot: no headroom wasted on a legend
    top = max(panel.bars_before.opts["height"])
    assert plot_item.vb.viewRange()[1][1] < top * 1.1
