"""Plan edits (pure) and their undo/redo through the window's QUndoStack, on a fake model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app import plan_edits as pe  # noqa: E402
from app.plan_editor import PlanEditor  # noqa: E402
from engine.plan import PruningPlan  # noqa: E402
from tests.app.helpers import open_and_wait  # noqa: E402


def test_edits_return_new_plans_and_leave_the_input_alone() -> None:
    base = PruningPlan()
    p = pe.set_group_ratio(base, "layer1.0.conv1", 0.3)
    p = pe.set_layer_ratio(p, "fc", 0.1)
    p = pe.set_ignored(p, ["conv1"], True)
    assert base == PruningPlan()
    assert p.group_ratios == {"layer1.0.conv1": 0.3}
    assert p.layer_ratios == {"fc": 0.1}
    assert p.ignored_layers == ["conv1"]
    assert pe.set_ignored(p, ["conv1"], False).ignored_layers == []
    assert pe.set_group_ratio(p, "layer1.0.conv1", None).group_ratios == {}
    with pytest.raises(ValueError, match="outside"):
        pe.set_group_ratio(base, "x", 1.0)
    with pytest.raises(AttributeError, match="no setting"):
        pe.set_options(base, prune_everything=True)


def test_ignoring_drops_the_layers_ratios_and_a_ratio_un_ignores() -> None:
    """The engine rejects a layer that is both ignored and given a ratio: edits keep the
    plan valid by construction."""
    p = pe.make_scope(PruningPlan(), ["a", "b"], 0.4)
    p = pe.set_group_ratio(p, "c", 0.2)
    p = pe.set_layer_ratio(p, "d", 0.1)
    ignored = pe.set_ignored(p, ["a", "c", "d"], True)
    assert ignored.ignored_layers == ["a", "c", "d"]
    assert [s.layers for s in ignored.scopes] == [["b"]]
    assert ignored.group_ratios == {} and ignored.layer_ratios == {}
    ignored.validate()
    again = pe.set_group_ratio(ignored, "c", 0.3)
    assert again.ignored_layers == ["a", "d"] and again.group_ratios == {"c": 0.3}
    assert pe.make_scope(again, ["a", "d"], 0.5).ignored_layers == []
    assert pe.set_ignored(pe.make_scope(p, ["b"], 0.1), ["b"], True).scopes[0].layers == ["a"]
    left = pe.leave_scopes(pe.make_scope(p, ["x"], 0.1), ["a", "b"])
    assert [(s.layers, s.name) for s in left.scopes] == [(["x"], "#2")]


def test_a_layer_moves_into_a_new_scope_and_empty_scopes_vanish() -> None:
    p = pe.make_scope(PruningPlan(), ["a", "b"], 0.4)
    assert [(s.layers, s.ratio, s.name) for s in p.scopes] == [(["a", "b"], 0.4, "#1")]
    p = pe.make_scope(p, ["b", "c"], 0.2)
    assert [(s.layers, s.name) for s in p.scopes] == [(["a"], "#1"), (["b", "c"], "#2")]
    p = pe.make_scope(p, ["a"], 0.6)  # scope 1 emptied -> removed; name reused
    assert [(s.layers, s.ratio, s.name) for s in p.scopes] == [
        (["b", "c"], 0.2, "#2"),
        (["a"], 0.6, "#1"),
    ]
    assert pe.ratio_of(p, "c") == pe.RatioSource(0.2, "scope #2")
    assert pe.ratio_of(p, "zzz") == pe.RatioSource(0.5, "default")
    assert pe.ratio_of(pe.set_ignored(p, ["c"], True), "c").ratio is None


def test_undo_redo_restore_exact_plans_and_drags_merge(qtbot) -> None:
    editor = PlanEditor()
    editor.reset(PruningPlan())
    seen = []
    editor.planChanged.connect(seen.append)
    assert editor.edit("g", pe.set_group_ratio, "conv1", 0.3)
    assert not editor.edit("same again", pe.set_group_ratio, "conv1", 0.3)  # no-op: no command
    for v in (0.55, 0.6, 0.65):  # one spin-box drag = one undo step
        editor.edit("ratio", pe.set_options, pruning_ratio=v, merge_key="ratio")
    assert editor.stack.count() == 2
    assert editor.plan.pruning_ratio == 0.65
    editor.stack.undo()
    assert editor.plan == PruningPlan(group_ratios={"conv1": 0.3})
    editor.stack.undo()
    assert editor.plan == PruningPlan()
    editor.stack.redo()
    editor.stack.redo()
    assert editor.plan == PruningPlan(group_ratios={"conv1": 0.3}, pruning_ratio=0.65)
    assert seen[-1] is editor.plan


def test_groups_table_edits_ratio_scope_and_ignore_undoably(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    groups = window.document.summary.groups
    panel = window.groups_panel
    g0, g1, g2 = groups[1], groups[2], groups[3]
    # Inline edit of the Ratio column goes through setData -> undoable plan edit.
    row = next(r for r in range(panel.proxy.rowCount()) if panel.proxy.index(r, 0).data() == g0.id)
    assert panel.proxy.setData(panel.proxy.index(row, 4), 0.3) is False
    assert window.pruning.plan.group_ratios == {g0.root: 0.3}
    assert panel.proxy.index(row, 4).data() == "0.30 (group)"
    panel.select_groups([g1.id, g2.id])
    assert panel.selected_roots() == [g1.root, g2.root]
    window.make_scope_from_selection()
    scope = window.pruning.plan.scopes[0]
    assert scope.layers == [g1.root, g2.root] and scope.ratio == 0.5
    # Editing one scoped row's ratio changes the scope's shared ratio.
    panel.ratioEdited.emit(g2.root, 0.7)
    assert window.pruning.plan.scopes[0].ratio == 0.7
    assert window.pruning.plan.group_ratios == {g0.root: 0.3}
    panel.ignoreRequested.emit([g0.root], True)
    assert window.pruning.plan.ignored_layers == [g0.root]
    assert panel.proxy.index(row, 4).data() == "ignored"
    # Ctrl+Z four times walks back to the empty plan; Ctrl+Shift+Z redoes one.
    window.activateWindow()
    for _ in range(4):
        window.act_undo.trigger()
    assert window.pruning.plan == window.pruning.plan.replace(
        group_ratios={}, scopes=[], ignored_layers=[]
    )
    assert window.pruning.plan.group_ratios == {} and window.pruning.plan.scopes == []
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert window.pruning.plan.group_ratios == {g0.root: 0.3}


def test_settings_panel_edits_are_undoable_and_follow_undo(qtbot, window) -> None:
    open_and_wait(qtbot, window, "net.pt")
    sp = window.settings_panel
    sp.ratio.setValue(0.3)
    sp.mode.setCurrentIndex(sp.mode.findData("isomorphic"))
    sp.criterion.setCurrentIndex(sp.criterion.findData("taylor"))
    plan = window.pruning.plan
    assert (plan.pruning_ratio, plan.global_pruning, plan.isomorphic) == (0.3, True, True)
    assert plan.importance == "taylor"
    assert sp.data_warning.isVisible() and "random" in sp.data_warning.text()
    window.act_undo.trigger()
    window.act_undo.trigger()
    assert window.pruning.plan.importance == "magnitude"
    assert sp.criterion.currentData() == "magnitude"  # the widget follows the undo
    assert sp.mode.currentData() == "local"
    assert sp.ratio.value() == pytest.approx(0.3)


def test_plan_file_round_trip_and_bad_plan_is_explained(qtbot, window, tmp_path) -> None:
    open_and_wait(qtbot, window, "net.pt")
    g = window.document.summary.groups[0]
    window.workbench.plans.set_group_ratio(g.root, 0.25)
    path = tmp_path / "plan.json"
    window.plan_files.save(str(path))
    saved = window.pruning.plan
    window.act_undo.trigger()
    assert window.plan_files.open(str(path))
    assert window.pruning.plan == saved
    bad = tmp_path / "bad.json"
    bad.write_text('{"pruning_ratio": 1.5, "colour": "red"}')
    before = window.pruning.plan
    assert not window.plan_files.open(str(bad))
    assert window.pruning.plan == before
    assert "colour" in window.last_dialog.detailedText()


def test_groups_context_menu_offers_scope_and_ignore_actions(qtbot, window) -> None:
    from PySide6.QtCore import QPoint

    open_and_wait(qtbot, window, "net.pt")
    groups = window.document.summary.groups
    panel = window.groups_panel
    panel.select_groups([groups[1].id, groups[2].id])
    panel._menu(QPoint(5, 5))
    texts = [a.text() for a in panel.last_menu.actions() if a.text()]
    assert texts == [
        "Clear ratios of 2 groups",
        "Make user scope of 2 groups",
        "Ignore root layers",
        "Un-ignore root layers",
    ]
    next(a for a in panel.last_menu.actions() if a.text().startswith("Make user")).trigger()
    assert window.pruning.plan.scopes[0].layers == [groups[1].root, groups[2].root]
    panel.last_menu.close()
    panel.select_groups([groups[2].id])
    panel._menu(QPoint(5, 5))
    leave = next(a for a in panel.last_menu.actions() if a.text() == "Remove from user scope")
    leave.trigger()
    assert window.pruning.plan.scopes[0].layers == [groups[1].root]
    panel.last_menu.close()
