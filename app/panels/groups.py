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
    QDoubleSpinBox,
    QHeaderView,
    QLineEdit,
    QMenu,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.panels.heat import heat_color
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


class GroupTableModel(QAbstractTableModel):
    ratioEdited = Signal(str, float)  # noqa: N815 - root layer, new ratio

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.groups: list[GroupInfo] = []
        self.ratios: dict[str, RatioSource] = {}  # root -> where its ratio comes from
        self.planned: dict[str, int] = {}  # root -> channels after the planned step(s)
        self.heat: dict[str, float] = {}  # root -> sensitivity (0 robust .. 1 fragile), scan

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.beginResetModel()
        self.groups = list(groups)
        self.ratios, self.planned = {}, {}
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
            return f"{src.ratio:.2f}"
        if src.origin == "layer" and src.key != root:  # set on a container layer
            return f"{src.ratio:.2f} (layer {src.key or 'model'})"
        return f"{src.ratio:.2f} ({src.origin.removeprefix('scope ')})"

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        g = self.groups[index.row()]
        col = index.column()
        src = self.ratios.get(g.root)
        if role == Qt.DisplayRole:
            if col == RATIO_COL:
                return self._ratio_text(g.root)
            if col == PLANNED_COL:
                return self.planned.get(g.root, "")
            return (g.id, g.root, len(g.members), g.channels)[col]
        if role == Qt.EditRole:
            if col == RATIO_COL:
                return src.ratio if src and src.ratio is not None else 0.0
            if col == PLANNED_COL:
                return self.planned.get(g.root, g.channels)
            return (g.id, g.root, len(g.members), g.channels)[col]
        if role == Qt.ToolTipRole:
            return "\n".join(f"{m.node}  ({m.handler}, {m.channels} ch)" for m in g.members)
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


class RatioDelegate(QStyledItemDelegate):
    """A 0–0.99 spin box with 0.05 steps for the Ratio column."""

    def createEditor(self, parent, option, index):  # noqa: N802 (Qt API)
        box = QDoubleSpinBox(parent)
        box.setRange(0.0, 0.99)
        box.setSingleStep(0.05)
        box.setDecimals(2)
        return box


class GroupsPanel(QWidget):
    """Emits groupSelected(id) / groupSelected(-1) when the current row changes."""

    groupSelected = Signal(int)  # noqa: N815 (Qt naming)
    ratioEdited = Signal(str, float)  # noqa: N815 - root layer, ratio
    clearRatioRequested = Signal(list)  # noqa: N815 - root layers
    scopeRequested = Signal(list)  # noqa: N815 - root layers
    leaveScopeRequested = Signal(list)  # noqa: N815 - root layers
    ignoreRequested = Signal(list, bool)  # noqa: N815 - root layers, ignore?

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
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
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        # Fitted once per model, not per edit: ResizeToContents re-measures every row on each
        # dataChanged, which cost ~80 ms per preview on ResNet-50.
        for col in (0, 2, 3, 4, 5):
            header.setSectionResizeMode(col, QHeaderView.Interactive)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.last_menu: QMenu | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.model.set_groups(groups)
        for col in (0, 2, 3, 5):
            self.table.resizeColumnToContents(col)
        self.table.horizontalHeader().resizeSection(RATIO_COL, 92)

    def selected_group(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], Qt.UserRole) if rows else None

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
