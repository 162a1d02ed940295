"""Pruning settings: criterion, calibration data, mode, ratios, rounding, steps, heads,
and the "keep N% of MACs" target.

The panel never edits the plan itself: it emits `edited(text, changes, merge_key)`
and the window turns that into an undoable command; `show_plan` writes the plan
back into the widgets with signals blocked, so undo/redo never echo as new edits.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import engine_api
from app.engine_api import Criterion
from app.panels.spin import StrictDoubleSpinBox, StrictSpinBox
from engine.plan import PruningPlan

LABELS: dict[str, str] = {
    "magnitude": "Magnitude (Lp norm of weights)",
    "group_magnitude": "Group magnitude (whole group's norm)",
    "lamp": "LAMP (layer-adaptive magnitude)",
    "bn_scale": "BatchNorm scale |γ|",
    "taylor": "Taylor (first order, needs data)",
    "group_taylor": "Group Taylor (needs data)",
    "hessian": "Hessian (second order, needs data)",
    "group_hessian": "Group Hessian (needs data)",
    "random": "Random (baseline)",
}
MODES = ("local", "global", "isomorphic")
CALIBRATION = {
    "data": "Data panel (calibration split)",
    "demo": "Demo digits",
    "folder": "Image folder…",
    "random": "Random inputs",
}


def _spin(lo: float, hi: float, step: float, decimals: int = 3) -> QDoubleSpinBox:
    box = StrictDoubleSpinBox()  # out-of-range input is refused out loud, never clamped
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setKeyboardTracking(False)  # one edit per committed value, not per keystroke
    return box


class SettingsPanel(QWidget):
    edited = Signal(str, dict, str)  # undo text, PruningPlan field changes, merge key
    solveRequested = Signal(str, float)  # noqa: N815 - target ("macs"/"params"), keep fraction
    calibrationChanged = Signal()  # noqa: N815
    inputSpecRequested = Signal(str)  # noqa: N815 - "1,3,320,320": re-trace at this shape

    def __init__(self, criteria: list[Criterion], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: str = ""
        self.data_path: str = ""  # the data panel's choice ("" : none)
        self.is_demo = False
        self.criteria = {c.name: c for c in criteria}
        self.wb = None

        self.criterion = QComboBox(self)
        for c in criteria:
            self.criterion.addItem(LABELS.get(c.name, c.name), c.name)
        self.norm = QComboBox(self)
        self.norm.addItem("L2 norm", 2)
        self.norm.addItem("L1 norm", 1)
        self.calibration = QComboBox(self)
        for key, label in CALIBRATION.items():
            self.calibration.addItem(label, key)
        self._enable_data_item()
        self.calibration.setCurrentIndex(self.calibration.findData("random"))
        self.data_warning = QLabel(self)
        self.data_warning.setWordWrap(True)
        self.data_warning.setStyleSheet("color: #b45309;")
        self.mode = QComboBox(self)
        for m in MODES:
            self.mode.addItem(m.capitalize(), m)
        self.mode.setToolTip(
            "Local: every group loses its own ratio. Global: one ranking across groups. "
            "Isomorphic: global ranking only among groups of the same structure."
        )
        self.ratio = _spin(0.0, 0.999, 0.05)
        self.max_ratio = _spin(0.05, 1.0, 0.05)
        self.round_to = QSpinBox(self)
        self.round_to.setRange(0, 1024)
        self.round_to.setSpecialValueText("off")
        self.round_to.setKeyboardTracking(False)
        preferred = engine_api.preferred_round_to()
        self.round_to.setToolTip(
            "Kept widths become multiples of this (off: any width). This CPU's kernels work "
            f"in blocks of {preferred} channels: multiples of {preferred} turn fewer MACs "
            "into a matching speedup (see docs/benchmarks.md)."
        )
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 100)
        self.steps.setKeyboardTracking(False)

        form = QFormLayout()
        form.addRow("Criterion", self.criterion)
        form.addRow("Norm", self.norm)
        form.addRow("Data", self.calibration)
        form.addRow("Mode", self.mode)
        form.addRow("Default ratio", self.ratio)
        form.addRow("Max ratio", self.max_ratio)
        form.addRow("Round channels to", self.round_to)
        form.addRow("Iterative steps", self.steps)
        self.input_spec = QLineEdit(self)
        self.input_spec.setPlaceholderText("e.g. 1,3,224,224")
        self.input_spec.setToolTip(
            "The example input the MACs, latency and preview are computed at (batch first; "
            "several inputs separated by ';'). Remembered for this model file."
        )
        self.input_apply = QPushButton("Apply", self)
        self.input_apply.clicked.connect(
            lambda: self.inputSpecRequested.emit(self.input_spec.text().strip())
        )
        self.input_spec.returnPressed.connect(self.input_apply.click)
        row = QHBoxLayout()
        row.addWidget(self.input_spec, 1)
        row.addWidget(self.input_apply)
        form.addRow("Input shape", row)

        heads = self.heads_box = QGroupBox("Attention heads", self)
        self.heads_note = QLabel("", heads)
        self.heads_note.setWordWrap(True)
        self.head_dims = QCheckBox("Prune head dimensions", heads)
        self.num_heads = QCheckBox("Prune whole heads", heads)
        self.head_ratio = _spin(0.0, 0.99, 0.05)
        hl = QFormLayout(heads)
        hl.addRow(self.heads_note)
        hl.addRow(self.head_dims)
        hl.addRow(self.num_heads)
        hl.addRow("Head ratio", self.head_ratio)

        target = QGroupBox("Target", self)
        self.keep = StrictSpinBox(target)
        self.keep.setRange(1, 100)
        self.keep.setValue(50)
        self.keep.setSuffix(" %")
        self.target_kind = QComboBox(target)
        self.target_kind.addItem("of MACs", "macs")
        self.target_kind.addItem("of parameters", "params")
        self.solve = QPushButton("Set ratio", target)
        self.solve.setToolTip("Find the default ratio that keeps this share (engine solver)")
        self.solve.clicked.connect(
            lambda: self.solveRequested.emit(
                self.target_kind.currentData(), self.keep.value() / 100.0
            )
        )
        tl = QHBoxLayout(target)
        tl.addWidget(QLabel("Keep", target))
        tl.addWidget(self.keep)
        tl.addWidget(self.target_kind)
        tl.addWidget(self.solve)
        self.solve_label = QLabel("", self)
        self.solve_label.setWordWrap(True)
        self.solved_ratio: float | None = None  # the ratio solve_label describes

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addWidget(self.data_warning)
        layout.addWidget(heads)
        layout.addWidget(target)
        layout.addWidget(self.solve_label)
        layout.addStretch(1)

        self.criterion.currentIndexChanged.connect(self._criterion_changed)
        self.norm.currentIndexChanged.connect(
            lambda: self._emit("Set norm", merge="", importance_options=self._options())
        )
        self.calibration.activated.connect(self._calibration_activated)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.ratio.valueChanged.connect(
            lambda v: self._emit(f"Default ratio {v:.3g}", "ratio", pruning_ratio=v)
        )
        self.max_ratio.valueChanged.connect(
            lambda v: self._emit(f"Max ratio {v:.2f}", "max", max_pruning_ratio=v)
        )
        self.round_to.valueChanged.connect(
            lambda v: self._emit("Round channels", "round", round_to=v or None)
        )
        self.steps.valueChanged.connect(
            lambda v: self._emit(f"Iterative steps {v}", "steps", iterative_steps=v)
        )
        self.head_dims.toggled.connect(
            lambda on: self._emit("Prune head dims", "", prune_head_dims=on)
        )
        self.num_heads.toggled.connect(
            lambda on: self._emit("Prune whole heads", "", prune_num_heads=on)
        )
        self.head_ratio.valueChanged.connect(
            lambda v: self._emit(f"Head ratio {v:.2f}", "head", head_pruning_ratio=v)
        )
        self._update_data_row()

    # ------------------------------------------------------------------ workbench

    def attach(self, wb) -> None:
        """Widgets follow the plan; edits, the solver and the data choice go to the workbench."""
        self.wb = wb
        ev = wb.events
        ev.plan_changed.connect(self._on_plan_change)
        ev.document_changed.connect(self._on_document_change)
        ev.input_spec_changed.connect(self._on_input_spec_change)
        ev.solved.connect(self._on_solved)
        ev.data_changed.connect(
            lambda choice: self.set_data_path(choice.data if choice is not None else "")
        )
        self.edited.connect(
            lambda text, changes, merge: wb.try_edit(wb.plans.set_options, text, changes, merge))
        self.solveRequested.connect(wb.pruning.solve)
        self.calibrationChanged.connect(
            lambda: wb.pruning.set_calibration(*self.calibration_source()))
        self.inputSpecRequested.connect(wb.set_input_spec)
        for box in (self.ratio, self.max_ratio, self.head_ratio, self.keep):
            box.rejected.connect(ev.status.emit)

    def _on_document_change(self, doc) -> None:
        self.setEnabled(doc is not None)
        if doc is None:
            return
        from app.document import DEMO_SOURCE

        self.set_demo(doc.source == DEMO_SOURCE)
        att = engine_api.attention_summary(doc.model)
        self.set_attention(att.blocks, att.rope_blocks, att.text)
        self.wb.pruning.set_calibration(*self.calibration_source())

    def _on_solved(self, done) -> None:
        what = "MACs" if done.target == "macs" else "parameters"
        self.show_solved(
            f"Ratio {done.result.ratio:.4g} keeps {100 * done.result.achieved:.1f} % of {what} "
            f"(asked for {100 * done.keep:.0f} %)",
            round(float(done.result.ratio), 4),
        )

    def _on_input_spec_change(self, spec: str) -> None:
        self.input_spec.setText(spec)

    def _on_plan_change(self, plan) -> None:
        self.show_plan(plan)
        if self.solved_ratio is not None and abs(plan.pruning_ratio - self.solved_ratio) > 1e-6:
            self.show_solved(None)  # undone or edited: the target line no longer describes it

    def show_solved(self, text: str | None, ratio: float | None = None) -> None:
        self.solve_label.setText(text or "")
        self.solved_ratio = ratio if text else None

    # ------------------------------------------------------------------ plan -> widgets

    def show_plan(self, plan: PruningPlan) -> None:
        widgets = (
            self.criterion, self.norm, self.mode, self.ratio, self.max_ratio, self.round_to,
            self.steps, self.head_dims, self.num_heads, self.head_ratio,
        )  # fmt: skip
        for w in widgets:
            w.blockSignals(True)
        try:
            i = self.criterion.findData(plan.importance)
            if i < 0:  # a criterion the plan file names but this panel does not list
                self.criterion.addItem(plan.importance, plan.importance)
                i = self.criterion.count() - 1
            self.criterion.setCurrentIndex(i)
            self.norm.setCurrentIndex(
                max(0, self.norm.findData(plan.importance_options.get("p", 2)))
            )
            mode = "isomorphic" if plan.isomorphic else "global" if plan.global_pruning else "local"
            self.mode.setCurrentIndex(self.mode.findData(mode))
            self.ratio.setValue(plan.pruning_ratio)
            self.max_ratio.setValue(plan.max_pruning_ratio)
            self.round_to.setValue(plan.round_to or 0)
            self.steps.setValue(plan.iterative_steps)
            self.head_dims.setChecked(plan.prune_head_dims)
            self.num_heads.setChecked(plan.prune_num_heads)
            self.head_ratio.setValue(plan.head_pruning_ratio)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._update_data_row()

    def set_attention(self, blocks: int, rope_blocks: int, text: str) -> None:
        """Head options only apply to attention; rotary embeddings fix head_dim."""
        self.heads_note.setText(text)
        self.heads_box.setEnabled(blocks > 0)
        rope_only = blocks > 0 and rope_blocks == blocks
        self.head_dims.setEnabled(not rope_only)
        self.head_dims.setToolTip(
            "Rotary position embeddings rotate dimension i with i + head_dim/2: head "
            "dimensions stay whole here; prune whole heads instead." if rope_only else
            "Remove the same dimensions inside every head (heads stay equal)"
        )

    def set_demo(self, is_demo: bool) -> None:
        """The demo ships digits to calibrate on; other models default to random inputs."""
        self.is_demo = is_demo
        i = self.calibration.findData("demo")
        self.calibration.model().item(i).setEnabled(is_demo)
        want = "demo" if is_demo else ("folder" if self.folder else "random")
        if self.data_path:
            want = "data"
        self._enable_data_item()
        self.calibration.setCurrentIndex(self.calibration.findData(want))
        self._update_data_row()

    def set_data_path(self, path: str) -> None:
        """The data panel chose (or, with "", dropped) a dataset: calibrate on it."""
        self.data_path = path
        self._enable_data_item()
        if path:
            want = "data"
        elif self.calibration.currentData() == "data":
            want = "demo" if self.is_demo else ("folder" if self.folder else "random")
        else:
            want = self.calibration.currentData()
        self.calibration.setCurrentIndex(self.calibration.findData(want))
        self._update_data_row()
        self.calibrationChanged.emit()

    def _enable_data_item(self) -> None:
        i = self.calibration.findData("data")
        self.calibration.model().item(i).setEnabled(bool(self.data_path))

    # ------------------------------------------------------------------ widgets -> edits

    def _emit(self, text: str, merge: str, **changes: object) -> None:
        self.edited.emit(text, changes, merge)

    def _options(self) -> dict:
        crit = self.criterion.currentData()
        return {"p": int(self.norm.currentData())} if self._has_norm(crit) else {}

    def _has_norm(self, crit: str) -> bool:
        c = self.criteria.get(crit)
        return c is not None and "p" in c.options

    def needs_data(self) -> bool:
        c = self.criteria.get(self.criterion.currentData())
        return c is not None and c.needs_data

    def _criterion_changed(self) -> None:
        crit = self.criterion.currentData()
        self._update_data_row()
        self._emit(f"Criterion {crit}", "", importance=crit, importance_options=self._options())

    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        self._emit(
            f"Mode {mode}",
            "",
            global_pruning=mode in ("global", "isomorphic"),
            isomorphic=mode == "isomorphic",
        )

    def _calibration_activated(self) -> None:
        if self.calibration.currentData() == "folder":
            path = QFileDialog.getExistingDirectory(
                self, "Folder of calibration images", self.folder
            )
            if path:
                self.folder = path
            elif not self.folder:
                self.calibration.setCurrentIndex(self.calibration.findData("random"))
        self._update_data_row()
        self.calibrationChanged.emit()

    def calibration_source(self) -> tuple[str, str]:
        """("data" | "demo" | "folder" | "random", the path it reads)."""
        kind = self.calibration.currentData()
        return kind, self.data_path if kind == "data" else self.folder

    def _update_data_row(self) -> None:
        crit = self.criterion.currentData()
        needs = self.needs_data()
        self.calibration.setEnabled(needs)
        self.norm.setEnabled(self._has_norm(crit))
        kind = self.calibration.currentData()
        if not needs:
            text = ""
        elif kind == "random":
            text = (
                "⚠ No data: gradients come from random inputs, so the ranking is close to "
                "arbitrary. Choose data in the Data panel (or the demo digits)."
            )
        elif kind == "data":
            text = f"Gradients from the calibration split of {self.data_path}"
        elif kind == "folder":
            text = f"64 images from {self.folder}" if self.folder else "Choose a folder"
        else:
            text = "Gradients from 64 demo digits (cross-entropy on their labels)"
        self.data_warning.setText(text)
        self.data_warning.setVisible(bool(text))
        self.data_warning.setStyleSheet("color: #b45309;" if kind == "random" else "")
        self.data_warning.setAlignment(Qt.AlignLeft)
