"""The whole workbench flow on the real engine and the demo model: edit the plan, preview,
prune a copy, accept, export ONNX; plus cancel during pruning and export failures."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from app import engine_api  # noqa: E402
from app.document import DEMO_SOURCE  # noqa: E402
from tests.app.helpers import TIMEOUT, wait_preview  # noqa: E402


def row_of(panel, root: str) -> int:
    return next(r for r in range(panel.proxy.rowCount()) if panel.proxy.index(r, 1).data() == root)


def test_demo_edit_undo_redo_preview_prune_export(qtbot, demo_window, tmp_path) -> None:
    win = demo_window
    doc = win.document
    original = {k: v.clone() for k, v in doc.model.state_dict().items()}
    roots = [g.root for g in doc.summary.groups]
    assert roots == ["stem.0", "branch_a.0", "branch_b.0", "block.conv1"]
    panel = win.groups_panel

    # A group ratio typed into the table, then a user scope of two groups.
    panel.proxy.setData(panel.proxy.index(row_of(panel, "branch_a.0"), 4), 0.25)
    assert win.pruning.plan.group_ratios == {"branch_a.0": 0.25}
    panel.select_groups([doc.summary.groups[2].id, doc.summary.groups[3].id])
    win.make_scope_from_selection()
    plan_edited = win.pruning.plan
    assert [(s.layers, s.ratio) for s in plan_edited.scopes] == [
        (["branch_b.0", "block.conv1"], 0.5)
    ]
    panel.ratioEdited.emit("block.conv1", 0.4)  # the scope's shared ratio
    final = win.pruning.plan
    assert final.scopes[0].ratio == 0.4

    # Undo twice, redo twice: exactly the same plans, and the preview follows.
    win.act_undo.trigger()
    assert win.pruning.plan == plan_edited
    win.act_undo.trigger()
    assert win.pruning.plan.scopes == [] and win.pruning.plan.group_ratios == {"branch_a.0": 0.25}
    wait_preview(qtbot, win)
    win.act_redo.trigger()
    win.act_redo.trigger()
    assert win.pruning.plan == final
    preview = wait_preview(qtbot, win)

    # The preview is the engine's exact figure for this plan, and the GUI shows it.
    exact = engine_api.make_previewer(doc).preview(final)
    assert (preview.macs_after, preview.params_after) == (exact.macs_after, exact.params_after)
    assert preview.macs_after < preview.macs_before
    assert win.preview_panel.macs_label.text().startswith(
        f"MACs: {preview.macs_before / 1e3:.2f} k → {preview.macs_after / 1e3:.2f} k"
    )
    by_name = {lp.name: lp for lp in preview.layers}
    assert by_name["branch_a.0"].out_after == 12  # 16 channels, ratio 0.25
    assert panel.proxy.index(row_of(panel, "branch_a.0"), 5).data() == 12
    # bars: every conv/linear whose width changes (fc keeps its 10 outputs: no bar)
    assert win.preview_panel.chart_names == [
        "stem.0",
        "branch_a.0",
        "branch_b.0",
        "block.conv1",
        "block.conv2",
    ]
    assert list(win.preview_panel.bars_after.opts["height"]) == [
        by_name[n].out_after for n in win.preview_panel.chart_names
    ]
    node = doc.node_by_name("branch_a.0")
    item = win.scene.node_items[win.view_id(node.id)]
    assert item.sub.endswith("⇒ 8→12") and item.kept == pytest.approx(0.75)

    # Prune a copy: the figures are the preview's, the open model is untouched.
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as blocker:
        win.act_prune.trigger()
    result, _view = blocker.args[0]
    assert (result.macs_before, result.macs_after) == (preview.macs_before, preview.macs_after)
    assert (result.params_before, result.params_after) == (
        preview.params_before,
        preview.params_after,
    )
    pruned = engine_api.layer_widths(result.document)
    for lp in preview.layers:
        assert pruned[lp.name][1] == lp.out_after, lp.name
    for k, v in doc.model.state_dict().items():
        assert torch.equal(v, original[k]), k
    assert result.output_shape_after == (1, 10)
    assert result.accuracy_before == pytest.approx(0.9944, abs=1e-4)
    assert 0.0 <= result.accuracy_after <= 1.0
    lat = result.latency  # both models timed on the example input, interleaved
    assert lat.device == "cpu" and not lat.error
    assert lat.rounds >= 3 and lat.before_s > 0 and lat.after_s > 0
    dialog = win.result_dialog
    assert dialog.rows["Accuracy"].startswith("99.44 % → ")
    assert dialog.rows["Evaluated on"].startswith("360 held-out demo digits (360 samples")
    assert f"median of {lat.rounds} interleaved runs on the example input" in (
        dialog.rows["Latency (CPU)"]
    )
    assert dialog.table.rowCount() == len(result.layers)

    # Keep it: the canvas now shows the pruned graph.
    dialog.accept()
    assert win.document is result.document and win.document.pruned
    conv = win.document.node_by_name("branch_a.0")
    assert conv.out_channels == 12
    assert win.scene.node_items[win.view_id(conv.id)].node.out_channels == 12
    assert win.pruning.plan.scopes == [] and win.workbench.plans.stack.count() == 0

    # Export ONNX; ONNX Runtime on the file matches the pruned model.
    export = win.open_export_dialog()
    (tmp_path / "export").mkdir()
    out = tmp_path / "export" / "demo_pruned.onnx"
    export.path.setText(str(out))
    with qtbot.waitSignal(export.exported, timeout=TIMEOUT) as done:
        export.export_button.click()
    report = done.args[0].report
    assert report.ok and report.max_abs_diff <= 1e-4
    assert "Validation: OK" in export.report.toPlainText()
    from engine.io.onnx_export import run_onnxruntime

    x = engine_api._demo_digits()[0][:7]
    (ort_out,) = run_onnxruntime(out, x)  # dynamic batch: 7 digits at once
    with torch.no_grad():
        ref = win.document.model(x).numpy()
    assert ort_out.shape == (7, 10)
    np.testing.assert_allclose(ort_out, ref, atol=1e-4)
    assert os.listdir(out.parent) == ["demo_pruned.onnx"]  # no temp files left over


def test_cancel_during_pruning_leaves_the_model_and_ui_usable(
    qtbot, demo_window, monkeypatch
) -> None:
    win = demo_window
    doc = win.document
    before = {k: v.clone() for k, v in doc.model.state_dict().items()}
    entered, release = threading.Event(), threading.Event()
    real_evaluation_data = engine_api.evaluation_data

    def slow_copy(*args, **kwargs):  # holds the job inside pruning until Cancel is pressed
        entered.set()
        release.wait(20)
        return real_evaluation_data(*args, **kwargs)

    monkeypatch.setattr(engine_api, "evaluation_data", slow_copy)
    win.act_prune.trigger()
    assert win.cancel_button.isVisible() and not win.act_prune.isEnabled()
    assert entered.wait(20)
    with qtbot.waitSignal(win.pruning.pruneCancelled, timeout=TIMEOUT):
        win.cancel_button.click()
    release.set()
    win.pruning.prunes.wait(20_000)
    qtbot.wait(50)  # a late report from the stale job must not show up
    assert "cancelled" in win.status_label.text() and "unchanged" in win.status_label.text()
    assert win.document is doc and not doc.pruned and win.result_dialog is None
    for k, v in doc.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not win.cancel_button.isVisible() and win.act_prune.isEnabled()
    # Still usable: edit, preview, and a real prune afterwards.
    win.workbench.plans.set_group_ratio("stem.0", 0.5)
    preview = wait_preview(qtbot, win)
    monkeypatch.setattr(engine_api, "evaluation_data", real_evaluation_data)
    with qtbot.waitSignal(win.pruning.pruneFinished, timeout=TIMEOUT) as blocker:
        win.prune()
    assert blocker.args[0][0].macs_after == preview.macs_after


def test_export_failure_is_explained_and_leaves_no_file(qtbot, demo_window, tmp_path, monkeypatch):
    win = demo_window
    import engine.io.onnx_export as onnx_export

    def broken_exporter(model, inputs, tmp, *args, **kwargs):
        with open(tmp, "wb") as f:  # half a file, then the exporter dies
            f.write(b"\x08\x07partial-onnx")
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX is not supported")

    monkeypatch.setattr(onnx_export, "_run_exporter", broken_exporter)
    dialog = win.open_export_dialog()
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    dialog.path.setText(str(target))
    with qtbot.waitSignal(dialog.runner.failed, timeout=TIMEOUT):
        dialog.export_button.click()
    text = dialog.status.text()
    assert text.startswith("Export failed: ") and "aten::frobnicate" in text
    assert "No file was written." in text
    assert os.listdir(target.parent) == []
    assert dialog.export_button.isEnabled() and win.isVisible()


def test_export_refuses_to_overwrite_the_source_file(qtbot, tmp_path) -> None:
    doc = engine_api.load_and_trace(DEMO_SOURCE)
    src = tmp_path / "model.pt"
    src.write_bytes(b"original bytes")
    doc.source = str(src)
    with pytest.raises(engine_api.ExportFailed, match="source file"):
        engine_api.export_model(doc, str(src), "pytorch")
    assert src.read_bytes() == b"original bytes"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_cancelled_export_keeps_the_existing_file(qtbot, demo_window, tmp_path, monkeypatch):
    win = demo_window
    import engine.io.onnx_export as onnx_export

    entered, release = threading.Event(), threading.Event()
    real = onnx_export._run_exporter

    def slow_exporter(*args, **kwargs):
        entered.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "_run_exporter", slow_exporter)
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    target.write_bytes(b"yesterday's export")
    dialog = win.open_export_dialog()
    dialog.confirm = lambda path: True  # the user agrees to replace it, then cancels
    dialog.path.setText(str(target))
    dialog.export_button.click()
    assert entered.wait(20)
    dialog.cancel_button.click()
    release.set()
    dialog.runner.wait(30_000)
    qtbot.wait(50)
    assert dialog.status.text() == "Export cancelled; no file was written."
    assert dialog.result_data is None and dialog.export_button.isEnabled()
    assert target.read_bytes() == b"yesterday's export"
    assert os.listdir(target.parent) == ["model.onnx"]  # the staging folder is gone too


def test_safe_checkpoint_of_the_pruned_demo_reloads_with_the_same_outputs(tmp_path) -> None:
    doc = engine_api.load_and_trace(DEMO_SOURCE)
    plan = engine_api.new_plan(doc).replace(pruning_ratio=0.25)
    result = engine_api.prune_copy(doc, plan, None)
    path = tmp_path / "demo_pruned.pt"
    engine_api.export_model(result.document, str(path), "checkpoint")
    again = engine_api.load_model(str(path))
    x = engine_api._demo_digits()[0][:5]
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), result.document.model(x), rtol=0, atol=1e-6)
    assert engine_api.layer_table(again.model, x) == engine_api.layer_table(
        result.document.model, x
    )
