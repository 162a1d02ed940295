"""Properties panel: what the user clicked (a layer, op or collapsed block) in key/value rows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.canvas.hierarchy import ViewNode
from engine.graph.summary import GroupInfo


class PropertiesPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.hint = QLabel(
            "Click a layer on the canvas to see its type, channels, parameters and channel group.",
            self,
        )
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hint, 0, Qt.AlignTop)
        layout.addWidget(self.tree)
        self.rows: dict[str, str] = {}
        self.clear()

    def clear(self) -> None:
        self.tree.clear()
        self.rows = {}
        self.tree.hide()
        self.hint.show()

    def _set(self, rows: list[tuple[str, str]]) -> None:
        self.tree.clear()
        self.hint.hide()
        self.tree.show()
        self.rows = dict(rows)
        for key, value in rows:
            item = QTreeWidgetItem([key, value])
            item.setToolTip(1, value)
            self.tree.addTopLevelItem(item)

    def show_node(self, node: ViewNode, groups: list[GroupInfo]) -> None:
        rows = [("Name", node.name), ("Type", node.kind)]
        if node.is_block:
            rows.append(("Contains", f"{len(node.member_ids)} nodes (double-click to expand)"))
        else:
            rows.append(
                ("Layer", "yes (has parameters)" if node.is_layer else "no (functional op)")
            )
        if node.in_channels is not None:
            rows.append(("In channels", str(node.in_channels)))
        if node.out_channels is not None:
            rows.append(("Out channels", str(node.out_channels)))
        rows.append(("Parameters", f"{node.params:,}"))
        for i, g in enumerate(groups):
            label = "Group" if i == 0 else ""
            if g.root == node.name:
                text = f"#{g.id}: root of {len(g.members)} coupled layers, {g.channels} ch"
            else:
                text = f"#{g.id}: member (root {g.root}, {len(g.members)} layers)"
            rows.append((label, text))
        if not groups and not node.is_block:
            rows.append(("Group", "none (not prunable on its own)"))
        self._set(rows)
