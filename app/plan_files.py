"""Saving and opening plan files from the window: dialogs, a worker read, problems shown.

Why not in the MainWindow: this is behaviour (read off the GUI thread, check the plan
against the open model, apply it as one undoable edit or explain why not); the window
only lays out widgets. The plan itself is the workbench's (app.plan_model).
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import QFileDialog

from app import engine_api
from app.workers import JobRunner

PLAN_FILTER = "Pruning plans (*.json);;All files (*)"


class PlanFiles:
    """The File menu's Open Plan / Save Plan for one window."""

    def __init__(self, window: Any) -> None:
        self.win = window
        self.wb = window.workbench
        self.reads: JobRunner | None = None

    def save_dialog(self) -> None:
        w = self.win
        if w.document is None:
            return
        start = os.path.join(w.prefs.last_folder("plan"), "plan.json")
        path, _ = QFileDialog.getSaveFileName(w, "Save pruning plan", start, PLAN_FILTER)
        if path:
            self.save(path)

    def save(self, path: str) -> None:
        w = self.win
        try:
            self.wb.plans.save(path)
        except OSError as exc:
            w._show_error("Could not save the plan", str(exc))
            return
        w.prefs.set_last_folder(path, "plan")
        self.wb.mark_saved()
        w.status_label.setText(f"Plan saved to {path}")

    def open_dialog(self) -> None:
        w = self.win
        if w.document is None:
            return
        path, _ = QFileDialog.getOpenFileName(
            w, "Open pruning plan", w.prefs.last_folder("plan"), PLAN_FILTER
        )
        if path:
            w.prefs.set_last_folder(path, "plan")
            self.read(path)

    def read(self, path: str) -> None:
        """Read and check the plan file on a worker (a FIFO or a huge file never blocks the
        window); it is applied, or its problems shown, when the worker is done."""
        if self.reads is None:
            self.reads = JobRunner(self.win)
            self.reads.finished.connect(lambda done: self._read_done(*done))
            self.reads.failed.connect(
                lambda f: self.win._show_error("Could not read the plan", f.message, f.details)
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
        w, doc = self.win, self.wb.document
        if doc is None:
            return False
        if problems:
            w._show_error(
                "Could not use this plan",
                f"{os.path.basename(path)} does not fit {doc.title}:",
                "\n".join(problems),
            )
            w.last_dialog.setInformativeText("\n".join(problems[:8]))
            return False
        made_for = self.wb.plan.source
        other = f"; it was made for {made_for}" if made_for and made_for != doc.source else ""
        w.status_label.setText(f"Opened plan {path} (Ctrl+Z to undo){other}")
        return True
