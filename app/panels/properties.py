"""Properties panel: what the user clicked (a layer, op or collapsed block) in key/value rows."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
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
from app.panels import layer_info
from app.panels.spin import StrictDoubleSpinBox
from engine.graph.summary import GroupInfo, NodeInfo

TREE_MIN_HEIGHT = 150  # px: about eight property rows


def view_node_of(info: NodeInfo) -> ViewNode:
    """The canvas's ViewNode for a summary node (what Properties shows for a group root)."""
    return ViewNode(
        info.id,
        info.name,
        info.kind,
        info.is_layer,
        info.in_channels,
        info.out_channels,
        info.params,
    )


class LayerPlanEditor(QGroupBox):
    """Inline plan editor for the selected layer: its own ratio and whether it is ignored."""

    def __init__(self, parent=None) -> None:
        super().__init__("Plan for this layer", parent)
        self.ratio = StrictDoubleSpinBox(self)
        self.ratio.setRange(-0.001, 0.999)
        self.ratio.setSingleStep(0.05)
        self.ratio.setDecimals(3)
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
    """Observes the workbench's selection, plan and preview (attach); edits go back to it."""

    layerRatioEdited = Signal(str, object)  # noqa: N815 - layer name, ratio or None
    ignoreToggled = Signal(str, bool)  # noqa: N815
    blockRatioEdited = Signal(str, object)  # noqa: N815 - module path, ratio or None

    def __init__(self, parent=None, workbench=None) -> None:
        super().__init__(parent)
        self.wb = None
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
        self.tree.setWordWrap(True)  # a lock reason is a sentence: show it whole
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        # With the layer editor, the depth box and the curve below it, the rows were squeezed
        # to ~3; the dock scrolls instead (MainWindow wraps this panel in a scroll area)
        self.tree.setMinimumHeight(TREE_MIN_HEIGHT)
        self.hint = QLabel(
            "Click a layer on the canvas to see its type, channels, parameters and channel group.",
            self,
        )
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hint, 0, Qt.AlignTop)
        layout.addWidget(self.tree, 1)  # the rows take what the editors leave
        layout.addWidget(self.editor)
        self.rows: dict[str, str] = {}
        self.clear()
        if workbench is not None:
            self.attach(workbench)

    # ------------------------------------------------------------------ workbench

    def attach(self, wb) -> None:
        """Show what the workbench selects; write ratios and ignores back to it."""
        self.wb = wb
        wb.events.selection_changed.connect(self._on_selection_change)
        wb.events.plan_changed.connect(self._on_plan_change)
        wb.events.preview_changed.connect(self._on_plan_change)
        wb.events.document_changed.connect(lambda _doc: self.clear())
        self.layerRatioEdited.connect(wb.set_layer_ratio)
        self.ignoreToggled.connect(lambda name, on: wb.set_ignored([name], on))
        self.blockRatioEdited.connect(wb.set_block_ratio)
        self.editor.ratio.rejected.connect(wb.events.status.emit)

    def _on_selection_change(self, sel) -> None:
        doc = self.wb.document
        if doc is None:
            self.clear()
            return
        node = sel.view_node
        if node is None and sel.node:
            info = doc.node_by_name(sel.node)
            node = view_node_of(info) if info is not None else None
        if node is None and sel.group is not None:  # a group row: show its root layer
            group = doc.group(sel.group)
            info = doc.node_by_name(group.root) if group is not None else None
            node = view_node_of(info) if info is not None else None
        if node is None:
            self.clear()
            return
        groups = [] if node.is_block else doc.groups_of(node.name)
        self.show_node(node, groups)
        self._on_plan_change()

    def _on_plan_change(self, *_: object) -> None:
        if self.wb is None or self.node is None:
            return
        if self.node.is_block:  # its before -> after totals follow the preview
            self.show_node(self.node, [])
        done = self.wb.last_preview
        widths = None
        if done is not None:
            lp = done.preview.by_name().get(self.node.name)
            widths = (lp.in_after, lp.out_after) if lp is not None else None
        self.show_plan(self.wb.plan, widths)

    def clear(self) -> None:
        self.tree.clear()
        self.rows = {}
        self.node = None
        self.tree.hide()
        self.editor.hide()
        self.hint.show()

    def _emit_ratio(self, ratio: float | None) -> None:
        if self.node is None:
            return
        if self.node.is_block:
            self.blockRatioEdited.emit(self.node.name, ratio)
        elif self.node.is_layer:
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
        ed = self.editor
        if node is not None and node.is_block and self.wb is not None:
            ed.setTitle("Plan for this block (every group inside it)")
            ed.ignored.hide()
            ed.ratio.blockSignals(True)
            ratio = self.wb.block_ratio(node.name)
            ed.ratio.setValue(-0.001 if ratio is None else ratio)
            ed.ratio.blockSignals(False)
            ed.clear.setEnabled(ratio is not None)
            ed.planned.setText(self.rows.get("MACs", ""))
            ed.show()
            return
        if node is None or node.is_block or not node.is_layer:
            self.editor.hide()
            return
        ed.setTitle("Plan for this layer")
        ed.ignored.show()
        for w in (ed.ratio, ed.ignored):
            w.blockSignals(True)
        ratio = plan.layer_ratios.get(node.name)
        ed.ratio.setValue(-0.001 if ratio is None else ratio)
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
        doc = self.wb.document if self.wb is not None else None
        plan = self.wb.plan if self.wb is not None else None
        if doc is not None and not node.is_block:
            rows += layer_info.layer_attributes(doc, node.name)
            rows += layer_info.weight_shapes(doc, node.name)
            heads = layer_info.head_counts(doc, node.name, plan)
            if heads is not None:
                rows.append(("Heads", f"{heads[0]} → {heads[1]}"))
        if node.is_block and self.wb is not None:
            totals = self._block_totals(node)
            if totals is not None:
                mb, ma, pb, pa = totals
                rows.append(("MACs", f"{mb:,} → {ma:,}"))
                rows.append(("Params (plan)", f"{pb:,} → {pa:,}"))
        for i, g in enumerate(groups):
            label = "Group" if i == 0 else ""
            if g.root == node.name:
                text = f"#{g.id}: root of {len(g.members)} coupled layers, {g.channels} ch"
            else:
                text = f"#{g.id}: member (root {g.root}, {len(g.members)} layers)"
            rows.append((label, text))
        # its output side is pruned with some group (as root, or a BN following its conv)?
        out_pruned = any(g.root == node.name for g in groups) or any(
            m.node == node.name and "out" in m.handler for g in groups for m in g.members
        )
        if node.is_layer and not node.is_block and not out_pruned and doc is not None:
            # its own output channels cannot be pruned: say why (the engine knows)
            # right under the name and type: the first thing a user asks about a locked layer
            rows.insert(2, ("Locked", layer_info.lock_reason(doc, node.name, plan)))
        elif not groups and not node.is_block:
            rows.append(("Group", "none (not prunable on its own)"))
        self._set(rows)

    def _block_totals(self, node: ViewNode):
        done = self.wb.last_preview
        doc = self.wb.document
        if done is None or doc is None:
            return None
        by_name = done.preview.by_name()
        t = [0, 0, 0, 0]
        for sid in node.member_ids:
            info = doc.node(sid)
            lp = by_name.get(info.name) if info is not None else None
            if lp is not None:
                t = [
                    t[0] + lp.macs_before,
                    t[1] + lp.macs_after,
                    t[2] + lp.params_before,
                    t[3] + lp.params_after,
                ]
        return tuple(t) if any(t) else None
