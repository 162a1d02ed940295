"""Which architecture do these weights belong to? Shown when a weights-only file opens.

The engine ranks zoo entries by how many of the file's tensors match theirs in name and
shape (``engine.io.arch_match``); the best is preselected. Any other zoo spec can be
typed in (``timm:NAME``, ``hf:FOLDER``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("Architecture", "Tensors matching", "Note")


class ArchPickerDialog(QDialog):
    """``candidates``: ``ArchCandidate``-like objects (spec, score, matched, ...), best first."""

    def __init__(
        self, parent: QWidget | None, source: str, message: str, candidates: Sequence[Any]
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose the architecture")
        self.candidates = list(candidates)
        name = os.path.basename(source) or source
        intro = QLabel(
            f"<b>{name}</b> holds only weights. Pick the model they belong to; the list is "
            "ranked by how many of its tensors match the file in name and shape.",
            self,
            wordWrap=True,
        )
        self.table = QTableWidget(len(self.candidates), len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, c in enumerate(self.candidates):
            differ = c.same_name - c.matched
            note = (
                "exact match" if c.exact else (f"{differ} differ only in shape" if differ else "")
            )
            for col, text in enumerate((c.spec, f"{c.score:.0%} ({c.matched})", note)):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, c.spec)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.itemSelectionChanged.connect(self._on_selected)
        self.table.itemDoubleClicked.connect(lambda _item: self.accept())
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("or type a spec: torchvision:NAME, timm:NAME, hf:FOLDER")
        self.empty = QLabel(
            "No zoo model matches these tensors." if not self.candidates else "", self
        )
        self.details = QLabel(message, self, wordWrap=True)
        self.details.setStyleSheet("color: gray")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.edit.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        for w in (intro, self.table, self.empty, self.edit, self.details, self.buttons):
            layout.addWidget(w)
        if self.candidates:
            self.table.selectRow(0)
        self._update_ok()
        self.resize(620, 360)

    def _on_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.edit.setText(self.candidates[rows[0].row()].spec)

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(bool(self.arch()))

    def arch(self) -> str:
        """The chosen spec (the selected row, or what was typed)."""
        return self.edit.text().strip()
