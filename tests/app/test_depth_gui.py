"""Depth pruning in the window (demo): block importance measured in a worker on the demo
digits, shown on the canvas and in Properties; Remove / Keep block as undoable plan edits
whose exact preview changes by the block's own MACs."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PySide6.QtCore import QPoint  # noqa: E402

from tests.app.helpers import TIMEOUT, wait_preview  # noqa: E402


def _hand_importance() -> float:
    """1 - cos of the demo block's input and output over the demo's training digits."""
    from engine.data.digits import load_split
    from engine.models.digits_net import load_demo

    model, _ = load_demo()
    x, _ = load_split("train")
    seen = {}
    model.block.register_forward_hook(lambda m, a, out: seen.update(i=a[0], o=out))
    with torch.no_grad():
        model(torch.from_numpy(x))
    cos = F.cosine_similarity(seen["i"].flatten(1), seen["o"].flatten(1), dim=1)
    return float((1 - cos).mean())


def _macs_without_block(doc) -> tuple[int, int, int, int]:
    from engine.depth import drop_blocks
    from engine.utils import count_ops_and_params

    full_macs, full_params = count_ops_and_params(doc.model, doc.example_inputs)
    copy_ = copy.deepcopy(doc.model)
    drop_blocks(copy_, ["block"])
    macs, params = count_ops_and_params(copy_, doc.example_inputs)
    return int(full_macs), int(macs), int(full_params), int(params)


def test_measure_show_remove_undo(qtbot, demo_window):
    win = demo_window
    wb = win.workbench
    assert list(wb.depth.blocks) == ["block"] and not wb.depth.measured
    with qtbot.waitSignal(win.depth.measured, timeout=TIMEOUT):
        win.act_measure_blocks.trigger()
    facts = wb.depth.blocks["block"]
    assert abs(facts.importance - _hand_importance()) < 1e-5
    full_macs, macs, full_params, params = _macs_without_block(wb.document)
    assert (facts.macs_saved, facts.params_saved) == (full_macs - macs, full_params - params)
    # the canvas: the block (or the layers inside it) carries the mark and the number
    marked = [it for it in win.scene.node_items.values() if it.depth is not None]
    assert marked and all(it.depth.block == "block" for it in marked)
    assert all(f"{facts.importance:.4f}" in it.toolTip() for it in marked)
    # Properties: the selected layer inside the block shows the block
    wb.select("block.conv1")
    box = win.depth_box
    assert box.isVisible() and f"{facts.importance:.4f}" in box.importance.text()
    assert f"{facts.params_saved:,} params" in box.saves.text()
    # Remove block: one undoable edit; the exact preview drops by the block's MACs
    wb.plans.set_options("No width pruning", {"pruning_ratio": 0.0})
    before = wait_preview(qtbot, win)
    assert before.macs_after == full_macs
    box.toggle.click()
    assert wb.plan.drop_blocks == ["block"] and box.toggle.text() == "Keep block"
    after = wait_preview(qtbot, win)
    assert (after.macs_after, after.params_after) == (macs, params)
    assert before.macs_after - after.macs_after == facts.macs_saved
    assert all(it.depth.dropped for it in marked if it.scene() is not None)
    wb.plans.stack.undo()
    assert wb.plan.drop_blocks == []
    restored = wait_preview(qtbot, win)
    assert restored.macs_after == full_macs


def test_context_menus_remove_and_keep(qtbot, demo_window):
    win = demo_window
    wb = win.workbench
    menu = win.module_tree.context_menu_for("block")
    remove = next(a for a in menu.actions() if a.text().startswith("Remove block block"))
    remove.trigger()
    assert wb.plan.drop_blocks == ["block"]
    assert win.module_tree.context_menu_for("stem") is None  # not a removable block
    vid = next(v for v, it in win.scene.node_items.items() if it.depth is not None)
    win._node_menu(vid, QPoint(10, 10))
    keep = next(a for a in win.last_dialog.actions() if a.text() == "Keep block block")
    win.last_dialog.close()
    keep.trigger()
    assert wb.plan.drop_blocks == []
    wb.plans.stack.undo()
    assert wb.plan.drop_blocks == ["block"]


def test_a_failing_measurement_is_reported_and_the_window_lives(qtbot, demo_window,
                                                                monkeypatch):
    import engine.depth

    def broken(*_args, **_kwargs):
        raise RuntimeError("shape mismatch in the user's block")

    monkeypatch.setattr(engine.depth, "block_importance", broken)
    win = demo_window
    with qtbot.waitSignal(win.depth.failed, timeout=TIMEOUT) as got:
        win.depth.measure()
    assert "shape mismatch" in got.args[0]
    assert "Block importance failed: shape mismatch" in win.status_label.text()
    assert win.isVisible() and not win.workbench.depth.measured
    assert not win.workbench.busy  # the job ended: the status bar's progress is gone
    monkeypatch.undo()
    with qtbot.waitSignal(win.depth.measured, timeout=TIMEOUT):  # and it works again
        win.depth.measure()
    assert win.workbench.depth.measured


def test_plan_target_dialog_can_remove_blocks(qtbot, demo_window, tmp_path, monkeypatch):
    monkeypatch.setenv("ARBORIST_CACHE", str(tmp_path / "cache"))
    from app.sensitivity import open_plan_dialog

    win = demo_window
    ctl = win.sensitivity
    with qtbot.waitSignal(ctl.scanReady, timeout=TIMEOUT):
        win.act_scan.trigger()
    dialog = open_plan_dialog(win)
    dialog.value.setValue(0.3)
    dialog.depth.setChecked(True)
    with qtbot.waitSignal(ctl.planned, timeout=TIMEOUT):
        dialog.compute.click()
    result = dialog.result_
    assert list(ctl._costs) == ["block"] and ctl._costs["block"].kl > 0
    assert result.preview.macs_ratio <= 0.3
    assert result.plan.drop_blocks == result.candidates[-1].dropped
    assert "block" in result.plan.drop_blocks  # 30 % of the MACs: the residual block goes
    assert "blocks removed: block" in dialog.summary.text()
    dialog.accept()
    assert win.workbench.plan.drop_blocks == ["block"]
    after = wait_preview(qtbot, win)
    assert after.macs_after == result.preview.macs_after  # the exact preview agrees
    win.workbench.plans.stack.undo()
    assert win.workbench.plan.drop_blocks == []


def test_a_kept_version_starts_without_the_removed_blocks():
    from app.workbench import fresh_plan
    from engine.plan import PruningPlan

    plan = PruningPlan(pruning_ratio=0.3, drop_blocks=["block"])
    assert fresh_plan(plan).drop_blocks == [] and plan.drop_blocks == ["block"]


def test_prune_with_a_removed_block_and_keep_it(qtbot, demo_window):
    from engine.utils import count_ops_and_params

    win = demo_window
    wb = win.workbench
    wb.plans.set_options("No width pruning", {"pruning_ratio": 0.0})
    wb.set_block_dropped("block", True)
    planned = wait_preview(qtbot, win)
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as done:
        win.prune()
    result, view = done.args[0]
    win.result_dialog.close()
    model = result.document.model
    assert isinstance(model.block, torch.nn.Identity)
    macs, params = count_ops_and_params(model, result.document.example_inputs)
    assert (int(macs), int(params)) == (planned.macs_after, planned.params_after)
    win.accept_pruned(result, view)
    assert wb.version.name.startswith("pruned")
    assert wb.plan.drop_blocks == [] and wb.depth.blocks == {}  # nothing left to remove
    assert all(it.depth is None for it in win.scene.node_items.values())
    wait_preview(qtbot, win)  # the kept version's plan previews without a problem
