"""Prune ▸ Prune: start the background prune, show the result, keep it as a version.

Why not in the MainWindow: the window lays out widgets; this reacts to the
PruningController's prune job (started, finished, failed, cancelled), keeps the job
state on the workbench and asks the user to keep or discard the pruned copy.
"""

from __future__ import annotations

from typing import Any

from app.dialogs.prune_result import PruneResultDialog
from app.workers import JobFailure


class PruneFlow:
    """The prune job's life as the window shows it."""

    def __init__(self, window: Any) -> None:
        self.win = window
        self.wb = window.workbench
        c = window.pruning
        c.pruneStarted.connect(
            lambda: self.wb.job_started("prune", "Pruning a copy…", c.cancel_prune)
        )
        c.pruneProgress.connect(lambda f, m: self.wb.job_progress("prune", f, m))
        c.pruneFinished.connect(self._on_pruned)
        c.pruneFailed.connect(self._on_failed)
        c.pruneCancelled.connect(lambda: self._ended("Pruning cancelled; the model is unchanged"))

    def prune(self) -> None:
        w = self.win
        if w.document is None or w.loads.busy:
            return
        if w.pruning.prune():
            w.act_prune.setEnabled(False)

    def _ended(self, message: str) -> None:
        self.wb.job_ended("prune")
        self.win.act_prune.setEnabled(True)
        self.win.status_label.setText(message)

    def _on_pruned(self, payload: Any) -> None:
        result, view = payload
        w = self.win
        self._ended(
            f"Pruned a copy: MACs {result.macs_before:,} → {result.macs_after:,}; "
            "keep it or discard it"
        )
        dialog = PruneResultDialog(result, w)
        w.last_dialog = dialog
        w.result_dialog = dialog
        dialog.accepted.connect(lambda: self.accept(result, view))
        dialog.rejected.connect(
            lambda: w.status_label.setText("Pruned copy discarded; the model is unchanged")
        )
        dialog.open()

    def accept(self, result: Any, view: Any) -> None:
        """Keep: a new version in the history with a fresh plan at ratio 0; the original
        stays one click away in Versions."""
        w = self.win
        if w.document is not None and not w.document.pruned:
            w.recover_teacher = w.document  # the teacher of "Recover accuracy"
        version = self.wb.keep_pruned(result, view)
        w.status_label.setText(
            f"Showing version “{version.name}”: {len(result.document.summary.nodes)} nodes; "
            "the original is in View › Panels › Versions; File › Export… to save it"
        )

    def _on_failed(self, failure: JobFailure) -> None:
        self._ended("Pruning failed; the model is unchanged")
        self.win._show_error("Pruning failed", failure.message, failure.details)
