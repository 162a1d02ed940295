"""Export the open (pruned) model: ONNX with opset and dynamic batch, or PyTorch, then
show the engine's validation report. The write runs in a worker and can be cancelled;
a failure is explained in the dialog and leaves no file behind (the engine writes
atomically and refuses to overwrite the model's source)."""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import engine_api
from app.document import Document
from app.workers import JobFailure, JobRunner

FORMATS = {
    "onnx": ("ONNX (validated with ONNX Runtime)", ".onnx"),
    "pytorch": ("PyTorch model (full pickle, .pt; read back and checked)", ".pt"),
    "pt2": ("torch.export program (.pt2; read back and checked)", ".pt2"),
    "checkpoint": ("Arborist safe checkpoint (weights only, .pt)", ".pt"),
}


def confirm_overwrite(parent: QWidget, path: str) -> bool:
    """Asked before replacing an existing file; tests replace ExportDialog.confirm."""
    answer = QMessageBox.question(
        parent,
        "Replace file?",
        f"{path} already exists. Replace it?",
        QMessageBox.Yes | QMessageBox.No,
        QMessageBox.No,
    )
    return answer == QMessageBox.Yes


def report_text(result: engine_api.ExportResult) -> str:
    """Human summary of an export: every format is read back and run (ONNX in full)."""
    size = os.path.getsize(result.path) if os.path.exists(result.path) else 0
    lines = [f"Wrote {result.path} ({size / 1e6:.2f} MB)"]
    rep = result.report
    lines.append(f"Validation: {'OK' if rep.ok else 'PROBLEM'}")
    diff = "n/a" if rep.max_abs_diff is None else f"{rep.max_abs_diff:.3g}"
    verdict = "match" if rep.outputs_match else "MISMATCH"
    onnx = rep.onnx
    if onnx is not None:
        lines.append(f"  exporter: {onnx.exporter}, opset {onnx.opset}")
        lines.append(f"  onnx.checker: {'passed' if onnx.onnx_checker_ok else 'FAILED'}")
        lines.append(
            f"  ONNX Runtime vs PyTorch: {verdict} (max |Δ| {diff}, tolerance {rep.tolerance:g})"
        )
        for kind, infos in (("input", onnx.inputs), ("output", onnx.outputs)):
            for t in infos:
                lines.append(f"  {kind} '{t.name}': {t.dtype} {t.shape}")
    else:
        lines.append(f"  reloaded with a safe reader: {'yes' if rep.reloaded else 'FAILED'}")
        lines.append(
            f"  reloaded file vs PyTorch: {verdict} (max |Δ| {diff}, tolerance {rep.tolerance:g})"
        )
    lines += [f"  error: {e}" for e in rep.errors]
    return "\n".join(lines)


