"""The version history: original, pruned, recovered models; switch, compare, export.

Observes `versions_changed`; a click switches the workbench to that version (its plan
comes back with it), Compare shows the before/after diff of two versions.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.workbench import Version, _fmt_metric

METRIC_COLUMNS = ("macs", "params", "accuracy")


class VersionsPanel(QWidget):
    exportRequested = Signal(str)  # noqa: N815 - version name

    def __init__(self, parent: QWidget | None = None, workbench: Any = None) -> None:
        super().__init__(parent)
        self.wb = None
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Version", "MACs", "Params", "Accuracy", "From"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        for col in range(1, 5):  # short numbers: the name column gets the rest ("pruned 1")
            self.tree.header().setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.tree.itemActivated.connect(self._activated)
        self.tree.itemClicked.connect(self._activated)
        self.compare_a = QComboBox(self)
        self.compare_b = QComboBox(self)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.clicked.connect(self.compare)
        self.export_button = QPushButton("Export this version…", self)
        self.export_button.clicked.connect(
            lambda: self.wb and self.wb.version and self.exportRequested.emit(self.wb.version.name)
        )
        self.diff = QPlainTextEdit(self)
        self.diff.setReadOnly(True)
        self.diff.setPlaceholderText("Pick two versions and Compare: widths, MACs, params, metrics")
        row = QHBoxLayout()
        row.addWidget(self.compare_a, 1)
        row.addWidget(QLabel("→", self))
        row.addWidget(self.compare_b, 1)
        row.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.export_button)
        layout.addLayout(row)
        layout.addWidget(self.diff, 1)
        if workbench is not None:
            self.attach(workbench)

    def attach(self, wb: Any) -> None:
        self.wb = wb
        wb.events.versions_changed.connect(self._on_versions_change)

    def _on_versions_change(self, versions: list[Version], current: int) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        for i, v in enumerate(versions):
            cells = [("▶ " if i == current else "   ") + v.name]
            cells += [
                _fmt_metric(v.metrics.get(k))
                if k != "accuracy"
                else (f"{100 * v.metrics[k]:.2f} %" if k in v.metrics else "–")
                for k in METRIC_COLUMNS
            ]
            cells.append(v.parent or "")
            item = QTreeWidgetItem(cells)
            item.setData(0, Qt.UserRole, i)
            if i == current:
                f = item.font(0)
                f.setBold(True)
                item.setFont(0, f)
            self.tree.addTopLevelItem(item)
        self.tree.blockSignals(False)
        names = [v.name for v in versions]
        after = current if current > 0 else len(names) - 1
        parent = versions[after].parent if versions else None
        before = names.index(parent) if parent in names else 0
        for box, pick in ((self.compare_a, before), (self.compare_b, max(0, after))):
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            if names:
                box.setCurrentIndex(pick if pick < len(names) else len(names) - 1)
            box.blockSignals(False)
        self.compare_button.setEnabled(len(names) > 1)
        self.export_button.setEnabled(bool(names))
        if names and current >= 0:
            self.export_button.setText(f"Export “{names[current]}”…")

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        self.wb.switch_version(int(item.data(0, Qt.UserRole)))

    def compare(self) -> None:
        a, b = self.compare_a.currentText(), self.compare_b.currentText()
        if not a or not b:
            return
        diff = self.wb.compare(a, b)
        lines = diff.lines()
        for w in diff.widths[:200]:
            lines.append(f"  {w.layer}: {w.before[1]} → {w.after[1]} out channels")
        if len(diff.widths) > 200:
            lines.append(f"  … and {len(diff.widths) - 200} more")
        self.diff.setPlainText("\n".join(lines))
