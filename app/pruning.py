"""The pruning workflow behind the window: the undoable plan, live preview, the ratio
solver, pruning a copy in the background, and plan files.

Why a separate object: the window lays out widgets; this owns the state machine of
"plan edited -> preview (debounced, off the GUI thread, stale results dropped) ->
prune a copy -> user accepts". Only plain data (plans, previews, results) reaches the
widgets, and every engine call goes through app.engine_api.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app import engine_api, plan_edits
from app.document import DEMO_SOURCE, Document
from app.plan_editor import PlanEditor
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
        self.editor = PlanEditor(self)
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
        self.editor.planChanged.connect(lambda _plan: self.request_preview())

    @property
    def plan(self) -> Any:
        return self.editor.plan

    # ------------------------------------------------------------------ document

    def set_document(self, doc: Document, plan: Any | None = None) -> None:
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
        self.editor.reset(plan if plan is not None else engine_api.new_plan(doc))

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

    # ------------------------------------------------------------------ edits (undoable)

    def edit(self, text: str, fn, *args, merge_key: str | None = None, **kwargs) -> bool:
        """Apply a plan_edits function as one undoable command; bad values raise ValueError."""
        return self.editor.edit(text, fn, *args, merge_key=merge_key or None, **kwargs)

    def set_options(self, text: str, changes: dict, merge_key: str = "") -> bool:
        return self.edit(text, plan_edits.set_options, merge_key=merge_key, **changes)

    def set_group_ratio(self, root: str, ratio: float | None) -> bool:
        scope = plan_edits.scope_of(self.plan, root)
        if scope is not None and ratio is not None:  # the row shows the scope's ratio
            return self.edit(
                f"Ratio {ratio:.2f} for scope {scope.name}",
                plan_edits.set_scope_ratio,
                scope.name,
                ratio,
            )
        what = f"{ratio:.2f}" if ratio is not None else "cleared"
        return self.edit(f"Group {root} ratio {what}", plan_edits.set_group_ratio, root, ratio)

    def clear_ratios(self, roots: list[str]) -> bool:
        def clear(plan, roots):
            for r in roots:
                plan = plan_edits.set_group_ratio(plan, r, None)
                plan = plan_edits.set_layer_ratio(plan, r, None)
            return plan

        return self.edit(f"Clear ratio of {len(roots)} group(s)", clear, roots)

    def set_layer_ratio(self, layer: str, ratio: float | None) -> bool:
        what = f"{ratio:.2f}" if ratio is not None else "cleared"
        return self.edit(f"Layer {layer} ratio {what}", plan_edits.set_layer_ratio, layer, ratio)

    def make_scope(self, layers: list[str], ratio: float | None = None) -> bool:
        """One shared ranking and ratio; starts at the first layer's current ratio."""
        if ratio is None:
            first = plan_edits.ratio_of(self.plan, layers[0]).ratio
            ratio = self.plan.pruning_ratio if first is None else first
        return self.edit(
            f"User scope of {len(layers)} layers", plan_edits.make_scope, layers, ratio
        )

    def leave_scopes(self, layers: list[str]) -> bool:
        return self.edit(
            f"Remove {len(layers)} layer(s) from scopes", plan_edits.leave_scopes, layers
        )

    def remove_scope(self, name: str) -> bool:
        return self.edit(f"Remove {name}", plan_edits.remove_scope, name)

    def set_ignored(self, layers: list[str], ignored: bool) -> bool:
        verb = "Ignore" if ignored else "Un-ignore"
        return self.edit(
            f"{verb} {', '.join(layers)[:60]}", plan_edits.set_ignored, layers, ignored
        )

    # ------------------------------------------------------------------ plan files

    def save_plan(self, path: str) -> None:
        self.plan.save(path)

    def open_plan(self, path: str) -> list[str]:
        """Load a plan file as one undoable edit; returns the problems (nothing applied)."""
        try:
            plan = engine_api.load_plan(path)
        except engine_api.PlanFileError as exc:
            return list(exc.problems)
        return self.use_plan(plan)

    def use_plan(self, plan: Any) -> list[str]:
        """Apply an already read plan as one undoable edit, unless it does not fit."""
        if self.document is not None:
            problems = engine_api.plan_problems(plan, self.document)
            if problems:
                return problems
        self.editor.replace(plan, "Open plan")
        return []

    # ------------------------------------------------------------------ preview

    def request_preview(self) -> None:
        """Debounced: a burst of edits costs one preview, ~50 ms after the last one."""
        if self.document is not None and self.document.model is not None:
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
        if self.document is None or self.document.model is None:
            return
        plan, get = self.plan, self._previewer_job()
        first = self._first_gradient_use(plan)

        def job(progress, cancelled) -> PreviewDone:
            pv = get(progress)
            if first:
                progress(0.3, f"Computing {plan.importance} gradients on the calibration data…")
            t0 = time.perf_counter()
            result = engine_api.preview(pv, plan)
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
        if self.document is None:
            return
        self.timer.stop()
        plan, get = self.plan.replace(), self._previewer_job()

        def job(progress, cancelled) -> SolveDone:
            pv = get(progress)
            return SolveDone(plan, engine_api.solve(pv, plan.replace(), target, keep), target, keep)

        self.previews.submit(job, "solve")

    def _on_preview_job(self, done: object) -> None:
        if isinstance(done, SolveDone):
            ratio = round(float(done.result.ratio), 4)
            if done.plan == self.plan.replace(pruning_ratio=done.plan.pruning_ratio):
                self.edit(
                    f"Keep {100 * done.keep:.0f}% of {done.target}",
                    plan_edits.set_options,
                    pruning_ratio=ratio,
                )
            self.solved.emit(done)
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
        if doc is None or self.prunes.busy:
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


def _calibration_note(plan: Any, cal: tuple[str, str]) -> str:
    if plan.importance not in {c.name for c in engine_api.criteria() if c.needs_data}:
        return ""
    kind, folder = cal
    if kind == "demo":
        return f"{engine_api.DEMO_CALIBRATION} demo training digits"
    if kind in ("folder", "data"):
        return f"calibration samples of {folder}"
    return "random inputs (no data given): the ranking is close to arbitrary"
