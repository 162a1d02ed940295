"""The "Recover accuracy" step after pruning: train the pruned model on the user's data.

The run happens on a QThread (`RecoveryWorker`) over a COPY of the pruned model, so the
open document never changes under the user; only plain data (curve points, progress,
the final report) crosses to the GUI thread through queued signals. Cancel stops at the
next step and leaves a checkpoint; Resume continues from it exactly. Export writes the
recovered copy through the ordinary Export dialog.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.document import Document
from app.workers import failure_of

PROGRESS_INTERVAL_S = 0.05
BUDGETS = (("epochs", "Epochs", 3.0), ("steps", "Steps", 200.0), ("minutes", "Minutes", 2.0))
LOSSES = (("auto", "Distillation + labels when present"), ("distill", "Distillation only"),
          ("labels", "Labels only"), ("both", "Distillation + labels"))


@dataclasses.dataclass(frozen=True)
class RecoveryRequest:
    """Everything a run needs, as plain values (the models are opaque engine handles)."""

    teacher: Any
    student: Any  # a copy of the pruned model; trained in place by the worker
    example_inputs: Any
    source: str
    arch: str | None
    data: str
    eval_data: str | None
    budget: dict[str, float]
    loss: str
    device: str
    lr: float
    batch_size: int
    checkpoint: str
    resume: bool


@dataclasses.dataclass(frozen=True)
class RecoveryOutcome:
    report: Any  # engine.recover.RecoveryReport
    model: Any  # the recovered copy
    metrics: dict[str, dict[str, Any] | None]  # original / pruned / recovered on the eval set


def run_request(req: RecoveryRequest, progress: Any, cancel: Any) -> RecoveryOutcome:
    """The worker's job (no Qt in here): open the data, recover, measure the three models."""
    from engine.data import DataOptions, ModelFacts, make_loader, prepare_data
    from engine.evaluate import evaluate
    from engine.recover import Budget, RecoveryConfig, recover, watched_metric

    facts = ModelFacts(source=req.source, arch=req.arch, model=req.teacher,
                       example_inputs=req.example_inputs)
    options = DataOptions(data=req.data, eval_data=req.eval_data, batch_size=req.batch_size,
                          calibration_samples=None, workers=0)
    run_data = prepare_data(options, facts)
    loader = make_loader(run_data.calibration, req.batch_size, shuffle=True, num_workers=0)
    eval_loader = None if run_data.evaluation is None else make_loader(
        run_data.evaluation, req.batch_size, num_workers=0)
    watched = None if eval_loader is None else watched_metric(eval_loader, req.teacher)
    metrics: dict[str, dict[str, Any] | None] = {"original": None, "pruned": None,
                                                 "recovered": None}
    if eval_loader is not None:
        metrics["original"] = evaluate(req.teacher, eval_loader).as_dict()
        metrics["pruned"] = evaluate(req.student, eval_loader, reference=req.teacher).as_dict()
    config = RecoveryConfig(budget=Budget(**req.budget), loss=req.loss, lr=req.lr,
                            batch_size=req.batch_size, device=req.device,
                            checkpoint=req.checkpoint)
    report = recover(req.student, loader, teacher=req.teacher, config=config,
                     metric=None if watched is None else watched.measure,
                     metric_name="none" if watched is None else watched.name,
                     greater_is_better=True if watched is None else watched.greater_is_better,
                     progress=progress, cancel=cancel, resume=req.resume)
    if eval_loader is not None:
        metrics["recovered"] = evaluate(req.student, eval_loader, reference=req.teacher).as_dict()
    return RecoveryOutcome(report, req.student, metrics)


