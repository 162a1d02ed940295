"""'Plan for a Target': the latency device (PyTorch CPU / ONNX Runtime CPU / CUDA) reaches
the engine, and devices that cannot be used here are disabled with the reason."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from tests.app.helpers import TIMEOUT  # noqa: E402


def _item(dialog, key):
    i = dialog.device.findData(key)
    return i, dialog.device.model().item(i)


def test_choosing_ort_reaches_the_engine_with_device_ort(qtbot, demo_window, tmp_path,
                                                        monkeypatch):
    import engine.latency
    from app.sensitivity import open_plan_dialog
    from engine.plan import PlanError

    monkeypatch.setenv("ARBORIST_CACHE", str(tmp_path / "cache"))
    win = demo_window
    ctl = win.sensitivity
    ctl.scan = SimpleNamespace(key="fake")  # the planner is stubbed: any scan will do
    tables, loops = [], []

    def fake_table(model, inputs, *, device="cpu", **kw):
        tables.append(device)
        return SimpleNamespace(device=device, full_model_ms=4.0)

    def fake_loop(scan, pv, table, model, inputs, budget, **kw):
        loops.append((table.device, budget))
        raise PlanError("stopped by the test after the engine call")

    monkeypatch.setattr(engine.latency, "cached_table", fake_table)
    monkeypatch.setattr(engine.latency, "plan_latency_budget", fake_loop)
    dialog = open_plan_dialog(win)
    i, item = _item(dialog, "ort")
    assert item.isEnabled()  # onnxruntime is installed
    dialog.kind.setCurrentIndex(dialog.kind.findData("latency"))
    dialog.device.setCurrentIndex(i)
    dialog.value.setValue(3.0)
    with qtbot.waitSignal(ctl.planFailed, timeout=TIMEOUT) as failed:
        dialog.compute.click()
    assert tables == ["ort"] and loops == [("ort", 3.0)]
    assert "stopped by the test" in failed.args[0]
    assert failed.args[0] in dialog.summary.text()  # the engine's answer is shown
    assert dialog.compute.isEnabled()
    # the measured table is kept per device: the proposed budget follows the choice
    assert ctl.latency_before_ms("ort") == 4.0 and ctl.latency_before_ms("cpu") is None
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.device.setCurrentIndex(i)
    assert dialog.value.value() == 2.8  # 0.7 x the ORT table's whole-model time
    dialog.close()


def test_unusable_devices_are_disabled_with_the_reason(qtbot, monkeypatch):
    from app.dialogs.plan_target import PlanTargetDialog
    from app.sensitivity import SensitivityController

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ctl = SensitivityController(SimpleNamespace(document=None))
    dialog = PlanTargetDialog(ctl)
    qtbot.addWidget(dialog)
    _, cpu = _item(dialog, "cpu")
    i_ort, ort = _item(dialog, "ort")
    i_cuda, cuda = _item(dialog, "cuda")
    assert cpu.isEnabled() and not ort.isEnabled() and not cuda.isEnabled()
    assert "pip install onnxruntime" in dialog.device.itemData(i_ort, Qt.ToolTipRole)
    assert "no CUDA device" in dialog.device.itemData(i_cuda, Qt.ToolTipRole)
    assert dialog.device.currentData() == "cpu"