class ExportDialog(QDialog):
    """Exports one version of the model and always says which one it writes."""

    exported = Signal(object)  # ExportResult
    versionChosen = Signal(str)  # noqa: N815 - the user picked another version to export

    def __init__(
        self,
        doc: Document,
        parent: QWidget | None = None,
        start_dir: str = "",
        version: str = "",
        versions: list[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.version_name = version or ("pruned" if doc.pruned else "original")
        self.confirm = lambda path: confirm_overwrite(self, path)
        self.start_dir = start_dir
        self.result_data: engine_api.ExportResult | None = None
        self._existed = False
        self.runner = JobRunner(self, cancel_types=(engine_api.ExportCancelled,))
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

        self.format = QComboBox(self)
        for key, (label, _) in FORMATS.items():
            self.format.addItem(label, key)
        self.version = QComboBox(self)
        self.version.addItems(versions or [self.version_name])
        self.version.setCurrentText(self.version_name)
        self.version.currentTextChanged.connect(self.versionChosen)
        self.version_note = QLabel("", self)
        self.version_note.setWordWrap(True)
        self.path = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.opset = QSpinBox(self)
        self.opset.setRange(7, 23)
        self.opset.setValue(17)
        self.dynamic = QCheckBox("Dynamic batch dimension", self)
        self.dynamic.setChecked(True)
        form = QFormLayout()
        form.addRow("Version", self.version)
        form.addRow("", self.version_note)
        form.addRow("Format", self.format)
        form.addRow("File", row)
        form.addRow("ONNX opset", self.opset)
        form.addRow("", self.dynamic)
        self.progress = QProgressBar(self, minimum=0, maximum=100)
        self.progress.hide()
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("The validation report appears here after exporting.")
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.report, 1)
        layout.addLayout(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._name_version()
        self.resize(640, 420)

    def _file_base(self) -> str:
        root = self.doc.title.split(" (")[0]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in root)
        suffix = "" if self.version_name == "original" else "_" + self.version_name.replace(" ", "")
        return safe + suffix

    def _name_version(self) -> None:
        """Title, note, button and file name all say which version is written."""
        v = self.version_name
        self.setWindowTitle(f"Export version “{v}”")
        if not self.doc.pruned:
            self.version_note.setText(
                "⚠ Nothing is pruned in this version: this writes the original, unpruned "
                "model. Prune and keep a version first to export a smaller one."
            )
            self.version_note.setStyleSheet("color: #b45309;")
        else:
            self.version_note.setText(f"Writes the model of version “{v}” ({self.doc.title}).")
            self.version_note.setStyleSheet("")
        self.export_button.setText(f"Export “{v}”")
        ext = FORMATS[self.fmt()][1]
        self.path.setText(os.path.join(self.start_dir or os.getcwd(), self._file_base() + ext))

    def set_document(self, doc: Document, version: str) -> None:
        self.doc, self.version_name = doc, version
        self._name_version()

    def fmt(self) -> str:
        return self.format.currentData()

    def _format_changed(self) -> None:
        onnx = self.fmt() == "onnx"
        self.opset.setEnabled(onnx)
        self.dynamic.setEnabled(onnx)
        root, _ = os.path.splitext(self.path.text())
        self.path.setText(root + FORMATS[self.fmt()][1])

    def _browse(self) -> None:
        ext = FORMATS[self.fmt()][1]
        path, _ = QFileDialog.getSaveFileName(
            self, "Export model", self.path.text(), f"*{ext};;All files (*)"
        )
        if path:
            self.path.setText(path)

    def start(self) -> None:
        path = self.path.text().strip()
        if not path:
            self._fail("Choose a file name to export to.")
            return
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):  # said plainly, before any work and without a traceback
            self._fail(f"The folder {folder} does not exist. Choose an existing folder.")
            return
        if os.path.exists(path) and not self.confirm(path):
            self._fail("Not exported: the existing file was kept.")
            return
        doc, fmt, opset, dyn = self.doc, self.fmt(), self.opset.value(), self.dynamic.isChecked()
        self.result_data = None
        self._existed = os.path.exists(path)
        self.report.clear()
        self.status.setStyleSheet("")
        self.status.setText(f"Exporting version “{self.version_name}” to {path}…")
        self.progress.setValue(0)
        self.progress.show()
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.runner.submit(
            lambda progress, cancelled: engine_api.export_model(
                doc, path, fmt, opset, dyn, progress, cancelled
            ),
            "export",
        )

    def cancel(self) -> None:
        self.runner.cancel()

    def _idle(self) -> None:
        self.progress.hide()
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(100 * fraction))
        self.status.setText(message)

    def _on_finished(self, result: engine_api.ExportResult) -> None:
        self._idle()
        self.result_data = result
        ok = result.report.ok  # every format is validated (reloaded and run)
        self.status.setStyleSheet("" if ok else "color: #b91c1c;")
        v = self.version_name
        self.status.setText(
            f"Exported version “{v}” and validated it." if ok
            else f"Exported version “{v}”, but validation found a problem (see below)."
        )
        self.report.setPlainText(report_text(result))
        self.exported.emit(result)

    def _fail(self, message: str) -> None:
        self.status.setStyleSheet("color: #b91c1c;")
        self.status.setText(message)

    def _on_failed(self, failure: JobFailure) -> None:
        self._idle()
        kept = "The existing file was left as it was." if self._existed else "No file was written."
        self._fail(f"Export failed: {failure.message}\n{kept}")
        # our own checks explain themselves; only an unexpected error needs the traceback
        expected = isinstance(failure.exception, engine_api.ExportFailed)
        self.report.setPlainText("" if expected else failure.details)

    def _on_cancelled(self) -> None:
        self._idle()
        self._fail("Export cancelled; no file was written.")

    def done(self, r: int) -> None:
        self.runner.cancel(quiet=True)
        super().done(r)
