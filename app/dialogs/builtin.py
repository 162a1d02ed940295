"""Pick a built-in architecture: the demo or any torchvision classification model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.document import DEMO_SOURCE


def torchvision_models() -> list[str]:
    try:
        import torchvision
    except ImportError:
        return []
    return sorted(torchvision.models.list_models(module=torchvision.models))


class BuiltinModelDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, names: list[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open built-in model")
        names = torchvision_models() if names is None else names
        self.filter = QLineEdit(
            self, placeholderText="Filter, e.g. resnet", clearButtonEnabled=True
        )
        self.list = QListWidget(self)
        demo = QListWidgetItem("Demo: DigitsNet (trained on sklearn digits)")
        demo.setData(Qt.UserRole, DEMO_SOURCE)
        self.list.addItem(demo)
        for name in names:
            item = QListWidgetItem(f"torchvision · {name}")
            item.setData(Qt.UserRole, f"torchvision:{name}")
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda *_: self.accept())
        self.filter.textChanged.connect(self._apply_filter)
        note = QLabel("Built with random weights: structure is all pruning analysis needs.", self)
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (self.filter, self.list, note, buttons):
            layout.addWidget(w)
        self.resize(380, 480)

    def _apply_filter(self, text: str) -> None:
        t = text.lower().strip()
        first = None
        for i in range(self.list.count()):
            item = self.list.item(i)
            hidden = bool(t) and t not in item.text().lower()
            item.setHidden(hidden)
            if not hidden and first is None:
                first = item
        if first is not None:
            self.list.setCurrentItem(first)

    def source(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None or item.isHidden() else item.data(Qt.UserRole)
