"""Groups panel: the coupled channel groups as a sortable, filterable table, with each
group's pruning ratio (editable in place) and the width the preview plans for it.

Several rows can be selected to make them one user scope (shared ranking and ratio)
or to ignore their root layers; the panel only emits requests, the window turns
them into undoable plan edits.
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QMenu,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.canvas.names import common_prefix, drop_prefix, shorten_dotted
from app.panels.heat import heat_color
from app.panels.spin import StrictDoubleSpinBox
from app.plan_edits import RatioSource
from engine.graph.summary import GroupInfo

COLUMNS = ("#", "Root layer", "Layers", "Ch", "Ratio", "After")
HEADER_TIPS = (
    "Group number",
    "The layer whose output channels define the group",
    "Coupled layers pruned together",
    "Prunable channels of the root now",
    "Fraction of the group's channels to remove (double-click to edit); "
    "(group)/(layer): set here or on the layer, (#n): user scope n, grey: the default",
    "Channels the preview plans to keep",
)
RATIO_COL, PLANNED_COL = 4, 5
_ROOT = QModelIndex()


def ratio_text(r: float) -> str:
    """0.3 -> "0.30", 0.225 -> "0.225" (the solver's ratios were shown as 0.22)."""
    text = f"{r:.3f}"
    return text[:-1] if text.endswith("0") else text


class GroupTableModel(QAbstractTableModel):
    ratioEdited = Signal(str, float)  # noqa: N815 - root layer, new ratio

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.groups: list[GroupInfo] = []
        self.ratios: dict[str, RatioSource] = {}  # root -> where its ratio comes from
        self.prefix = ""  # the dotted prefix every root shares, not shown
        self.planned: dict[str, int] = {}  # root -> channels after the planned step(s)
        self.heat: dict[str, float] = {}  # root -> sensitivity (0 robust .. 1 fragile), scan

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.beginResetModel()
        self.groups = list(groups)
        self.ratios, self.planned = {}, {}
        # 200 rows of "features.densebloc…" look alike: drop what they all share instead
        self.prefix = common_prefix([g.root for g in self.groups]) if len(self.groups) > 1 else ""
        self.endResetModel()

    def set_heat(self, heat: dict[str, float]) -> None:
        """Sensitivity heat per root (app/panels/sensitivity.py), shown behind "#"/root."""
        self.heat = dict(heat)
        if self.groups:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.groups) - 1, 1))

    def set_plan_info(self, ratios: dict[str, RatioSource], planned: dict[str, int]) -> None:
        self.ratios, self.planned = ratios, planned
        if self.groups:
            self.dataChanged.emit(
                self.index(0, RATIO_COL), self.index(len(self.groups) - 1, PLANNED_COL)
            )

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.groups)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 (Qt API)
        return len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.DisplayRole):  # noqa: N802 (Qt API)
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def flags(self, index: QModelIndex):
        base = super().flags(index)
        if index.column() == RATIO_COL:
            return base | Qt.ItemIsEditable
        return base

    def _ratio_text(self, root: str) -> str:
        src = self.ratios.get(root)
        if src is None:
            return ""
        if src.ratio is None:
            return "ignored"
        if src.origin == "default":
            return ratio_text(src.ratio)
        if src.origin == "layer" and src.key != root:  # set on a container layer
            return f"{ratio_text(src.ratio)} (layer {src.key or 'model'})"
        return f"{ratio_text(src.ratio)} ({src.origin.removeprefix('scope ')})"

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        g = self.groups[index.row()]
        col = index.column()
        src = self.ratios.get(g.root)
        if role == Qt.DisplayRole:
            if col == RATIO_COL:
                return self._ratio_text(g.root)
            if col == PLANNED_COL:
                return self.planned.get(g.root, "")
            if col == 1:
                return drop_prefix(g.root, self.prefix)
            return (g.id, g.root, len(g.members), g.channels)[col]
        if role == Qt.EditRole:
            if col == RATIO_COL:
                return src.ratio if src and src.ratio is not None else 0.0
            if col == PLANNED_COL:
                return self.planned.get(g.root, g.channels)
            return (g.id, g.root, len(g.members), g.channels)[col]
        if role == Qt.ToolTipRole:
            return f"{g.root}\n" + "\n".join(
                f"{m.node}  ({m.handler}, {m.channels} ch)" for m in g.members
            )
        if role == Qt.TextAlignmentRole and col != 1:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ForegroundRole and col == RATIO_COL and src and src.origin == "default":
            return QColor(128, 128, 128)
        if role == Qt.BackgroundRole and col in (0, 1) and g.root in self.heat:
            return heat_color(self.heat[g.root])
        if role == Qt.UserRole:
            return g.id
        return None

    def setData(self, index: QModelIndex, value, role=Qt.EditRole) -> bool:  # noqa: N802
        if role != Qt.EditRole or index.column() != RATIO_COL:
            return False
        self.ratioEdited.emit(self.groups[index.row()].root, float(value))
        return False  # the plan edit refreshes the row; the model holds no ratio of its own


