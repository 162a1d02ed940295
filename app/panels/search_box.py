"""The toolbar's "Find layer" box: completes the open model's layer names; Enter (again)
steps the canvas to the next match and says which on the status line.

Why a widget of its own: it follows the workbench's document (its completer list, a
fresh search) instead of the window feeding it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget


class LayerSearchBox(QLineEdit):
    def __init__(self, search: Any, parent: QWidget | None = None) -> None:
        """`search`: the canvas's LayerSearch (app.canvas.search), which moves the view."""
        super().__init__(parent, placeholderText="Find layer (Ctrl+F)…", clearButtonEnabled=True)
        self.layer_search = search
        self.wb = search.wb
        self.setMaximumWidth(260)
        # Click or Ctrl+F only: with the default focus policy the box took the focus at
        # start-up and "F" typed into it instead of fitting the view.
        self.setFocusPolicy(Qt.ClickFocus)
        self.returnPressed.connect(lambda: self.next(self.text()))
        self.names = QCompleter([], self)
        self.names.setCaseSensitivity(Qt.CaseInsensitive)
        self.names.setFilterMode(Qt.MatchContains)
        self.names.activated.connect(self.next)
        self.setCompleter(self.names)
        self.wb.events.document_changed.connect(self._on_document_change)

    def _on_document_change(self, doc: Any) -> None:
        self.layer_search.reset()
        if doc is not None:
            self.names.model().setStringList([n.name for n in doc.summary.nodes])

    def focus(self) -> None:
        self.setFocus()
        self.selectAll()

    def next(self, text: str) -> int | None:
        """Show the next layer matching `text`; its view id (None: no match)."""
        view_id, message = self.layer_search.next(text)
        self.wb.events.status.emit(message)
        return view_id
