"""Sensitivity scan, heat overlay, curves and 'Plan for a Target' in the window (demo)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from tests.app.helpers import TIMEOUT, wait_preview  # noqa: E402

SHOTS = os.environ.get("ARBORIST_SCREENSHOTS")  # a folder: also save screenshots there


def _shot(widget, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(SHOTS) / name))


def test_scan_heat_curve_plan_dialog_and_undo(qtbot, demo_window, tmp_path, monkeypatch):
    monkeypatch.setenv("ARBORIST_CACHE", str(tmp_path / "cache"))
    win = demo_window
    ctl = win.sensitivity
    assert win.act_scan.isEnabled()
    with qtbot.waitSignal(ctl.scanReady, timeout=TIMEOUT) as got:
        win.act_scan.trigger()
    scan = got.args[0]
    assert [c.name for c in scan.curves] == ["stem.0", "branch_a.0", "branch_b.0", "block.conv1"]
    # heat in the groups table and on the canvas
    model = win.groups_panel.model
    assert set(model.heat) == {c.name for c in scan.curves}
    row = next(i for i, g in enumerate(model.groups) if g.root == "stem.0")
    color = model.data(model.index(row, 0), Qt.BackgroundRole)
    assert isinstance(color, QColor)
    heated = [it for it in win.scene.node_items.values() if it.heat is not None]
    assert any(it.node.name == "stem.0" for it in heated)
    fragile = max(model.heat, key=model.heat.get)
    assert model.heat[fragile] > model.heat["block.conv1"]  # the curves differ
    # the selected group's curve in the properties panel
    gid = model.groups[row].id
    win.select_group(gid)
    qtbot.waitUntil(lambda: win.sensitivity_curve.shown == "stem.0", timeout=TIMEOUT)
    items = win.sensitivity_curve.plot.listDataItems()
    assert items and len(items[0].getData()[0]) == len(scan.curve("stem.0").points) + 1
    _shot(win, "sensitivity_overlay.png")
    # plan for a target, shown before accepting
    from app.sensitivity import open_plan_dialog

    dialog = open_plan_dialog(win)
    dialog.value.setValue(0.41)
    with qtbot.waitSignal(ctl.planned, timeout=TIMEOUT):
        dialog.compute.click()
    result = dialog.result_
    assert result.preview.macs_ratio <= 0.41
    assert "predicted agreement" in dialog.summary.text()
    assert "predicted latency" in dialog.summary.text()
    assert len(dialog.chart.candidates) == len(result.candidates) >= 3
    _shot(dialog, "plan_target_pareto.png")
    # a click on another Pareto point loads that candidate
    dialog.chart.candidateClicked.emit(1)
    first = result.candidates[1]
    assert dialog.chosen_plan.group_ratios == {k: v for k, v in first.ratios.items()}
    dialog.chart.candidateClicked.emit(len(result.candidates) - 1)
    before = win.pruning.plan
    dialog.accept()
    assert win.pruning.plan == result.plan
    wait_preview(qtbot, win)
    assert win.pruning.last_preview.preview.macs_ratio <= 0.41
    win.workbench.plans.stack.undo()
    assert win.pruning.plan == before  # one undoable edit


def test_plan_without_scan_or_random_data_is_explained(qtbot, demo_window, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv("ARBORIST_CACHE", str(tmp_path / "cache"))
    win = demo_window
    ctl = win.sensitivity
    with qtbot.waitSignal(ctl.jobs.cancelled, timeout=TIMEOUT):
        win.act_scan.trigger()
        win.act_cancel_scan.trigger()
    assert ctl.scan is None and "cancelled" in win.status_label.text()
    with qtbot.waitSignal(ctl.planFailed, timeout=TIMEOUT) as got:
        ctl.plan_for("macs", 0.5)
    assert "scan first" in got.args[0]
    win.pruning.calibration = ("random", "")
    with qtbot.waitSignal(ctl.scanFailed, timeout=TIMEOUT) as failed:
        ctl.start_scan()
    assert "real data" in failed.args[0]
