"""The pruning jobs behind the workbench: live preview, the ratio solver and pruning a
copy, each in the background.

Why a separate object: the plan and its undo history are the workbench model's
(app.plan_model); this runs the jobs on the plan it follows: "plan changed -> preview
(debounced, off the GUI thread, stale results dropped)", "solve", "prune a copy". Only
plain data (plans, previews, results) leaves it, and every engine call goes through
app.engine_api.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app import engine_api
from app.document import DEMO_SOURCE, Document
from app.workers import JobFailure, JobRunner

DEBOUNCE_MS = 50


class PreviewDone:
    """A preview job's result: which plan it is for, the Preview, how long it took."""

    def __init__(self, plan: Any, preview: Any, seconds: float) -> None:
        self.plan = plan
        self.preview = preview
        self.seconds = seconds


class SolveDone:
    def __init__(self, plan: Any, result: Any, target: str, keep: float) -> None:
        self.plan = plan
        self.result = result
        self.target = target
        self.keep = keep


class PruningController(QObject):
    previewReady = Signal(object)  # noqa: N815 - PreviewDone
    previewFailed = Signal(str)  # noqa: N815
    solved = Signal(object)  # noqa: N815 - SolveDone
    pruneStarted = Signal()  # noqa: N815
    pruneProgress = Signal(float, str)  # noqa: N815
    pruneFinished = Signal(object)  # noqa: N815 - (PruneResult, PreparedView)
    pruneFailed = Signal(object)  # noqa: N815 - JobFailure
    pruneCancelled = Signal()  # noqa: N815

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plans: Any = None  # the workbench's PlanModel, see follow()
        self.document: Document | None = None
        self.calibration: tuple[str, str] = ("random", "")
        self.data: Any = None  # the data panel's engine.data.DataOptions, or None
        self.last_preview: PreviewDone | None = None
        self._previewers: dict[tuple, Any] = {}  # written by the (single) preview thread
        self._lock = threading.Lock()
        self._scored: set[tuple] = set()
        self._gradient_criteria = {c.name for c in engine_api.criteria() if c.needs_data}
        self.previews = JobRunner(self)
        self.previews.pool.setMaxThreadCount(1)  # one Previewer, never used by two threads
        self.previews.finished.connect(self._on_preview_job)
        self.previews.failed.connect(self._on_preview_failed)
        self.prunes = JobRunner(self, cancel_types=(engine_api.PruneCancelled,))
        self.prunes.progress.connect(self.pruneProgress)
        self.prunes.finished.connect(self.pruneFinished)
        self.prunes.failed.connect(self.pruneFailed)
        self.prunes.cancelled.connect(self.pruneCancelled)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._start_preview)

    def follow(self, plans: Any) -> None:
        """Run previews on this PlanModel's plan, a new one after every change."""
        self.plans = plans
        plans.on_change.append(lambda _plan: self.request_preview())

    @property
    def plan(self) -> Any:
        """The plan the jobs run on (read only: edits go through the workbench)."""
        return self.plans.plan if self.plans is not None else None

    # ------------------------------------------------------------------ document

    def set_document(self, doc: Document) -> None:
        if self.prunes.busy:  # a result for the previous model must never replace this one
            self.prunes.cancel()
        self.document = doc
        self.last_preview = None
        self.previews.cancel(quiet=True)
        with self._lock:
            self._previewers.clear()
        if doc.source == DEMO_SOURCE:
            self.calibration = ("demo", "")
        elif self.calibration[0] == "demo":
            self.calibration = ("random", "")

    def set_calibration(self, kind: str, folder: str = "") -> None:
        if (kind, folder) != self.calibration:
            self.calibration = (kind, folder)
            self.request_preview()

    def set_data(self, choice: Any) -> None:
        """The data panel's dataset: its calibration split feeds data-driven criteria
        (unless the settings pick another source), its evaluation split the metrics."""
        if choice != self.data:
            self.data = choice
            if choice is not None:
                self.set_calibration("data", choice.data)
            elif self.calibration[0] == "data":
                self.set_calibration("random", "")

    # ------------------------------------------------------------------ preview

    def request_preview(self) -> None:
        """Debounced: a burst of edits costs one preview, ~50 ms after the last one."""
        if self.document is not None and self.document.model is not None and self.plan is not None:
            self.timer.start()

    def _previewer_job(self) -> Any:
        """A function for the preview thread that returns (building once) the Previewer."""
        doc, cal, data = self.document, self.calibration, self.data
        key = (id(doc), cal, engine_api.data_key(data))
        cache, lock = self._previewers, self._lock

        def get(progress) -> Any:
            with lock:
                pv = cache.get(key)
            if pv is None:
                progress(0.1, "Scoring channels…")
                calibration = engine_api.make_calibration(doc, *cal, data=data)
                pv = engine_api.make_previewer(doc, calibration)
                with lock:
                    cache[key] = pv
            return pv

        return get

    def _start_preview(self) -> None:
        if self.document is None or self.document.model is None or self.plan is None:
            return
        plan, get = self.plan, self._previewer_job()
        first = self._first_gradient_use(plan)

        def job(progress, cancelled) -> PreviewDone:
            pv = get(progress)
            what = f"Computing {plan.importance} gradients on the calibration data"
            if first:
                progress(0.3, f"{what}…")
            t0 = time.perf_counter()
            result = engine_api.preview(
                pv, plan, _batch_progress(progress, what), _copy_progress(progress)
            )
            return PreviewDone(plan, result, time.perf_counter() - t0)

        self.previews.submit(job, "preview")

    def _first_gradient_use(self, plan: Any) -> bool:
        """True the first time a gradient criterion is previewed with this data: that preview
        runs forward/backward passes and is slow, so the panel says what it is doing."""
        if plan.importance not in self._gradient_criteria:
            return False
        key = (id(self.document), self.calibration, plan.importance)
        first = key not in self._scored
        self._scored.add(key)
        return first

    def solve(self, target: str, keep: float) -> None:
        """Ask the engine's solver for the default ratio; applied as one undoable edit."""
        if self.document is None or self.plan is None:
            return
        self.timer.stop()
        plan, get = self.plan.replace(), self._previewer_job()

        def job(progress, cancelled) -> SolveDone:
            pv = get(progress)
            return SolveDone(plan, engine_api.solve(pv, plan.replace(), target, keep), target, keep)

        self.previews.submit(job, "solve")

    def _on_preview_job(self, done: object) -> None:
        if isinstance(done, SolveDone):
            self.solved.emit(done)  # the workbench applies the ratio as an undoable edit
            self.request_preview()
            return
        if isinstance(done, PreviewDone) and done.plan == self.plan:
            self.last_preview = done
            self.previewReady.emit(done)

    def _on_preview_failed(self, failure: JobFailure) -> None:
        self.last_preview = None
        self.previewFailed.emit(failure.message)

    # ------------------------------------------------------------------ prune

    @property
    def busy(self) -> bool:
        return self.prunes.busy

    def prune(self) -> bool:
        """Prune a deep copy in the background; the open model is untouched until accepted."""
        doc = self.document
        if doc is None or self.plan is None or self.prunes.busy:
            return False
        plan, cal, data = self.plan.replace(), self.calibration, self.data

        def job(progress, cancelled):
            from app.canvas.hierarchy import auto_collapse
            from app.canvas.prepare import AUTO_COLLAPSE_OVER, AUTO_COLLAPSE_TARGET, prepare_view

            progress(0.01, "Reading the data…")
            calibration = engine_api.make_calibration(doc, *cal, data=data)
            eval_data, eval_note = engine_api.evaluation_data(doc, data)
            result = engine_api.prune_copy(
                doc, plan, calibration, progress, cancelled, eval_data, eval_note
            )
            result.calibration_note = _calibration_note(plan, cal)
            progress(0.98, "Laying out the pruned graph…")  # after the trace (0.96)
            s = result.document.summary
            collapsed = (
                auto_collapse(s.nodes, AUTO_COLLAPSE_TARGET)
                if len(s.nodes) > AUTO_COLLAPSE_OVER
                else set()
            )
            return result, prepare_view(s, collapsed)

        self.prunes.submit(job, "prune")
        self.pruneStarted.emit()
        return True

    def cancel_prune(self) -> None:
        self.prunes.cancel()


