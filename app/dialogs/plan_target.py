"""'Plan for a target': MACs / params / latency, predicted fidelity and latency shown
before the user accepts; the Pareto chart of the planner's candidates picks others.
Latency is measured and predicted on the chosen device (PyTorch CPU, ONNX Runtime CPU or
CUDA; one that cannot be used here is listed, disabled, with the reason as its tooltip).

The dialog computes nothing itself: `controller.plan_for(target)` runs the planner off
the GUI thread and answers through `planned` / `planFailed`; Accept hands the chosen
plan back for one undoable edit.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.panels.sensitivity import ParetoChart

KINDS = (("MACs kept (fraction)", "macs"), ("Parameters kept (fraction)", "params"),
         ("Latency budget (ms)", "latency"))
DEVICES = (("PyTorch CPU", "cpu"), ("ONNX Runtime CPU", "ort"), ("CUDA GPU", "cuda"))


def device_problem(device: str) -> str | None:
    """Why latency cannot be measured on `device` here (None: it can)."""
    from engine.latency import check_device

    try:
        check_device(device)
    except ValueError as e:
        return str(e).removeprefix(f"--device {device}: ")
    return None


class PlanTargetDialog(QDialog):
    def __init__(self, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plan for a Target")
        self.controller = controller
        self.result_: Any = None
        self.chosen_plan: Any = None
        self.planned_on = ""
        self.kind = QComboBox(self)
        for text, key in KINDS:
            self.kind.addItem(text, key)
        self.value = QDoubleSpinBox(self, decimals=3, minimum=0.001, maximum=1.0, value=0.5,
                                    singleStep=0.05)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.device = QComboBox(self)
        self.device.setToolTip("Where latency is measured (a per-layer table, once per model) "
                               "and predicted; a latency budget is also checked there")
        for i, (text, key) in enumerate(DEVICES):
            self.device.addItem(text, key)
            why = device_problem(key)
            if why is not None:  # shown, but not choosable, with the reason as its tooltip
                self.device.model().item(i).setEnabled(False)
                self.device.setItemData(i, f"Unavailable: {why}", Qt.ToolTipRole)
        self.device.currentIndexChanged.connect(self._device_changed)
        self.depth = QCheckBox("Also remove whole residual blocks (depth pruning)", self)
        self.depth.setToolTip("Each removable block is priced by the fidelity lost with it "
                              "removed alone on the calibration data")
        self.compute = QPushButton("Compute", self)
        self.compute.clicked.connect(self.run)
        self.summary = QLabel("Choose a target and press Compute.", self)
        self.summary.setWordWrap(True)
        self.summary.setMinimumHeight(3 * self.summary.fontMetrics().lineSpacing() + 6)
        self.chart = ParetoChart(self)
        self.chart.candidateClicked.connect(self._pick)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Use This Plan")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.value)
        row.addWidget(self.compute)
        form.addRow("Target", self.kind)
        form.addRow("Value", row)
        form.addRow("Latency on", self.device)
        form.addRow("", self.depth)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.summary)
        lay.addWidget(self.chart)
        lay.addWidget(self.buttons)
        self.resize(640, 620)
        controller.planned.connect(self._on_planned)
        controller.planFailed.connect(self._on_failed)
        self.finished.connect(self._disconnect)

    def _disconnect(self, _result: int = 0) -> None:
        """A closed dialog stops listening (the controller outlives it)."""
        for signal, slot in ((self.controller.planned, self._on_planned),
                             (self.controller.planFailed, self._on_failed)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass

    def _device_changed(self) -> None:
        if self.kind.currentData() == "latency":  # the proposed budget follows the device
            self._kind_changed()

    def _kind_changed(self) -> None:
        if self.kind.currentData() == "latency":
            self.value.setMaximum(1e6)
            base = self.controller.latency_before_ms(self.device.currentData())
            self.value.setValue(round(0.7 * base, 3) if base else 1.0)
        else:
            self.value.setMaximum(1.0)
            self.value.setValue(min(self.value.value(), 0.5))

    def run(self) -> None:
        self.compute.setEnabled(False)
        self.summary.setText("Planning…")
        self.planned_on = self.device.currentText()  # the summary names it, even if changed
        self.controller.plan_for(self.kind.currentData(), float(self.value.value()),
                                 allow_drop_blocks=self.depth.isChecked(),
                                 device=self.device.currentData())

    def _on_planned(self, result: Any) -> None:
        self.compute.setEnabled(True)
        self.result_ = result
        cost = "latency" if self.kind.currentData() == "latency" else "macs"
        self.chart.set_candidates(result.candidates, cost)
        self._show(len(result.candidates) - 1)

    def _on_failed(self, message: str) -> None:
        self.compute.setEnabled(True)
        self.summary.setText(message)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)

    def _pick(self, index: int) -> None:
        self._show(index)

    def _show(self, index: int) -> None:
        """Show candidate `index` (the last is the planner's answer) and make it the choice."""
        result = self.result_
        c = result.candidates[index]
        final = index == len(result.candidates) - 1
        self.chosen_plan = result.plan if final else self.controller.plan_of(c)
        p = c.prediction
        lat = (f"; predicted latency {c.latency_ms:.2f} ms on {self.planned_on}"
               if c.latency_ms is not None else "")
        acc = f", accuracy {p.accuracy:.3f}" if p.accuracy is not None else ""
        n = len(result.candidates)
        which = "planner's choice" if final else f"candidate {index + 1} of {n}"
        self.summary.setText(
            f"{which}: MACs {c.macs_ratio:.3f}, params {c.params_ratio:.3f}{lat}\n"
            f"predicted agreement {p.agreement:.3f}{acc} (KL {p.kl:.3f}); "
            f"{len(c.ratios)} groups pruned"
            + (f", blocks removed: {', '.join(c.dropped)}" if c.dropped else ""))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(True)
