"""Groups panel: the coupled channel groups as a sortable, filterable table."""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.graph.summary import GroupInfo

COLUMNS = ("#", "Root layer", "Members", "Channels")
_ROOT = QModelIndex()


class GroupTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.groups: list[GroupInfo] = []

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.beginResetModel()
        self.groups = list(groups)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.groups)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:  # noqa: N802 (Qt API)
        return len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.DisplayRole):  # noqa: N802 (Qt API)
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        g = self.groups[index.row()]
        col = index.column()
        if role in (Qt.DisplayRole, Qt.EditRole):
            return (g.id, g.root, len(g.members), g.channels)[col]
        if role == Qt.ToolTipRole:
            return "\n".join(f"{m.node}  ({m.handler}, {m.channels} ch)" for m in g.members)
        if role == Qt.TextAlignmentRole and col != 1:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.UserRole:
            return g.id
        return None


class GroupsPanel(QWidget):
    """Emits groupSelected(id) / groupSelected(-1) when the table selection changes."""

    groupSelected = Signal(int)  # noqa: N815 (Qt naming)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = GroupTableModel(self)
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
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        for col in (0, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)

    def set_groups(self, groups: list[GroupInfo]) -> None:
        self.model.set_groups(groups)

    def selected_group(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], Qt.UserRole) if rows else None

    def select_group(self, group_id: int | None) -> None:
        """Select (and scroll to) a group's row; None clears the selection."""
        sm = self.table.selectionModel()
        if group_id is None:
            sm.clearSelection()
            return
        for row in range(self.model.rowCount()):
            if self.model.groups[row].id == group_id:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if not index.isValid():  # hidden by the filter: clear it
                    self.filter.clear()
                    index = self.proxy.mapFromSource(self.model.index(row, 0))
                sm.select(index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
                self.table.scrollTo(index)
                return

    def _on_selection(self, *_: object) -> None:
        gid = self.selected_group()
        self.groupSelected.emit(-1 if gid is None else gid)