def _batch_progress(progress: Any, what: str) -> Any:
    """Per-batch progress of the first gradient (or activation) pass: 0.3 -> 0.95."""

    def on_batch(done: int, total: int) -> None:
        if total > 0:
            progress(0.3 + 0.65 * done / total, f"{what}: batch {done} of {total}")
        else:
            progress(0.3, f"{what}: batch {done}")

    return on_batch


def _copy_progress(progress: Any) -> Any:
    """Progress of the slow preview path, which prunes a real deep copy (iterative plans,
    models without a meta forward): 0.3 -> 1.0, one tick per scored or cut group."""

    def on_progress(done: int, total: int, message: str) -> None:
        pct = 100 * done / total if total > 0 else 0.0
        progress(
            0.3 + 0.7 * done / total if total > 0 else 0.3,
            f"Pruning a copy for the exact preview — {pct:.0f}%: {message}",
        )

    return on_progress


def _calibration_note(plan: Any, cal: tuple[str, str]) -> str:
    if plan.importance not in {c.name for c in engine_api.criteria() if c.needs_data}:
        return ""
    kind, folder = cal
    if kind == "demo":
        return f"{engine_api.DEMO_CALIBRATION} demo training digits"
    if kind in ("folder", "data"):
        return f"calibration samples of {folder}"
    return "random inputs (no data given): the ranking is close to arbitrary"
