"""Opening a model: the background load, what follows a failed load, the open dialogs.

Why not in the MainWindow: a load is a job (trace and lay out off the GUI thread; a
failed or cancelled load leaves the open document untouched) and each engine
"…Required" error has its own follow-up (trust the file, pick the architecture of bare
weights, point at the model's code, give an input shape) that re-opens the model with
the answer. It needs a FlowHost (app.flow_host) and the plan files (for the
unsaved-edits prompt), so a test can drive it with a Workbench and no window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from app import engine_api
from app.canvas.prepare import PreparedView, initial_collapse, prepare_view
from app.dialogs.arch_picker import ArchPickerDialog
from app.dialogs.builtin import BuiltinModelDialog
from app.dialogs.input_shape import InputShapeDialog
from app.dialogs.model_code import ModelCodeDialog
from app.dialogs.trust import make_trust_dialog
from app.document import DEMO_SOURCE, Document
from app.flow_host import FlowHost
from app.plan_files import PlanFiles
from app.workers import JobFailure, JobRunner

Loader = Callable[..., Document]
MODEL_FILTER = "Models (*.pt *.pth *.pt2 *.bin *.ckpt *.onnx *.safetensors);;All files (*)"


@dataclass
class LoadResult:
    """What a load job hands back: the document plus its first view."""

    document: Document
    view: PreparedView


@dataclass(frozen=True)
class _Pending:
    """The load under way, so a follow-up question re-opens it with the answer."""

    source: str
    spec: str | None
    trust: bool


class OpenFlow:
    """File › Open, Built-in, Demo, Recent; a changed input shape; drag and drop."""

    def __init__(self, host: FlowHost, plan_files: PlanFiles, loader: Loader | None = None):
        self.host = host
        self.wb = wb = host.workbench
        self.plan_files = plan_files
        self.loader: Loader = loader or engine_api.load_and_trace
        self.pending: _Pending | None = None
        self.loads = JobRunner(host.parent, cancel_types=(engine_api.LoadCancelled,))
        self.loads.started.connect(lambda label: wb.job_started("load", label, self.loads.cancel))
        self.loads.progress.connect(lambda f, m: wb.job_progress("load", f, m))
        self.loads.finished.connect(self._on_loaded)
        self.loads.failed.connect(self._on_failed)
        self.loads.cancelled.connect(self._on_cancelled)
        wb.opener = self.reopen_at

    # ------------------------------------------------------------------ entry points

    def open_source(
        self,
        source: str,
        input_spec: str | None = None,
        trust: bool = False,
        ask: bool = True,
        arch: str | None = None,
        code: str | None = None,
    ) -> bool:
        """Load `source` in the background; the current document stays until it succeeds."""
        if (
            ask
            and self.wb.document is not None
            and not self.plan_files.confirm_discard("opening another model")
        ):
            return False
        if input_spec is None:
            input_spec = self.wb.remembered_input_spec(source)
        loader = self.loader
        code = code or self.wb.prefs.model_code(source)  # remembered per file; used after trust
        extra = {k: v for k, v in (("arch", arch), ("code", code)) if v}

        def job(progress, cancelled) -> LoadResult:
            doc = loader(
                source,
                input_spec=input_spec,
                trust=trust,
                progress=progress,
                cancel=cancelled,
                **extra,
            )
            if cancelled():
                raise engine_api.LoadCancelled()
            progress(0.9, "Laying out the graph…")
            return LoadResult(doc, prepare_view(doc.summary, initial_collapse(doc.summary.nodes)))

        self.pending = _Pending(source, input_spec, trust)
        self.loads.submit(job, f"Opening {engine_api.display_name(source)}…")
        return True

    def reopen_at(self, source: str, spec: str) -> None:
        """The input shape changed: trace the original again at that shape. Versions made
        at the old shape would mix numbers from two shapes, so they close (after asking)."""
        extra = len(self.wb.versions) - 1
        if extra > 0:
            answer = self.host.ask(
                "Change the input shape",
                f"Re-tracing at {spec} starts a new history: {extra} pruned or recovered "
                "version(s) made at the old shape will be closed (export them first to keep "
                "them). Continue?",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,
            )
            if answer not in (QMessageBox.Yes, QMessageBox.Discard):
                self.host.status("Input shape unchanged")
                return
        self.open_source(source, spec, ask=False)

    def open_demo(self) -> None:
        self.open_source(DEMO_SOURCE)

    def file_dialog(self) -> None:
        prefs = self.wb.prefs
        path, _ = QFileDialog.getOpenFileName(
            self.host.parent, "Open model", prefs.last_folder("model"), MODEL_FILTER
        )
        if path:
            prefs.set_last_folder(path, "model")
            self.open_source(path)

    def builtin_dialog(self) -> None:
        dialog = BuiltinModelDialog(self.host.parent)
        dialog.accepted.connect(lambda: dialog.source() and self.open_source(dialog.source()))
        self.host.show(dialog)

    def fill_recent_menu(self, menu: QMenu) -> None:
        menu.clear()
        prefs = self.wb.prefs
        recent = prefs.recent()
        for source in recent:
            menu.addAction(
                engine_api.display_name(source), lambda s=source: self.open_source(s)
            ).setToolTip(source)
        if not recent:
            menu.addAction("(none)").setEnabled(False)
        menu.addSeparator()
        menu.addAction("Clear Recent", prefs.clear_recent)

    def cancel(self) -> None:
        self.loads.cancel()

    # ------------------------------------------------------------------ job reports

    def _on_cancelled(self) -> None:
        self.wb.job_ended("load")
        doc = self.wb.document
        self.host.status("Loading cancelled" + (f"; still showing {doc.title}" if doc else ""))

    def _on_loaded(self, result: LoadResult) -> None:
        self.wb.job_ended("load")
        self.wb.open_document(result.document, result.view)  # the history's "original"
        self.wb.prefs.add_recent(result.document.source)

    def _on_failed(self, failure: JobFailure) -> None:
        self.wb.job_ended("load")
        p = self.pending or _Pending("", None, False)
        follow_failed_load(self, failure, p.source, p.spec, p.trust)


def follow_failed_load(
    flow: OpenFlow, failure: JobFailure, source: str, spec: str | None, trust: bool
) -> None:
    """Ask for what the failed load of `source` (opened at `spec`, `trust`) was missing
    and re-open with the answer; any other failure is shown with its details."""
    host, exc = flow.host, failure.exception
    parent, reopen = host.parent, flow.open_source
    if isinstance(exc, engine_api.TrustRequired):
        host.status("Waiting for your decision about running code from the file")
        box = make_trust_dialog(parent, source, failure.message)

        def decided(_result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.Yes):
                reopen(source, spec, trust=True, ask=False)
            else:
                host.status("Not loaded: the file was not trusted")

        box.finished.connect(decided)
        host.show(box)
        return
    if isinstance(exc, engine_api.ArchRequired):  # weights only: which model are they?
        picker = ArchPickerDialog(parent, source, failure.message, exc.candidates)
        picker.accepted.connect(lambda: reopen(source, spec, trust, ask=False, arch=picker.arch()))
        picker.rejected.connect(lambda: host.status("Not loaded: no architecture"))
        host.show(picker)
        return
    if isinstance(exc, engine_api.CodeRequired):  # after trust: where is the model's code?
        asked = ModelCodeDialog(parent, source, exc.module, failure.message)

        def code_chosen() -> None:
            host.prefs.set_model_code(source, asked.path())
            reopen(source, spec, trust, ask=False, code=asked.path())

        asked.accepted.connect(code_chosen)
        asked.rejected.connect(lambda: host.status("Not loaded: no model code"))
        host.show(asked)
        return
    if isinstance(exc, engine_api.InputShapeRequired):
        host.status("Waiting for an input shape (see the dialog)")
        dialog = InputShapeDialog(
            parent, failure.message, exc.suggestion, engine_api.parse_input_spec
        )

        def chosen() -> None:
            flow.wb.remember_input_spec(source, dialog.spec())
            reopen(source, dialog.spec(), trust, ask=False)

        dialog.accepted.connect(chosen)
        dialog.rejected.connect(lambda: host.status("Not loaded: no input shape"))
        host.show(dialog)
        return
    name = engine_api.display_name(source)
    host.status(f"Could not open {name}")
    host.show_error(f"Could not open {name}", failure.message, failure.details)
