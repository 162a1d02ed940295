"""Properties panel: what the user clicked (a layer, op or collapsed block) in key/value rows."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.canvas.hierarchy import ViewNode
from engine.graph.summary import GroupInfo


class LayerPlanEditor(QGroupBox):
    """Inline plan editor for the selected layer: its own ratio and whether it is ignored."""

    def __init__(self, parent=None) -> None:
        super().__init__("Plan for this layer", parent)
        self.ratio = QDoubleSpinBox(self)
        self.ratio.setRange(-0.01, 0.99)
        self.ratio.setSingleStep(0.05)
        self.ratio.setDecimals(2)
        self.ratio.setSpecialValueText("group / default")
        self.ratio.setKeyboardTracking(False)
        self.clear = QPushButton("Clear", self)
        self.ignored = QCheckBox("Ignore (never prune this layer's channels)", self)
        self.planned = QLabel("", self)
        row = QHBoxLayout()
        row.addWidget(self.ratio, 1)
        row.addWidget(self.clear)
        form = QFormLayout(self)
        form.addRow("Ratio", row)
        form.addRow("", self.ignored)
        form.addRow("After pruning", self.planned)


class PropertiesPanel(QWidget):
    layerRatioEdited = Signal(str, object)  # noqa: N815 - layer name, ratio or None
    ignoreToggled = Signal(str, bool)  # noqa: N815

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.node: ViewNode | None = None
        self.editor = LayerPlanEditor(self)
        self.editor.ratio.valueChanged.connect(self._ratio_changed)
        self.editor.clear.clicked.connect(lambda: self._emit_ratio(None))
        self.editor.ignored.toggled.connect(
            lambda on: self.node and self.ignoreToggled.emit(self.node.name, on)
        )
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
        layout.addWidget(self.editor)
        self.rows: dict[str, str] = {}
        self.clear()

    def clear(self) -> None:
        self.tree.clear()
        self.rows = {}
        self.node = None
        self.tree.hide()
        self.editor.hide()
        self.hint.show()

    def _emit_ratio(self, ratio: float | None) -> None:
        if self.node is not None:
            self.layerRatioEdited.emit(self.node.name, ratio)

    def _ratio_changed(self, value: float) -> None:
        self._emit_ratio(None if value < 0 else value)

    def focus_ratio(self) -> None:
        if self.editor.isVisible():
            self.editor.ratio.setFocus()
            self.editor.ratio.selectAll()

    def show_plan(self, plan, widths: tuple[int | None, int | None] | None) -> None:
        """Fill the inline editor from the plan (signals blocked: not an edit)."""
        node = self.node
        if node is None or node.is_block or not node.is_layer:
            self.editor.hide()
            return
        ed = self.editor
        for w in (ed.ratio, ed.ignored):
            w.blockSignals(True)
        ratio = plan.layer_ratios.get(node.name)
        ed.ratio.setValue(-0.01 if ratio is None else ratio)
        ed.ignored.setChecked(node.name in plan.ignored_layers)
        for w in (ed.ratio, ed.ignored):
            w.blockSignals(False)
        ed.clear.setEnabled(ratio is not None)
        if widths is None:
            ed.planned.setText("(preview pending)")
        else:
            cin, cout = widths
            ed.planned.setText(f"in {cin} → out {cout}" if cin is not None else f"out {cout}")
        ed.show()

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
        self.node = node
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
