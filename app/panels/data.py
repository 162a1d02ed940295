"""The data panel: the user's dataset for calibration (data-driven criteria) and evaluation
(metrics before -> after every prune).

Pick a folder or a file; the panel shows what engine.data made of it (sample count,
class names, unreadable files, a strip of thumbnails with their labels), the
preprocessing in use (editable: the user's values always win) and the calibration/
evaluation split. Opening and the one counting pass over the files run in a worker
(app.workers); only plain data and QImages (thread-safe, unlike QPixmaps) come back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import engine_api
from app.document import Document
from app.workers import JobFailure, JobRunner

THUMB_PX = 48
NO_DATA = (
    "⚠ No data chosen: data-driven criteria (Taylor, Hessian) score channels on random "
    "inputs, and a prune shows no accuracy. Choose a folder of images or a tensor file."
)
DEMO_DATA = (
    "The demo brings its own digits: a prune reports accuracy on its held-out split, and the "
    "settings' \"Demo digits\" calibrates on its training split. Choose a folder or file to "
    "use your own data."
)


@dataclass
class DataInfo:
    """What the worker found: plain data plus thumbnails, for the GUI thread."""

    choice: Any  # engine.data.DataOptions (what `arborist prune --data` fills too)
    kind: str
    samples: int
    labeled: bool
    classes: list[str]
    skipped: int
    preprocessing: Any  # engine.data.Preprocessing, or None (tensors / text)
    calibration_samples: int
    evaluation_samples: int
    split_note: str
    thumbnails: list[tuple[QImage, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def inspect_data(doc: Document, choice: Any, progress, cancelled) -> DataInfo:
    """Open the data for this model, count unreadable files in one pass, split it the way
    the CLI does (engine.data.prepare_data)."""
    from engine.data import make_loader
    from engine.utils.progress import Cancelled

    progress(0.05, f"Opening {choice.data}…")
    source = engine_api.open_data(doc, choice)
    total = len(source)
    seen = 0
    # decodes every file once (the skip count); in-thread: no processes forked from the GUI
    for batch in make_loader(source, batch_size=64, num_workers=0):
        if cancelled():
            raise Cancelled()
        seen += len(batch) + batch.skipped
        progress(0.1 + 0.8 * seen / max(total, 1), f"Checked {seen} of {total} samples…")
    run = engine_api.prepare_data(doc, choice)
    evaluation = run.evaluation
    split_note = evaluation.notes[-1] if evaluation is not None and evaluation.notes else ""
    names = source.classes
    thumbs = []
    for path, label in source.sample_paths:
        image = QImage(path)
        if image.isNull():
            continue
        text = names[label] if label is not None and 0 <= label < len(names) else "—"
        thumbs.append((image.scaled(THUMB_PX, THUMB_PX, Qt.KeepAspectRatio), text))
    progress(1.0, "Data ready")
    return DataInfo(
        choice, source.kind, total, source.labeled, list(names), source.skipped,
        source.preprocessing, len(run.calibration) if run.calibration is not None else 0,
        len(evaluation) if evaluation is not None else 0, split_note, thumbs, list(source.notes),
    )


def _numbers(text: str, kind: type = float) -> tuple | None:
    """'0.5, 0.5, 0.5' -> (0.5, 0.5, 0.5); '' -> None (keep the model's value)."""
    parts = [p for p in text.replace("x", ",").replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None
    try:
        return tuple(kind(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a list of numbers: {text!r}") from None


def _size_text(value: Any) -> str:
    if value is None:
        return ""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def _floats_text(value: Any) -> str:
    return "" if value is None else ", ".join(f"{v:g}" for v in value)


class DataPanel(QWidget):
    """Emits `dataChanged(DataOptions | None)` once a dataset is open and checked."""

    dataChanged = Signal(object)  # noqa: N815 - engine.data.DataOptions or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: Document | None = None
        self.info: DataInfo | None = None
        self.runner = JobRunner(self, cancel_types=(engine_api.Cancelled,))
        self.runner.progress.connect(lambda f, m: self.status.setText(m))
        self.runner.finished.connect(self._on_loaded)
        self.runner.failed.connect(self._on_failed)

        self.path = QLineEdit(self)
        self.path.setPlaceholderText("a folder of images, or a .pt / .npz / .npy / text file")
        self.path.returnPressed.connect(lambda: self.open_path(self.path.text()))
        self.pick_folder = QPushButton("Folder…", self)
        self.pick_folder.clicked.connect(self._choose_folder)
        self.pick_file = QPushButton("File…", self)
        self.pick_file.clicked.connect(self._choose_file)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.clicked.connect(self.clear)
        self.status = QLabel(NO_DATA, self)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #b45309;")
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.thumbs = QWidget(self)
        self.thumbs_layout = QHBoxLayout(self.thumbs)
        self.thumbs_layout.setContentsMargins(0, 0, 0, 0)
        self.thumbs_layout.addStretch(1)
        strip = QScrollArea(self)
        strip.setWidget(self.thumbs)
        strip.setWidgetResizable(True)
        strip.setFixedHeight(THUMB_PX + 44)
        self.thumb_labels: list[QWidget] = []

        self.resize_edit = QLineEdit(self)
        self.crop_edit = QLineEdit(self)
        self.mean_edit = QLineEdit(self)
        self.std_edit = QLineEdit(self)
        self.grayscale = QCheckBox("grayscale", self)
        for edit, tip in (
            (self.resize_edit, "Resize: one number (shorter side) or H,W"),
            (self.crop_edit, "Centre crop: one number or H,W (empty: none)"),
            (self.mean_edit, "Per-channel mean subtracted after pixels/scale (empty: the model's)"),
            (self.std_edit, "Per-channel std divided by (empty: the model's)"),
        ):
            edit.setToolTip(tip)
        self.pre_source = QLabel("", self)
        self.apply_pre = QPushButton("Apply preprocessing", self)
        self.apply_pre.clicked.connect(self._apply_preprocessing)

        self.eval_percent = QDoubleSpinBox(self)
        self.eval_percent.setRange(5.0, 95.0)
        self.eval_percent.setSingleStep(5.0)
        self.eval_percent.setValue(20.0)
        self.eval_percent.setSuffix(" % evaluated")
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.eval_path = QLineEdit(self)
        self.eval_path.setPlaceholderText("optional: a separate evaluation set")
        self.apply_split = QPushButton("Apply split", self)
        self.apply_split.clicked.connect(self._apply_split)
        self.split_note = QLabel("", self)
        self.split_note.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        for b in (self.pick_folder, self.pick_file, self.clear_button):
            row.addWidget(b)
        pre = QFormLayout()
        pre.addRow("Resize", self.resize_edit)
        pre.addRow("Crop", self.crop_edit)
        pre.addRow("Mean", self.mean_edit)
        pre.addRow("Std", self.std_edit)
        pre.addRow("", self.grayscale)
        pre.addRow("", self.pre_source)
        pre.addRow("", self.apply_pre)
        split = QFormLayout()
        split.addRow("Evaluation", self.eval_percent)
        split.addRow("Seed", self.seed)
        split.addRow("Eval data", self.eval_path)
        split.addRow("", self.apply_split)
        split.addRow("", self.split_note)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.summary)
        layout.addWidget(strip)
        layout.addWidget(QLabel("<b>Preprocessing</b>", self))
        layout.addLayout(pre)
        layout.addWidget(QLabel("<b>Calibration / evaluation split</b>", self))
        layout.addLayout(split)
        layout.addStretch(1)
        self._set_editable(False)

    # ------------------------------------------------------------------ public

    def attach(self, wb: Any) -> None:
        """Follow the open model; the chosen dataset goes to the workbench (calibration,
        evaluation), which tells the settings."""
        wb.events.document_changed.connect(lambda doc: doc is not None and self.set_document(doc))
        self.dataChanged.connect(wb.set_data)

    @property
    def choice(self) -> Any:
        return self.info.choice if self.info is not None else None

    def set_document(self, doc: Document | None) -> None:
        """A new model: its own preprocessing applies, so the current data is re-read."""
        self.document = doc
        current = self.choice
        if self.info is None:
            self._show_no_data()  # the demo's own digits, or no data at all
        if doc is not None and current is not None:  # the new model's own preprocessing
            self._load(dataclasses.replace(current, preprocessing={}))

    def open_path(self, path: str) -> None:
        path = path.strip()
        if not path:
            return
        self.path.setText(path)
        self._load(self._options(path, {}))

    def clear(self) -> None:
        self.runner.cancel(quiet=True)
        had = self.info is not None
        self.info = None
        self.path.clear()
        self.summary.clear()
        self.split_note.clear()
        self._show_thumbnails([])
        self._show_no_data()
        self._set_editable(False)
        if had:
            self.dataChanged.emit(None)

    # ------------------------------------------------------------------ loading

    def _options(self, path: str, preprocessing: dict[str, Any]) -> Any:
        return engine_api.data_options(
            path,
            eval_data=self.eval_path.text().strip() or None,
            eval_fraction=self.eval_percent.value() / 100.0,
            seed=self.seed.value(),
            preprocessing=preprocessing,
        )

    def _load(self, choice: Any) -> None:
        if self.document is None:
            self.status.setText("Open a model first: the data is preprocessed for it.")
            return
        doc = self.document
        self.status.setStyleSheet("")
        self.status.setText(f"Reading {choice.data}…")
        self.runner.submit(
            lambda progress, cancelled: inspect_data(doc, choice, progress, cancelled),
            "data",
        )

    def _on_loaded(self, info: DataInfo) -> None:
        self.info = info
        self.status.setStyleSheet("")
        classes = ", ".join(info.classes[:20]) + (" …" if len(info.classes) > 20 else "")
        lines = [
            f"{info.samples} samples ({info.kind}"
            + (f", {len(info.classes)} classes" if info.labeled else ", no labels") + ")",
        ]
        if info.labeled:
            lines.append(f"Classes: {classes}")
        lines.append(f"Unreadable files skipped: {info.skipped}")
        lines += info.notes
        self.summary.setText("\n".join(lines))
        self.status.setText(f"Data: {info.choice.data}")
        self._show_thumbnails(info.thumbnails)
        self._show_preprocessing(info.preprocessing)
        self.split_note.setText(
            f"calibration {info.calibration_samples} · evaluation {info.evaluation_samples}: "
            f"{info.split_note}"
        )
        self._set_editable(True)
        self.dataChanged.emit(info.choice)

    def _on_failed(self, failure: JobFailure) -> None:
        self.status.setStyleSheet("color: #b91c1c;")
        self.status.setText(f"Cannot use this data: {failure.message}")
        if self.info is None:
            self._set_editable(False)

    # ------------------------------------------------------------------ widgets

    def _show_no_data(self) -> None:
        from app.document import DEMO_SOURCE

        if self.document is not None and self.document.source == DEMO_SOURCE:
            self.status.setStyleSheet("")
            self.status.setText(DEMO_DATA)
            return
        self.status.setStyleSheet("color: #b45309;")
        self.status.setText(NO_DATA)

    def _show_thumbnails(self, thumbs: list[tuple[QImage, str]]) -> None:
        for label in self.thumb_labels:
            self.thumbs_layout.removeWidget(label)
            label.deleteLater()
        self.thumb_labels = []
        for image, text in thumbs:
            cell = QLabel(self.thumbs)
            cell.setPixmap(QPixmap.fromImage(image))
            cell.setToolTip(text)
            caption = QLabel(text, self.thumbs)
            caption.setAlignment(Qt.AlignHCenter)
            box = QWidget(self.thumbs)  # picture over caption
            inner = QVBoxLayout(box)
            inner.setContentsMargins(2, 2, 2, 2)
            inner.addWidget(cell, 0, Qt.AlignHCenter)
            inner.addWidget(caption)
            box.setProperty("caption", text)
            self.thumbs_layout.insertWidget(self.thumbs_layout.count() - 1, box)
            self.thumb_labels.append(box)

    def _show_preprocessing(self, pre: Any) -> None:
        if pre is None:
            for e in (self.resize_edit, self.crop_edit, self.mean_edit, self.std_edit):
                e.clear()
            self.pre_source.setText("no image preprocessing (tensors or text)")
            return
        self.resize_edit.setText(_size_text(pre.resize))
        self.crop_edit.setText(_size_text(pre.crop))
        self.mean_edit.setText(_floats_text(pre.mean))
        self.std_edit.setText(_floats_text(pre.std))
        self.grayscale.setChecked(pre.grayscale)
        self.pre_source.setText(f"{pre.describe()} (from {pre.source})")

    def _set_editable(self, on: bool) -> None:
        images = on and self.info is not None and self.info.preprocessing is not None
        for w in (self.resize_edit, self.crop_edit, self.mean_edit, self.std_edit,
                  self.grayscale, self.apply_pre):
            w.setEnabled(images)
        for w in (self.eval_percent, self.seed, self.eval_path, self.apply_split):
            w.setEnabled(on)

    def preprocessing_overrides(self) -> dict[str, Any]:
        """The preprocessing fields as edited (ValueError for text that is no number)."""
        def size(text: str) -> Any:
            values = _numbers(text, int)
            if values is None:
                return None
            return values[0] if len(values) == 1 else values

        out = {
            "resize": size(self.resize_edit.text()),
            "crop": size(self.crop_edit.text()),
            "mean": _numbers(self.mean_edit.text()),
            "std": _numbers(self.std_edit.text()),
            "grayscale": self.grayscale.isChecked(),
        }
        return {k: v for k, v in out.items() if v is not None}

    def _apply_preprocessing(self) -> None:
        if self.info is None:
            return
        try:
            overrides = self.preprocessing_overrides()
        except ValueError as exc:
            self.status.setStyleSheet("color: #b91c1c;")
            self.status.setText(str(exc))
            return
        self._load(dataclasses.replace(self.info.choice, preprocessing=overrides))

    def _apply_split(self) -> None:
        if self.info is None:
            return
        self._load(self._options(self.info.choice.data, self.info.choice.preprocessing))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of images", self.path.text())
        if path:
            self.open_path(path)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Data file", self.path.text(),
            "Data (*.pt *.npz *.npy *.txt *.jsonl);;All files (*)",
        )
        if path:
            self.open_path(path)
