"""Depth pruning in the GUI: measure block importance off the GUI thread, show it, and
remove or keep whole blocks as undoable plan edits.

The measurement (engine.depth.block_importance on the calibration data the scan uses,
plus exact previews of each block removed alone) runs on a JobRunner like the
sensitivity scan, and its result goes to the workbench (`set_depth`), whose
`depth_changed` event the canvas, the module tree and the Properties box observe.
Remove / Keep go through `workbench.set_block_dropped` -> PlanModel (Ctrl+Z undoes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QMenu, QPushButton

from app.depth_model import DepthState
from app.workers import JobFailure, JobRunner


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:,.0f}"


def _cancellable(batches: Iterable[Any], cancelled: Callable[[], bool],
                 progress: Callable[[float, str], None]) -> Iterator[Any]:
    """The batches, stopping with Cancelled between two when the user cancels."""
    from engine.plan.apply import Cancelled

    items = list(batches)
    for i, item in enumerate(items):
        if cancelled():
            raise Cancelled()
        progress(0.3 + 0.7 * i / max(len(items), 1), f"Block importance: batch {i + 1} of "
                 f"{len(items)}")
        yield item


class DepthController(QObject):
    """Runs "Measure block importance" and hands the scores to the workbench."""

    measured = Signal(object)  # DepthState
    failed = Signal(str)

    def __init__(self, workbench: Any, pruning: Any, parent: QObject | None = None) -> None:
        from engine.plan.apply import Cancelled

        super().__init__(parent)
        self.wb = workbench
        self.pruning = pruning
        self.jobs = JobRunner(self, cancel_types=(Cancelled,))
        self.jobs.pool.setMaxThreadCount(1)
        self.jobs.progress.connect(lambda f, m: self.wb.job_progress("depth", f, m))
        self.jobs.finished.connect(self._on_done)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        workbench.events.document_changed.connect(lambda _doc: self.jobs.cancel(quiet=True))

    def measure(self) -> None:
        doc, state = self.wb.document, self.wb.depth
        if doc is None or doc.model is None:
            self.failed.emit("open a model first")
            return
        if not state.blocks:
            self.wb.events.status.emit(f"{doc.title} has no removable residual blocks")
            return
        kind, folder = self.pruning.calibration
        options = self.pruning.data
        names = list(state.blocks)

        def job(progress, cancelled) -> tuple[DepthState, dict, dict, str]:
            from app.sensitivity import calibration_batches
            from engine.depth import block_importance, find_depth_groups
            from engine.plan.depth_cost import block_savings
            from engine.plan.preview import Previewer

            progress(0.02, "Block importance: reading the calibration data…")
            batches = calibration_batches(doc, kind, folder, options)
            progress(0.1, "Block importance: exact MACs/params of each block removed alone…")
            savings = block_savings(Previewer(doc.model, doc.example_inputs, doc.graph), names)
            groups = [g for g in find_depth_groups(doc.model) if g.name in names]
            scores = block_importance(doc.model, groups,
                                      _cancellable(batches, cancelled, progress))
            return state, scores, savings, _data_text(kind, folder, options)

        self.wb.job_started("depth", "Measuring block importance…", self.jobs.cancel)
        self.jobs.submit(job, "block importance")

    def _on_done(self, result: tuple[DepthState, dict, dict, str]) -> None:
        self.wb.job_ended("depth")
        state, scores, savings, data = result
        if state is not self.wb.depth:  # another version opened meanwhile: stale
            return
        new = state.with_measurement(scores, savings, data)
        self.wb.set_depth(new)
        low = min(scores, key=scores.get) if scores else None
        self.wb.events.status.emit(
            f"Block importance of {len(scores)} blocks on {data}"
            + (f"; least important: {low} ({scores[low]:.4f})" if low else ""))
        self.measured.emit(new)

    def _on_failed(self, failure: JobFailure) -> None:
        self.wb.job_ended("depth")
        self.wb.events.status.emit(f"Block importance failed: {failure.message}")
        self.failed.emit(failure.message)

    def _on_cancelled(self) -> None:
        self.wb.job_ended("depth")
        self.wb.events.status.emit("Block importance cancelled")


def _data_text(kind: str, folder: str, options: Any) -> str:
    if kind == "data" and options is not None:
        return f"the data panel's calibration split of {options.data}"
    if kind == "demo":
        return "the demo's training digits"
    return folder or kind


# ---------------------------------------------------------------- menus


def add_block_items(wb: Any, menu: QMenu, name: str,
                    measure: Callable[[], None] | None = None) -> bool:
    """Remove / Keep for the removable block `name` is (or lies in); False if none."""
    block = wb.depth.block_of(name)
    if block is None:
        return False
    menu.addSeparator()
    if block in wb.plan.drop_blocks:
        menu.addAction(f"Keep block {block}", lambda: wb.set_block_dropped(block, False))
    else:
        facts = wb.depth.blocks[block]
        tail = f" (1−cos {facts.importance:.3f})" if facts.importance is not None else ""
        menu.addAction(f"Remove block {block}{tail}", lambda: wb.set_block_dropped(block, True))
    if measure is not None and not wb.depth.measured:
        menu.addAction("Measure block importance", measure)
    return True


# ---------------------------------------------------------------- Properties


class DepthBox(QGroupBox):
    """Properties' depth section: the selected block's importance, what removing it
    saves, and the Remove / Keep button. Hidden unless a removable block is selected."""

    def __init__(self, wb: Any, measure: Callable[[], None], parent=None) -> None:
        super().__init__("Depth: removable residual block", parent)
        self.wb = wb
        self.block: str | None = None
        self.name = QLabel("", self)
        self.importance = QLabel("", self)
        self.importance.setWordWrap(True)
        self.saves = QLabel("", self)
        self.saves.setWordWrap(True)
        self.toggle = QPushButton("Remove block", self)
        self.toggle.clicked.connect(self._toggle)
        self.measure = QPushButton("Measure block importance", self)
        self.measure.clicked.connect(measure)
        row = QHBoxLayout()
        row.addWidget(self.toggle)
        row.addWidget(self.measure)
        form = QFormLayout(self)
        form.addRow("Block", self.name)
        form.addRow("Importance", self.importance)
        form.addRow("Removing saves", self.saves)
        form.addRow(row)
        ev = wb.events
        for event in (ev.selection_changed, ev.plan_changed, ev.depth_changed):
            event.connect(self._refresh)
        self.hide()

    def _toggle(self) -> None:
        if self.block is not None:
            self.wb.set_block_dropped(self.block, self.block not in self.wb.plan.drop_blocks)

    def _refresh(self, *_: object) -> None:
        wb = self.wb
        self.block = wb.depth.block_of(wb.selection.node) if wb.document is not None else None
        if self.block is None or wb.plan is None:
            self.hide()
            return
        facts = wb.depth.blocks[self.block]
        dropped = self.block in wb.plan.drop_blocks
        self.name.setText(f"{self.block}" + ("  (REMOVED in the plan)" if dropped else ""))
        if facts.importance is None:
            self.importance.setText("not measured yet")
        else:
            self.importance.setText(f"1 − cos(input, output) = {facts.importance:.4f} "
                                    f"(on {wb.depth.data})")
        if facts.macs_saved is None:
            self.saves.setText(f"{facts.params:,} params (MACs: measure first)")
        else:
            self.saves.setText(f"{_fmt(facts.macs_saved)} MACs · {facts.params_saved:,} params "
                               "(removed alone, full width)")
        self.toggle.setText("Keep block" if dropped else "Remove block")
        self.measure.setVisible(not wb.depth.measured)
        self.show()


# ---------------------------------------------------------------- window


def install(window: Any) -> DepthController:
    """Controller + Properties box; the canvas and module tree read workbench.depth, and
    the menu entry is the action table's `measure_blocks` row (slot depth.measure)."""
    ctl = DepthController(window.workbench, window.pruning, window)
    window.depth = ctl
    box = DepthBox(window.workbench, ctl.measure, window.properties)
    window.properties.layout().addWidget(box)
    window.depth_box = box
    return ctl