class RecoveryWorker(QThread):
    """Runs one RecoveryRequest; every signal carries plain data or opaque handles."""

    point = Signal(object)  # engine.recover.CurvePoint
    progressed = Signal(int, int, object)  # step, total (0: unknown), eta seconds or None
    succeeded = Signal(object)  # RecoveryOutcome
    failed = Signal(object)  # app.workers.JobFailure

    def __init__(self, request: RecoveryRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.cancel_event = threading.Event()

    def run(self) -> None:
        last = [0.0]

        def progress(event: Any) -> None:
            if event.point is not None:
                self.point.emit(event.point)
                return
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or event.step == event.total:
                last[0] = now  # a tiny model steps thousands of times a second
                self.progressed.emit(event.step, event.total or 0, event.eta_s)

        try:
            outcome = run_request(self.request, progress, self.cancel_event.is_set)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI
            self.failed.emit(failure_of(exc))
        else:
            self.succeeded.emit(outcome)


class RecoverDialog(QDialog):
    """Data, budget, loss, device; Start / Cancel / Resume; live curves; three-way result."""

    recovered = Signal(object)  # RecoveryOutcome of a finished (not cancelled) run

    def __init__(self, original: Document, pruned: Document, parent: QWidget | None = None,
                 data: str = "", eval_data: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover accuracy")
        self.original, self.pruned = original, pruned
        self.worker: RecoveryWorker | None = None
        self.outcome: RecoveryOutcome | None = None
        self.export_dialog: Any = None
        self._tmp = tempfile.TemporaryDirectory(prefix="arborist-recovery-")
        self.checkpoint = str(Path(self._tmp.name) / "recovery.ckpt")
        self.points: list[Any] = []
        self.resumable = False  # a cancelled run left a checkpoint to continue from

        self.data = QLineEdit(data, self)
        self.eval_data = QLineEdit(eval_data, self)
        self.eval_data.setPlaceholderText("optional: without it 20% of the data is held out")
        self.budget_kind = QComboBox(self)
        for key, label, _ in BUDGETS:
            self.budget_kind.addItem(label, key)
        self.budget_value = QDoubleSpinBox(self, decimals=1, minimum=0.1, maximum=1e6)
        self.budget_value.setValue(BUDGETS[0][2])
        self.budget_kind.currentIndexChanged.connect(
            lambda i: self.budget_value.setValue(BUDGETS[i][2]))
        self.loss = QComboBox(self)
        for key, label in LOSSES:
            self.loss.addItem(label, key)
        self.device = QComboBox(self)
        for key in ("auto", "cpu", "cuda"):
            self.device.addItem(key, key)
        self.lr = QDoubleSpinBox(self, decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4)
        self.lr.setValue(3e-3)
        form = QFormLayout()
        form.addRow("Training data", self._with_browse(self.data))
        form.addRow("Evaluation data", self._with_browse(self.eval_data))
        budget = QHBoxLayout()
        budget.addWidget(self.budget_value)
        budget.addWidget(self.budget_kind)
        form.addRow("Budget", budget)
        form.addRow("Loss", self.loss)
        form.addRow("Device", self.device)
        form.addRow("Learning rate", self.lr)

        import pyqtgraph as pg

        self.loss_plot = pg.PlotWidget(self, title="training loss")
        self.metric_plot = pg.PlotWidget(self, title="evaluation metric")
        for plot in (self.loss_plot, self.metric_plot):
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.setLabel("bottom", "step")
            plot.setMinimumHeight(160)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#d62728", width=2),
                                              symbol="o", symbolSize=5)
        self.metric_curve = self.metric_plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2),
                                                  symbol="o", symbolSize=5)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.metric_plot)

        self.progress = QProgressBar(self, minimum=0, maximum=100)
        self.status = QLabel("Choose the data and press Start.", self)
        self.status.setWordWrap(True)
        self.result = QTableWidget(0, 4, self)
        self.result.setHorizontalHeaderLabels(["Metric", "Original", "Pruned", "Recovered"])
        self.result.verticalHeader().hide()
        self.result.setMaximumHeight(150)

        self.start_button = QPushButton("Start", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.resume_button = QPushButton("Resume", self)
        self.export_button = QPushButton("Export…", self)
        close = QPushButton("Close", self)
        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.open_export)
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.resume_button, self.export_button,
                  close):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(plots, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.result)
        layout.addLayout(buttons)
        self._set_running(False)
        self.resize(860, 720)

    def _with_browse(self, edit: QLineEdit) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        button = QPushButton("Browse…", self)
        button.clicked.connect(lambda: self._browse(edit))
        row.addWidget(button)
        return row

    def _browse(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder", edit.text())
        if path:
            edit.setText(path)

    # ---------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.worker is not None

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running and self.resumable
                                      and Path(self.checkpoint).exists())
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.outcome is not None)
        for w in (self.data, self.eval_data, self.budget_kind, self.budget_value, self.loss,
                  self.device, self.lr):
            w.setEnabled(not running)

    def request(self, resume: bool) -> RecoveryRequest:
        kind = self.budget_kind.currentData()
        value = self.budget_value.value()
        return RecoveryRequest(
            teacher=self.original.model, student=copy.deepcopy(self.pruned.model),
            example_inputs=self.pruned.example_inputs, source=self.original.source,
            arch=self.pruned.arch, data=self.data.text().strip(),
            eval_data=self.eval_data.text().strip() or None,
            budget={kind: int(value) if kind == "steps" else value},
            loss=self.loss.currentData(), device=self.device.currentData(), lr=self.lr.value(),
            batch_size=64, checkpoint=self.checkpoint, resume=resume)

    def start(self, resume: bool = False) -> None:
        if self.running:
            return
        if not self.data.text().strip():
            self.status.setText("Choose the training data first.")
            return
        if not resume:
            self.points = []
            self._redraw()
            Path(self.checkpoint).unlink(missing_ok=True)
        self.outcome = None
        self.resumable = False
        worker = RecoveryWorker(self.request(resume), self)
        worker.point.connect(self._on_point)
        worker.progressed.connect(self._on_progress)
        worker.succeeded.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(worker.deleteLater)
        self.worker = worker
        self.status.setText("Resuming from the last checkpoint…" if resume else
                            "Opening the data and re-estimating batch-norm statistics…")
        self._set_running(True)
        worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel_event.set()
            self.status.setText("Cancelling after this step…")

    def _on_point(self, point: Any) -> None:
        if self.points and point.step < self.points[-1].step:
            return  # a resumed run re-sends nothing; guard anyway
        if any(p.step == point.step and p.label == point.label for p in self.points):
            return
        self.points.append(point)
        self._redraw()

    def _redraw(self) -> None:
        losses = [(p.step, p.loss) for p in self.points if p.loss is not None]
        metrics = [(p.step, p.metric) for p in self.points if p.metric is not None]
        self.loss_curve.setData([s for s, _ in losses], [v for _, v in losses])
        self.metric_curve.setData([s for s, _ in metrics], [v for _, v in metrics])

    def _on_progress(self, step: int, total: int, eta: Any) -> None:
        if total:
            self.progress.setValue(int(100 * step / total))
        text = f"step {step}" + (f" of {total}" if total else "")
        if eta is not None:
            text += f", about {eta:.0f} s left"
        self.status.setText(text)

    def _finish(self) -> None:
        if self.worker is not None:
            self.worker.wait()
        self.worker = None
        self._set_running(False)

    def _on_done(self, outcome: RecoveryOutcome) -> None:
        report = outcome.report
        for row in report.curve:  # a resumed run carries the points from before
            self._on_point(row)
        self._finish()
        if report.metric_name != "none":
            self.metric_plot.setTitle(f"evaluation {report.metric_name}")
        if report.stopped == "cancelled":
            self.resumable = True
            self._set_running(False)
            self.status.setText(f"Cancelled at step {report.steps}; Resume continues from the "
                                "checkpoint.")
            return
        self.outcome = outcome
        self.progress.setValue(100)
        self._fill_result(outcome.metrics)
        self.status.setText(f"Recovered in {report.steps} steps ({report.seconds:.1f} s, "
                            f"{report.samples_per_s:.0f} samples/s); Export… writes it.")
        self._set_running(False)
        self.recovered.emit(outcome)

    def _on_failed(self, failure: Any) -> None:
        self._finish()
        self.status.setText(f"Recovery failed: {failure.message}")

    def _fill_result(self, metrics: dict[str, dict[str, Any] | None]) -> None:
        names = [k for k in ("accuracy", "agreement", "kl", "perplexity")
                 if any(m and k in m for m in metrics.values())]
        self.result.setRowCount(len(names))
        for row, name in enumerate(names):
            self.result.setItem(row, 0, QTableWidgetItem(name))
            for col, key in enumerate(("original", "pruned", "recovered"), start=1):
                value = (metrics.get(key) or {}).get(name)
                self.result.setItem(row, col, QTableWidgetItem("—" if value is None else
                                                               f"{value:.4f}"))

    # ---------------------------------------------------------------- export
    def recovered_document(self) -> Document | None:
        if self.outcome is None:
            return None
        return dataclasses.replace(self.pruned, model=self.outcome.model,
                                   title=self.pruned.title.replace(" (pruned)", "") +
                                   " (recovered)")

    def open_export(self) -> Any:
        doc = self.recovered_document()
        if doc is None:
            return None
        from app.dialogs.export import ExportDialog

        self.export_dialog = ExportDialog(doc, self, start_dir=str(Path.cwd()))
        self.export_dialog.open()
        return self.export_dialog

    def done(self, r: int) -> None:
        if self.worker is not None:
            self.worker.cancel_event.set()
            self.worker.wait()
            self.worker = None
        self._tmp.cleanup()
        super().done(r)


