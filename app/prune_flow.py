"""Prune ▸ Prune: start the background prune, show the result, keep it as a version.

Why not in the MainWindow: the window lays out widgets; this reacts to the
PruningController's prune job (started, finished, failed, cancelled), keeps the job
state on the workbench (the window's Prune action and status bar follow it) and asks
the user to keep or discard the pruned copy. It needs only a FlowHost (app.flow_host).
"""

from __future__ import annotations

from typing import Any

from app.dialogs.prune_result import PruneResultDialog
from app.flow_host import FlowHost
from app.workers import JobFailure


class PruneFlow:
    """The prune job's life as the user sees it."""

    def __init__(self, host: FlowHost) -> None:
        self.host = host
        self.wb = wb = host.workbench
        c = wb.pruning
        c.pruneStarted.connect(lambda: wb.job_started("prune", "Pruning a copy…", c.cancel_prune))
        c.pruneProgress.connect(lambda f, m: wb.job_progress("prune", f, m))
        c.pruneFinished.connect(self._on_pruned)
        c.pruneFailed.connect(self._on_failed)
        c.pruneCancelled.connect(lambda: self._ended("Pruning cancelled; the model is unchanged"))

    def prune(self) -> bool:
        """Prune a copy with the current plan (not while a model is still loading)."""
        if self.wb.document is None or self.wb.running("load"):
            return False
        return self.wb.pruning.prune()

    def _ended(self, message: str) -> None:
        self.wb.job_ended("prune")
        self.host.status(message)

    def _on_pruned(self, payload: Any) -> None:
        result, view = payload
        self._ended(
            f"Pruned a copy: MACs {result.macs_before:,} → {result.macs_after:,}; "
            "keep it or discard it"
        )
        dialog = PruneResultDialog(result, self.host.parent)
        self.host.result_dialog = dialog
        dialog.accepted.connect(lambda: self.accept(result, view))
        dialog.rejected.connect(
            lambda: self.host.status("Pruned copy discarded; the model is unchanged")
        )
        self.host.show(dialog)

    def accept(self, result: Any, view: Any) -> None:
        """Keep: a new version in the history with a fresh plan at ratio 0; the original
        stays one click away in Versions."""
        doc = self.wb.document
        if doc is not None and not doc.pruned:
            self.host.recover_teacher = doc  # the teacher of "Recover accuracy"
        version = self.wb.keep_pruned(result, view)
        self.host.status(
            f"Showing version “{version.name}”: {len(result.document.summary.nodes)} nodes; "
            "the original is in View › Panels › Versions; File › Export… to save it"
        )

    def _on_failed(self, failure: JobFailure) -> None:
        self._ended("Pruning failed; the model is unchanged")
        self.host.show_error("Pruning failed", failure.message, failure.details)