NAME_PAD = 8  # px: the style's text margins in a cell (about 3 px a side) and a little air


def fitted_name(text: str, width: float, fm) -> str:
    """A root's shortened name as it fits a `width`-px cell: leading dotted parts go
    whole, so "…denselayer12.conv1" may lose "denseblock3." but never shows "…nseblock3"."""
    return shorten_dotted(text, lambda t: fm.horizontalAdvance(t) + NAME_PAD <= width)


class NameDelegate(QStyledItemDelegate):
    """Draws a root's name fitted to its cell by whole dotted parts (see fitted_name)."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 (Qt API)
        super().initStyleOption(option, index)
        option.text = fitted_name(option.text, option.rect.width(), option.fontMetrics)


class RatioDelegate(QStyledItemDelegate):
    """A 0–0.99 spin box with 0.05 steps for the Ratio column."""

    def createEditor(self, parent, option, index):  # noqa: N802 (Qt API)
        box = StrictDoubleSpinBox(parent)
        box.setRange(0.0, 0.999)
        box.setSingleStep(0.05)
        box.setDecimals(3)
        return box


class GroupsPanel(QWidget):
    """Emits groupSelected(id) / groupSelected(-1) when the current row changes."""

    groupSelected = Signal(int)  # noqa: N815 (Qt naming)
    ratioEdited = Signal(str, float)  # noqa: N815 - root layer, ratio
    clearRatioRequested = Signal(list)  # noqa: N815 - root layers
    scopeRequested = Signal(list)  # noqa: N815 - root layers
    leaveScopeRequested = Signal(list)  # noqa: N815 - root layers
    ignoreRequested = Signal(list, bool)  # noqa: N815 - root layers, ignore?

    def __init__(self, parent=None, workbench=None) -> None:
        super().__init__(parent)
        self.wb = None
        self.model = GroupTableModel(self)
        self.model.ratioEdited.connect(self.ratioEdited)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setSortRole(Qt.EditRole)
        self.filter = QLineEdit(
            self, placeholderText="Filter groups by root layer…", clearButtonEnabled=True
        )
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
        )
        self.table.setItemDelegateForColumn(RATIO_COL, RatioDelegate(self.table))
        self.table.setItemDelegateForColumn(1, NameDelegate(self.table))
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        header = self.table.horizontalHeader()
        # The name column takes what is left, so Ratio and After are always in view; the
        # others are fitted once per model, not per edit (ResizeToContents re-measures every
        # row on each dataChanged, which cost ~80 ms per preview on ResNet-50).
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.last_menu: QMenu | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)
        self.table.setTextElideMode(Qt.ElideLeft)  # keep the distinguishing tail
        self.table.setWordWrap(False)  # wrapping at dots turned the elided names into "……"
        if workbench is not None:
            self.attach(workbench)

    # ------------------------------------------------------------------ workbench

    def attach(self, wb) -> None:
        """Rows follow the document, ratios follow the plan, the selection both ways."""
        self.wb = wb
        ev = wb.events
        ev.document_changed.connect(self._on_document_change)
        ev.plan_changed.connect(self._on_plan_change)
        ev.preview_changed.connect(self._on_plan_change)
        ev.selection_changed.connect(self._on_selection_change)
        self.groupSelected.connect(self._select_in_workbench)
        self.ratioEdited.connect(lambda root, r: wb.try_edit(wb.plans.set_group_ratio, root, r))
        self.clearRatioRequested.connect(lambda roots: wb.try_edit(wb.plans.clear_ratios, roots))
        self.scopeRequested.connect(lambda roots: wb.try_edit(wb.plans.make_scope, roots))
        self.leaveScopeRequested.connect(lambda roots: wb.try_edit(wb.plans.leave_scopes, roots))
        self.ignoreRequested.connect(lambda roots, on: wb.set_ignored(roots, on))

    def _on_document_change(self, doc) -> None:
        self.set_groups(doc.summary.groups if doc is not None else [])

    def _on_plan_change(self, *_: object) -> None:
        from app.plan_edits import group_ratios_shown

        doc, plan, done = self.wb.document, self.wb.plan, self.wb.last_preview
        if doc is None or plan is None:
            return
        planned = {}
        if done is not None:
            planned = {lp.name: lp.out_after for lp in done.preview.layers}
        self.model.set_plan_info(
            group_ratios_shown(plan, doc.summary.groups), planned
        )

    def _on_selection_change(self, sel) -> None:
        if sel.group == self.selected_group():
            return
        self.table.selectionModel().blockSignals(True)  # not a new selection: no echo
        try:
            self.select_group(sel.group)
        finally:
            self.table.selectionModel().blockSignals(False)
        self.table.viewport().update()

    def _select_in_workbench(self, gid: int) -> None:
        if gid < 0:
            if self.wb.selection.group is not None:
                self.wb.select()
            return
        if gid != self.wb.selection.group:
            self.wb.select(group=gid)

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.model.set_groups(groups)
        # Narrow number columns (header text or the widest value, whichever is wider): the
        # room goes to the names, which on DenseNet need ~230 px ("…denseblock3.denselayer12
        # .conv1"); resizeColumnToContents left ~20 px of sort-arrow room on every column.
        fm = self.table.fontMetrics()
        header = self.table.horizontalHeader()
        values = {
            0: [str(g.id) for g in self.model.groups],
            2: [str(len(g.members)) for g in self.model.groups],
            3: [str(g.channels) for g in self.model.groups],
            5: [str(g.channels) for g in self.model.groups],
        }
        for col, texts in values.items():
            widest = max((fm.horizontalAdvance(t) for t in texts), default=0)
            header.resizeSection(col, max(widest, fm.horizontalAdvance(COLUMNS[col])) + 14)
        header.resizeSection(RATIO_COL, fm.horizontalAdvance("0.30 (group)") + 12)

    def name_shown(self, row: int) -> str:
        """Row `row`'s root name as the table draws it now (tests and scripts read it)."""
        index = self.model.index(row, 1)
        width = self.table.horizontalHeader().sectionSize(1)
        return fitted_name(index.data(), width, self.table.fontMetrics())

    def selected_group(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], Qt.UserRole) if rows else None

    def make_scope_from_selection(self) -> bool:
        """Edit › Make User Scope: the selected groups share one ratio (one undoable edit)."""
        roots = self.selected_roots()
        if len(roots) < 2:
            self.wb.events.status.emit("Select two or more groups (Ctrl+click) to share a ratio")
            return False
        return self.wb.try_edit(self.wb.plans.make_scope, roots)

    def selected_roots(self) -> list[str]:
        """Root layers of every selected row, in table order."""
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        return [self.model.groups[self.proxy.mapToSource(i).row()].root for i in rows]

    def _index_of(self, group_id: int) -> QModelIndex:
        for row in range(self.model.rowCount()):
            if self.model.groups[row].id == group_id:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if not index.isValid():  # hidden by the filter: clear it
                    self.filter.clear()
                    index = self.proxy.mapFromSource(self.model.index(row, 0))
                return index
        return QModelIndex()

    def select_group(self, group_id: int | None) -> None:
        """Select (and scroll to) a group's row; None clears the selection."""
        sm = self.table.selectionModel()
        if group_id is None:
            sm.clearSelection()
            return
        index = self._index_of(group_id)
        if index.isValid():
            sm.select(index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
            self.table.scrollTo(index)

    def select_groups(self, group_ids: list[int]) -> None:
        """Select several rows (for scopes and ignoring in bulk)."""
        sm = self.table.selectionModel()
        sm.clearSelection()
        for gid in group_ids:
            index = self._index_of(gid)
            if index.isValid():
                sm.select(index, QItemSelectionModel.Select | QItemSelectionModel.Rows)

    def edit_ratio(self, group_id: int) -> None:
        """Open the inline ratio editor on a group's row."""
        index = self._index_of(group_id)
        if index.isValid():
            self.table.edit(index.siblingAtColumn(RATIO_COL))

    def _on_selection(self, *_: object) -> None:
        gid = self.selected_group()
        self.groupSelected.emit(-1 if gid is None else gid)

    def _menu(self, pos: QPoint) -> None:
        roots = self.selected_roots()
        if not roots:
            return
        menu = QMenu(self)
        n = len(roots)
        rows = self.table.selectionModel().selectedRows()
        if n == 1 and rows:
            menu.addAction(
                "Edit ratio…", lambda: self.table.edit(rows[0].siblingAtColumn(RATIO_COL))
            )
        menu.addAction(
            "Clear ratio" if n == 1 else f"Clear ratios of {n} groups",
            lambda: self.clearRatioRequested.emit(roots),
        )
        menu.addAction(
            f"Make user scope of {n} group{'s' if n > 1 else ''}",
            lambda: self.scopeRequested.emit(roots),
        )
        scoped = [
            r
            for r in roots
            if self.model.ratios.get(r, None) is not None
            and self.model.ratios[r].origin.startswith("scope ")
        ]
        if scoped:
            menu.addAction("Remove from user scope", lambda: self.leaveScopeRequested.emit(scoped))
        menu.addSeparator()
        menu.addAction(
            "Ignore root layer" + ("s" if n > 1 else ""),
            lambda: self.ignoreRequested.emit(roots, True),
        )
        menu.addAction(
            "Un-ignore root layer" + ("s" if n > 1 else ""),
            lambda: self.ignoreRequested.emit(roots, False),
        )
        self.last_menu = menu
        menu.popup(self.table.viewport().mapToGlobal(pos))