def open_recover_dialog(window: Any) -> RecoverDialog | None:
    """The window's hook: original = the model before the accepted prune, pruned = now."""
    original = getattr(window, "recover_teacher", None)
    doc = getattr(window, "document", None)
    if original is None or doc is None or not doc.pruned:
        return None
    panel = getattr(window, "data_panel", None)  # the Data panel's dataset, if one is open
    data = panel.path.text().strip() if panel is not None else ""
    eval_data = panel.eval_path.text().strip() if panel is not None else ""
    dialog = RecoverDialog(original, doc, window, data=data, eval_data=eval_data)
    workbench = getattr(window, "workbench", None)
    if workbench is not None:  # the recovered copy joins the version history
        dialog.recovered.connect(lambda outcome: add_recovered_version(workbench, outcome))
    window.last_dialog = dialog
    dialog.open()
    return dialog


def add_recovered_version(workbench: Any, outcome: RecoveryOutcome) -> Any:
    """A finished recovery becomes version "recovered" (not switched to: the dialog stays
    on the pruned document it was opened for; Versions switches, compares and exports)."""
    measured = outcome.metrics.get("recovered") or {}
    metrics = {k: float(v) for k, v in measured.items()
               if k in ("accuracy", "agreement", "kl", "perplexity") and v is not None}
    return workbench.add_version("recovered", outcome.model, metrics, switch=False)
