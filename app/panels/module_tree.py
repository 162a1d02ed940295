"""The module tree, synced with the canvas (as in Model Explorer).

Rows are the model's modules (block paths) with their layers; clicking a row selects it
on the workbench and asks the canvas to reveal it; the canvas selection selects the row.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLineEdit,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QTreeWidgetItemIterator,
    QVBoxLayout,
    QWidget,
)

from app.canvas.hierarchy import block_paths, containers


class ModuleTreePanel(QWidget):
    def __init__(self, parent: QWidget | None = None, workbench: Any = None) -> None:
        super().__init__(parent)
        self.wb = None
        self.items: dict[str, QTreeWidgetItem] = {}
        self.filter = QLineEdit(self, placeholderText="Filter modules…", clearButtonEnabled=True)
        self.filter.textChanged.connect(self._filter)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Module", "Type", "Nodes"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.tree.setTextElideMode(Qt.ElideLeft)
        self.tree.itemClicked.connect(self._clicked)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.last_menu: QMenu | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        if workbench is not None:
            self.attach(workbench)

    def attach(self, wb: Any) -> None:
        self.wb = wb
        wb.events.document_changed.connect(self._on_document_change)
        wb.events.selection_changed.connect(self._on_selection_change)
        wb.events.view_changed.connect(self._on_view_change)

    def _on_document_change(self, doc: Any) -> None:
        self.tree.clear()
        self.items = {}
        if doc is None:
            return
        counts = block_paths(doc.summary.nodes)
        for path in sorted(counts, key=lambda p: (p.count("."), p)):
            parent = self.items.get(path.rpartition(".")[0])
            item = QTreeWidgetItem([path.rpartition(".")[2], "module", str(counts[path])])
            item.setData(0, Qt.UserRole, path)
            item.setData(1, Qt.UserRole, "module")
            item.setToolTip(0, path)
            (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            self.items[path] = item
        for node in doc.summary.nodes:
            if not node.is_layer:
                continue
            outer = [p for p in containers(node) if p in self.items]
            parent = self.items.get(outer[-1]) if outer else None
            item = QTreeWidgetItem([node.name.rpartition(".")[2] or node.name, node.kind, ""])
            item.setData(0, Qt.UserRole, node.name)
            item.setToolTip(0, node.name)
            (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            self.items[node.name] = item
        self._on_view_change(self.wb.collapsed)

    def _on_view_change(self, collapsed: frozenset[str]) -> None:
        for path, item in self.items.items():
            if item.data(1, Qt.UserRole) == "module":
                item.setText(1, "folded" if path in collapsed else "module")

    def _on_selection_change(self, sel: Any) -> None:
        item = self.items.get(sel.node) if sel.node else None
        if item is None or item is self.tree.currentItem():
            return
        self.tree.blockSignals(True)
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        self.tree.blockSignals(False)

    def _clicked(self, item: QTreeWidgetItem, _col: int) -> None:
        name = item.data(0, Qt.UserRole)
        if name:
            self.wb.events.reveal_requested.emit(name)

    def context_menu_for(self, name: str) -> QMenu | None:
        """The row's menu: Remove / Keep for a removable residual block (depth)."""
        from app.depth_view import add_block_items

        menu = QMenu(self)
        if not add_block_items(self.wb, menu, name):
            return None
        return menu

    def _context_menu(self, pos: Any) -> None:
        item = self.tree.itemAt(pos)
        name = item.data(0, Qt.UserRole) if item is not None else None
        menu = self.context_menu_for(name) if name and self.wb is not None else None
        if menu is not None:
            self.last_menu = menu
            menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _filter(self, text: str) -> None:
        t = text.strip().lower()
        it = QTreeWidgetItemIterator(self.tree)
        while it.value():
            item = it.value()
            name = str(item.data(0, Qt.UserRole) or "")
            item.setHidden(bool(t) and t not in name.lower() and not _has_match(item, t))
            it += 1
        if t:
            self.tree.expandAll()


def _has_match(item: QTreeWidgetItem, t: str) -> bool:
    for i in range(item.childCount()):
        c = item.child(i)
        if t in str(c.data(0, Qt.UserRole) or "").lower() or _has_match(c, t):
            return True
    return False
