"""Saving and opening plan files: dialogs, a worker read, problems shown, and the
"unsaved plan edits" question before something throws the edits away.

Why not in the MainWindow: this is behaviour (read off the GUI thread, check the plan
against the open model, apply it as one undoable edit or explain why not); the window
only lays out widgets. The plan itself is the workbench's (app.plan_model). It needs
only a FlowHost (app.flow_host), so a test builds it with a Workbench and no window.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from app import engine_api
from app.flow_host import FlowHost
from app.workers import JobRunner

PLAN_FILTER = "Pruning plans (*.json);;All files (*)"


class PlanFiles:
    """The File menu's Open Plan / Save Plan, and the unsaved-edits prompt."""

    def __init__(self, host: FlowHost) -> None:
        self.host = host
        self.wb = host.workbench
        self.reads: JobRunner | None = None

    def _save_path(self) -> str:
        start = os.path.join(self.wb.prefs.last_folder("plan"), "plan.json")
        path, _ = QFileDialog.getSaveFileName(
            self.host.parent, "Save pruning plan", start, PLAN_FILTER
        )
        return path

    def save_dialog(self) -> None:
        if self.wb.document is None:
            return
        path = self._save_path()
        if path:
            self.save(path)

    def save(self, path: str) -> None:
        try:
            self.wb.plans.save(path)
        except OSError as exc:
            self.host.show_error("Could not save the plan", str(exc))
            return
        self.wb.prefs.set_last_folder(path, "plan")
        self.wb.mark_saved()
        self.host.status(f"Plan saved to {path}")

    def confirm_discard(self, what: str) -> bool:
        """Unsaved plan edits: Save, Discard or Cancel before `what` throws them away."""
        if not self.wb.unsaved_edits:
            return True
        answer = self.host.ask(
            "Unsaved plan edits",
            f"The pruning plan of {self.wb.document.title} has unsaved edits. "
            f"Save them before {what}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
            QMessageBox.Save,
        )
        if answer == QMessageBox.Cancel:
            self.host.status("Kept the open model and its plan edits")
            return False
        if answer == QMessageBox.Save:
            path = self._save_path()
            if not path:
                return False
            self.save(path)
        return True

    def open_dialog(self) -> None:
        if self.wb.document is None:
            return
        prefs = self.wb.prefs
        path, _ = QFileDialog.getOpenFileName(
            self.host.parent, "Open pruning plan", prefs.last_folder("plan"), PLAN_FILTER
        )
        if path:
            prefs.set_last_folder(path, "plan")
            self.read(path)

    def read(self, path: str) -> None:
        """Read and check the plan file on a worker (a FIFO or a huge file never blocks the
        window); it is applied, or its problems shown, when the worker is done."""
        if self.reads is None:
            self.reads = JobRunner(self.host.parent)
            self.reads.finished.connect(lambda done: self._read_done(*done))
            self.reads.failed.connect(
                lambda f: self.host.show_error("Could not read the plan", f.message, f.details)
            )

        def job(progress, cancelled):
            try:
                return path, engine_api.load_plan(path), []
            except engine_api.PlanFileError as exc:
                return path, None, list(exc.problems)

        self.reads.submit(job, f"Reading {os.path.basename(path)}…")

    def _read_done(self, path: str, plan: Any, problems: list[str]) -> bool:
        if plan is not None and self.wb.document is not None:
            problems = self.wb.plans.use(plan, self.wb.document)
        return self._report(path, problems)

    def open(self, path: str) -> bool:
        """Read and apply a plan at once (scripts, tests); the GUI itself uses read()."""
        return self._report(path, self.wb.plans.open(path, self.wb.document))

    def _report(self, path: str, problems: list[str]) -> bool:
        doc = self.wb.document
        if doc is None:
            return False
        if problems:
            box = self.host.show_error(
                "Could not use this plan",
                f"{os.path.basename(path)} does not fit {doc.title}:",
                "\n".join(problems),
            )
            box.setInformativeText("\n".join(problems[:8]))
            return False
        made_for = self.wb.plan.source
        other = f"; it was made for {made_for}" if made_for and made_for != doc.source else ""
        self.host.status(f"Opened plan {path} (Ctrl+Z to undo){other}")
        return True
