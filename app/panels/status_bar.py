"""The status bar as a view of the workbench: messages, the running job's bar and Cancel,
the open model's size, what is selected.

Why not in the MainWindow: each of these follows a workbench event (status, job_changed,
document_changed, selection_changed); the window only places the bar and feeds its zoom
label from the canvas.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None, workbench: Any = None) -> None:
        super().__init__(parent)
        self.status_label = QLabel("Ready", self)
        self.counts_label = QLabel("", self)
        self.zoom_label = QLabel("100%", self)
        self.progress = QProgressBar(self, minimum=0, maximum=100, textVisible=True)
        self.progress.setFixedWidth(160)
        self.cancel_button = QPushButton("Cancel", self)
        self.addWidget(self.status_label, 1)
        for w in (self.progress, self.cancel_button, self.counts_label, self.zoom_label):
            self.addPermanentWidget(w)
        self.progress.hide()
        self.cancel_button.hide()
        self._selection_text = ""  # what the last selection wrote, to take back with it
        if workbench is not None:
            self.attach(workbench)

    def attach(self, wb: Any) -> None:
        self.wb = wb
        ev = wb.events
        ev.status.connect(self.status_label.setText)
        ev.job_changed.connect(self._on_job_change)
        ev.document_changed.connect(self._on_document_change)
        ev.selection_changed.connect(self._on_selection_change)

    def _on_job_change(self, job: Any) -> None:
        busy = self.wb.busy
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if job.running:
            self.progress.setValue(int(job.fraction * 100))
            self.status_label.setText(job.text())

    def _on_document_change(self, doc: Any) -> None:
        if doc is None:
            self.counts_label.setText("")
            return
        s = doc.summary
        self.counts_label.setText(
            f"{len(s.nodes)} nodes · {len(s.edges)} edges · {len(s.groups)} groups"
        )
        collapsed = self.wb.collapsed
        folded = (
            f"; {len(collapsed)} modules collapsed (double-click to expand)" if collapsed else ""
        )
        self.status_label.setText(
            f"Opened {doc.title} (input {doc.input_spec}){folded}"
            + ("; " + "; ".join(doc.notes) if doc.notes else "")
        )

    def _on_selection_change(self, sel: Any) -> None:
        doc = self.wb.document
        if doc is None:
            return
        g = doc.group(sel.group) if sel.group is not None else None
        if sel.node:
            kind = sel.view_node.kind if sel.view_node is not None else ""
            suffix = (
                f": group #{g.id}, {len(g.members)} coupled layers, {g.channels} ch" if g else ""
            )
            text = f"{sel.node} ({kind}){suffix}"
        elif g is not None:
            text = (
                f"Group #{g.id}: {len(g.members)} coupled layers, "
                f"root {g.root}, {g.channels} channels"
            )
        else:  # nothing selected (an expanded block is gone): its name goes too
            text = ""
        if text or self.status_label.text() == self._selection_text:
            self.status_label.setText(text)
        self._selection_text = text
